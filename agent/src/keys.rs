//! The public keys that may sign Warrant's envelopes: Warrant's own Ed25519
//! key files (base64 of 32 bytes), and OpenSSH keys, `ssh-ed25519` or
//! `sk-ssh-ed25519@openssh.com` on a FIDO2 token, which sign as SSHSIG
//! (OpenSSH's PROTOCOL.sshsig, `ssh-keygen -Y sign`) in the namespace
//! [`SSHSIG_NAMESPACE`]. An RI keeps an SSH key where real keys live: in
//! ssh-agent, or on a hardware token that wants a touch (and a PIN) for
//! each signature.

use ed25519_dalek::VerifyingKey;
use ssh_key::{Algorithm, HashAlg, SshSig};
use thiserror::Error;

/// SSHSIG namespace of every Warrant signature: a signature made for git
/// or for a file (`-n git`, `-n file`) is not one for Warrant.
pub const SSHSIG_NAMESPACE: &str = "warrant";

/// FIDO2 authenticator data flags carried in an sk signature.
const SK_USER_PRESENT: u8 = 0x01;
const SK_USER_VERIFIED: u8 = 0x04;

/// Two keys are equal when their Ed25519 key is: a base64 key and the
/// `ssh-ed25519` line of the same key are one signer, never two.
#[derive(Clone, Debug)]
pub enum PublicKey {
    Ed25519(VerifyingKey),
    /// ssh-ed25519 or sk-ssh-ed25519 (nothing else parses).
    Ssh(ssh_key::PublicKey),
}

impl PublicKey {
    /// The Ed25519 key underneath, whatever the encoding.
    fn raw(&self) -> [u8; 32] {
        match self {
            PublicKey::Ed25519(key) => key.to_bytes(),
            PublicKey::Ssh(key) => {
                let data = key.key_data();
                data.ed25519().or_else(|| data.sk_ed25519().map(|sk| sk.public_key())).map(|k| k.0).unwrap_or_default()
            }
        }
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl Eq for PublicKey {}

impl From<VerifyingKey> for PublicKey {
    fn from(key: VerifyingKey) -> Self {
        PublicKey::Ed25519(key)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SshSigError {
    #[error("not an SSH signature (-----BEGIN SSH SIGNATURE-----): {0}")]
    Malformed(String),
    #[error("SSH signature is for namespace {found:?}, not {expected:?}")]
    Namespace { found: String, expected: String },
    #[error("SSH signature is by another key")]
    OtherKey,
    #[error("SSH signature does not verify")]
    Invalid,
    #[error("the hardware key's signature does not say a user was present (no touch)")]
    NoUserPresence,
}

/// What a valid signature's key attests beyond the signature itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attested {
    /// A FIDO2 token said it verified its user (PIN or biometric).
    pub user_verified: bool,
}

impl PublicKey {
    /// A key as policies, trust roots and key files write it: an OpenSSH
    /// public key line (`ssh-ed25519 AAAA... comment`, or
    /// `sk-ssh-ed25519@openssh.com AAAA...`), or base64 of 32 bytes.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.starts_with("ssh-") || text.starts_with("sk-") {
            let mut key = ssh_key::PublicKey::from_openssh(text).ok()?;
            if !matches!(key.algorithm(), Algorithm::Ed25519 | Algorithm::SkEd25519) {
                return None;
            }
            key.set_comment("");
            return Some(PublicKey::Ssh(key));
        }
        crate::trust::parse_public_key(text).map(PublicKey::Ed25519)
    }

    /// Short stable id: 16 hex digits of the SHA-256 of an Ed25519 key;
    /// `SHA256:...`, what `ssh-keygen -l` prints, for an SSH key.
    pub fn id(&self) -> String {
        match self {
            PublicKey::Ed25519(key) => crate::trust::key_id(key),
            PublicKey::Ssh(key) => key.fingerprint(HashAlg::Sha256).to_string(),
        }
    }

    /// The key as [`PublicKey::parse`] reads it back.
    pub fn to_text(&self) -> Option<String> {
        match self {
            PublicKey::Ed25519(key) => Some(crate::trust::encode_public_key(key)),
            PublicKey::Ssh(key) => key.to_openssh().ok(),
        }
    }

    /// Kept on a FIDO2 token (sk-): each signature needs a touch.
    pub fn is_hardware(&self) -> bool {
        matches!(self, PublicKey::Ssh(key) if key.algorithm() == Algorithm::SkEd25519)
    }
}

/// Checks an armored SSHSIG over `message` by `key` in `namespace`. For a
/// hardware key the token must say its user was present; whether it also
/// verified the user is returned, for policies that ask for it.
pub fn verify_sshsig(
    key: &ssh_key::PublicKey,
    namespace: &str,
    message: &[u8],
    armored: &str,
) -> Result<Attested, SshSigError> {
    let signature = SshSig::from_pem(armored.trim()).map_err(|e| SshSigError::Malformed(e.to_string()))?;
    if signature.public_key() != key.key_data() {
        return Err(SshSigError::OtherKey);
    }
    if signature.namespace() != namespace {
        return Err(SshSigError::Namespace { found: signature.namespace().into(), expected: namespace.into() });
    }
    // The signature's algorithm must be its key's: ssh-key would verify an
    // sk key's signature under another name, and skip the flags check here.
    if signature.algorithm() != key.algorithm() {
        return Err(SshSigError::Invalid);
    }
    key.verify(namespace, message, &signature).map_err(|_| SshSigError::Invalid)?;
    if key.algorithm() != Algorithm::SkEd25519 {
        return Ok(Attested::default());
    }
    // An sk signature's data: 64 bytes of Ed25519, then flags and a counter.
    let flags = signature.signature_bytes().get(64).copied().unwrap_or(0);
    if flags & SK_USER_PRESENT == 0 {
        return Err(SshSigError::NoUserPresence);
    }
    Ok(Attested { user_verified: flags & SK_USER_VERIFIED != 0 })
}

#[derive(Debug, Error)]
pub enum SignError {
    #[error(transparent)]
    Key(#[from] crate::trust::TrustError),
    #[error("cannot read the SSH public key {path} (for a private key file, its .pub must lie beside it): {source}")]
    ReadPublic { path: String, source: std::io::Error },
    #[error("{path} is not an ssh-ed25519 or sk-ssh-ed25519@openssh.com public key")]
    BadPublic { path: String },
    #[error("ssh-keygen -Y sign failed: {0}")]
    SshKeygen(String),
}

/// Who signs: a Warrant key file, or an SSH key through `ssh-keygen -Y
/// sign`, which finds it in ssh-agent or on a token and asks for the touch
/// or PIN itself.
pub enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    Ssh { key_file: std::path::PathBuf, public: PublicKey },
}

impl Signer {
    /// `path`: an OpenSSH private key file (its `.pub` beside it), or a
    /// `.pub` whose private half ssh-agent holds.
    pub fn ssh(path: &std::path::Path) -> Result<Self, SignError> {
        let public_path = if path.extension().is_some_and(|e| e == "pub") {
            path.to_owned()
        } else {
            crate::trust::public_path_of(path)
        };
        let text = std::fs::read_to_string(&public_path)
            .map_err(|source| SignError::ReadPublic { path: public_path.display().to_string(), source })?;
        let public = PublicKey::parse(&text)
            .filter(|k| matches!(k, PublicKey::Ssh(_)))
            .ok_or_else(|| SignError::BadPublic { path: public_path.display().to_string() })?;
        Ok(Signer::Ssh { key_file: path.to_owned(), public })
    }

