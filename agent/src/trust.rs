//! Keys and DSSE envelopes: what policy bundles and warrants travel in.
//!
//! An envelope is `{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig"}]}`;
//! each signature is over the DSSE pre-authentication encoding of the type
//! and payload: Ed25519 in `sig` (checked with `verify_strict`), or an
//! armored SSHSIG in `sshsig` made by an SSH key (see [`crate::keys`]).

use std::{fs, io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::keys::{self, Attested, PublicKey};

pub const POLICY_PAYLOAD_TYPE: &str = "application/vnd.warrant.policy.v1+toml";
pub const WARRANT_PAYLOAD_TYPE: &str = "application/vnd.warrant.approval.v1+json";

#[derive(Debug, Error)]
pub enum TrustError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(
        "{path} is not a Warrant {what} key (expected one line of base64 for 32 bytes, or for a public key an OpenSSH ssh-ed25519 or sk-ssh-ed25519@openssh.com line)"
    )]
    BadKey { path: String, what: &'static str },
    #[error("not a DSSE envelope: {0}")]
    BadEnvelope(String),
    #[error("envelope payloadType is {found:?}, expected {expected:?}")]
    WrongPayloadType { found: String, expected: &'static str },
    #[error("envelope has no signature")]
    Unsigned,
    #[error("signature {index} is not valid base64 or not 64 bytes")]
    MalformedSignature { index: usize },
    #[error("signature {index}: {source}")]
    SshSig { index: usize, source: crate::keys::SshSigError },
    #[error("no valid signature from a trusted key (need {needed}, found {found})")]
    NotEnoughSignatures { needed: usize, found: usize },
}

/// A public key as written in key files and policies: base64 of 32 bytes.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

pub fn encode_public_key(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Short stable id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

pub fn read_public_key(path: &Path) -> Result<VerifyingKey, TrustError> {
    let text =
        fs::read_to_string(path).map_err(|source| TrustError::Read { path: path.display().to_string(), source })?;
    parse_public_key(&text).ok_or_else(|| TrustError::BadKey { path: path.display().to_string(), what: "public" })
}

/// A public key file that may sign bundles or warrants: Warrant's own
/// (base64) or an OpenSSH `.pub` line.
pub fn read_signer_key(path: &Path) -> Result<PublicKey, TrustError> {
    let text =
        fs::read_to_string(path).map_err(|source| TrustError::Read { path: path.display().to_string(), source })?;
    PublicKey::parse(&text).ok_or_else(|| TrustError::BadKey { path: path.display().to_string(), what: "public" })
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, TrustError> {
    let text =
        fs::read_to_string(path).map_err(|source| TrustError::Read { path: path.display().to_string(), source })?;
    let seed: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TrustError::BadKey { path: path.display().to_string(), what: "private" })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a new key pair: `path` (private, mode 0600, never overwritten) and `path.pub`.
pub fn generate_key_pair(path: &Path) -> Result<VerifyingKey, TrustError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let write_err = |source| TrustError::Write { path: path.display().to_string(), source };
    let mut private = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(write_err)?;
    writeln!(private, "{}", B64.encode(key.to_bytes())).map_err(write_err)?;
    let public_path = public_path_of(path);
    fs::write(&public_path, format!("{}\n", encode_public_key(&key.verifying_key())))
        .map_err(|source| TrustError::Write { path: public_path.display().to_string(), source })?;
    Ok(key.verifying_key())
}

pub fn public_path_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    pub keyid: String,
    /// Ed25519, base64 of 64 bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sig: String,
    /// An armored SSHSIG in the namespace `warrant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sshsig: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// A trusted key whose signature verified, with what it attested.
pub type Signed = (PublicKey, Attested);

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// An envelope of `payload` with no signature yet.
    pub fn unsigned(payload_type: &str, payload: &[u8]) -> Self {
        Envelope { payload_type: payload_type.into(), payload: B64.encode(payload), signatures: Vec::new() }
    }

    /// An envelope of `payload` signed by each of `keys`.
    pub fn sign(payload_type: &str, payload: &[u8], keys: &[SigningKey]) -> Self {
        let message = pae(payload_type, payload);
        Envelope {
            payload_type: payload_type.into(),
            payload: B64.encode(payload),
            signatures: keys
                .iter()
                .map(|key| EnvelopeSignature {
                    keyid: key_id(&key.verifying_key()),
                    sig: B64.encode(key.sign(&message).to_bytes()),
                    sshsig: None,
                })
                .collect(),
        }
    }

    /// Adds `key`'s signature over the payload as it stands (a co-signer).
    /// A key that already signed is not added twice.
    pub fn add_signature(&mut self, key: &SigningKey) -> Result<(), TrustError> {
        let payload =
            B64.decode(&self.payload).map_err(|e| TrustError::BadEnvelope(format!("payload is not base64: {e}")))?;
        let keyid = key_id(&key.verifying_key());
        if self.signatures.iter().any(|s| s.keyid == keyid) {
            return Ok(());
        }
        let signature = key.sign(&pae(&self.payload_type, &payload));
        self.signatures.push(EnvelopeSignature { keyid, sig: B64.encode(signature.to_bytes()), sshsig: None });
        Ok(())
    }

    /// What an SSH key signs (`ssh-keygen -Y sign -n warrant`): the same
    /// pre-authentication encoding the Ed25519 signatures cover.
    pub fn signed_message(&self) -> Result<Vec<u8>, TrustError> {
        let payload =
            B64.decode(&self.payload).map_err(|e| TrustError::BadEnvelope(format!("payload is not base64: {e}")))?;
        Ok(pae(&self.payload_type, &payload))
    }

    /// Adds an SSHSIG made over [`Self::signed_message`] by the key `keyid`
    /// names; a key that already signed is not added twice.
    pub fn add_ssh_signature(&mut self, keyid: String, armored: String) {
        if !self.signatures.iter().any(|s| s.keyid == keyid) {
            self.signatures.push(EnvelopeSignature { keyid, sig: String::new(), sshsig: Some(armored) });
        }
    }

    /// The payload as text, unverified: only to describe what was refused.
    pub fn unverified_text(&self) -> Option<String> {
        B64.decode(&self.payload).ok().and_then(|bytes| String::from_utf8(bytes).ok())
    }

    pub fn parse(text: &str) -> Result<Self, TrustError> {
        serde_json::from_str(text).map_err(|e| TrustError::BadEnvelope(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an envelope always serialises")
    }

    /// Checks the type and that at least `threshold` distinct keys of
    /// `trusted` signed; returns the payload and the keys that signed.
    pub fn verify(
        &self,
        expected_type: &'static str,
        trusted: &[PublicKey],
        threshold: usize,
    ) -> Result<(Vec<u8>, Vec<PublicKey>), TrustError> {
        let (payload, signers) = self.verify_signers(expected_type, trusted, threshold)?;
        Ok((payload, signers.into_iter().map(|(key, _)| key).collect()))
    }

    /// [`Self::verify`], with what each signer's key attested (a hardware
    /// key's user verification).
    pub fn verify_signers(
        &self,
        expected_type: &'static str,
        trusted: &[PublicKey],
        threshold: usize,
    ) -> Result<(Vec<u8>, Vec<Signed>), TrustError> {
        if self.payload_type != expected_type {
            return Err(TrustError::WrongPayloadType { found: self.payload_type.clone(), expected: expected_type });
        }
        let payload =
            B64.decode(&self.payload).map_err(|e| TrustError::BadEnvelope(format!("payload is not base64: {e}")))?;
        if self.signatures.is_empty() {
            return Err(TrustError::Unsigned);
        }
        let message = pae(&self.payload_type, &payload);
        let mut signers: Vec<Signed> = Vec::new();
        let mut ssh_failure = None;
        let counted = |signers: &[Signed], key: &PublicKey| signers.iter().any(|(k, _)| k == key);
        for (index, entry) in self.signatures.iter().enumerate() {
            if let Some(armored) = &entry.sshsig {
                for key in trusted {
                    let PublicKey::Ssh(ssh) = key else { continue };
                    if counted(&signers, key) {
                        continue;
                    }
                    match keys::verify_sshsig(ssh, keys::SSHSIG_NAMESPACE, &message, armored) {
                        Ok(attested) => {
                            signers.push((key.clone(), attested));
                            break;
                        }
                        Err(keys::SshSigError::OtherKey) => {}
                        // Not counted, like a bad Ed25519 signature; named if
                        // the threshold is then not met (wrong namespace, no touch).
                        Err(source) => ssh_failure = Some(TrustError::SshSig { index, source }),
                    }
                }
                continue;
            }
            let bytes: [u8; 64] = B64
                .decode(&entry.sig)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(TrustError::MalformedSignature { index })?;
            let signature = Signature::from_bytes(&bytes);
            // Key ids are hints; every trusted key is tried, and a key counts once.
            for key in trusted {
                if let PublicKey::Ed25519(ed) = key
                    && !counted(&signers, key)
                    && ed.verify_strict(&message, &signature).is_ok()
                {
                    signers.push((key.clone(), Attested::default()));
                    break;
                }
            }
        }
        if signers.len() < threshold.max(1) {
            if let Some(failure) = ssh_failure {
                return Err(failure);
            }
            return Err(TrustError::NotEnoughSignatures { needed: threshold.max(1), found: signers.len() });
        }
        Ok((payload, signers))
    }
}
