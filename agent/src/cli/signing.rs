//! The keys RIs and the security team sign with, as command-line arguments.

use crate::*;

/// The one key a Responsible Individual signs with.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct RiKeyArgs {
    /// A Warrant Ed25519 private key file (`warrant keygen`).
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// An OpenSSH key: a private key file, or the `.pub` of a key held by
    /// ssh-agent or a FIDO2 token (signed with `ssh-keygen -Y sign`, which
    /// asks for the touch or PIN).
    #[arg(long)]
    pub(crate) ssh_key: Option<PathBuf>,
}

impl RiKeyArgs {
    pub(crate) fn signer(&self) -> anyhow::Result<Signer> {
        match (&self.key, &self.ssh_key) {
            (Some(path), _) => Ok(Signer::Ed25519(trust::read_signing_key(path)?)),
            (None, Some(path)) => Ok(Signer::ssh(path)?),
            (None, None) => bail!("pass --key FILE or --ssh-key FILE"),
        }
    }
}

/// A file to sign, the private keys to sign it with, and where the signed
/// envelope goes.
#[derive(clap::Args)]
pub(crate) struct SignArgs {
    pub(crate) file: PathBuf,
    /// Warrant Ed25519 private key files.
    #[arg(long = "key", required_unless_present = "ssh_keys")]
    pub(crate) keys: Vec<PathBuf>,
    /// OpenSSH keys (see `approve --ssh-key`).
    #[arg(long = "ssh-key")]
    pub(crate) ssh_keys: Vec<PathBuf>,
    #[arg(long)]
    pub(crate) out: PathBuf,
}

impl SignArgs {
    /// Reads the file, refuses it unless `check` accepts its text, signs it
    /// as `payload_type` with every key and writes the envelope. Returns
    /// what `check` made of it and how many keys signed.
    pub(crate) fn sign<T>(
        &self,
        payload_type: &str,
        check: impl FnOnce(&str) -> anyhow::Result<T>,
    ) -> anyhow::Result<(T, usize)> {
        let text =
            std::fs::read_to_string(&self.file).with_context(|| format!("cannot read {}", self.file.display()))?;
        let checked = check(&text)?;
        let mut signers = Vec::new();
        for path in &self.keys {
            signers.push(Signer::Ed25519(trust::read_signing_key(path)?));
        }
        for path in &self.ssh_keys {
            signers.push(Signer::ssh(path)?);
        }
        let mut envelope = Envelope::unsigned(payload_type, text.as_bytes());
        for signer in &signers {
            signer.sign(&mut envelope)?;
        }
        std::fs::write(&self.out, envelope.to_json())
            .with_context(|| format!("cannot write {}", self.out.display()))?;
        Ok((checked, envelope.signatures.len()))
    }
}