    pub fn public(&self) -> PublicKey {
        match self {
            Signer::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
            Signer::Ssh { public, .. } => public.clone(),
        }
    }

    /// Adds this signer's signature to `envelope` (once per key).
    pub fn sign(&self, envelope: &mut crate::trust::Envelope) -> Result<(), SignError> {
        match self {
            Signer::Ed25519(key) => Ok(envelope.add_signature(key)?),
            Signer::Ssh { key_file, public } => {
                let armored = ssh_keygen_sign(key_file, &envelope.signed_message()?)?;
                envelope.add_ssh_signature(public.id(), armored);
                Ok(())
            }
        }
    }
}

/// `ssh-keygen -Y sign -n warrant -f KEY FILE` over `message`, in a private
/// scratch directory; the terminal stays ssh-keygen's, for a PIN or touch.
fn ssh_keygen_sign(key_file: &std::path::Path, message: &[u8]) -> Result<String, SignError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let failed = |what: String| SignError::SshKeygen(what);
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let dir = std::env::temp_dir().join(format!("warrant-sign-{}", hex::encode(nonce)));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| failed(format!("scratch directory: {e}")))?;
    let file = dir.join("message");
    let result = std::fs::write(&file, message).map_err(|e| failed(e.to_string())).and_then(|()| {
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", SSHSIG_NAMESPACE, "-f"])
            .arg(key_file)
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| failed(format!("cannot run ssh-keygen (install openssh-client): {e}")))?;
        if !status.success() {
            return Err(failed(format!("{status} (see its message above)")));
        }
        std::fs::read_to_string(dir.join("message.sig")).map_err(|e| failed(format!("no signature written: {e}")))
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
