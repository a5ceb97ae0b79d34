//! Rotation of the keys that sign policy bundles. A trust root names the
//! security team's public keys and how many of them must sign a bundle; a
//! new root is accepted only when a threshold of the keys in force signed
//! it and its version is newer, so a stolen minority of keys cannot rotate
//! the team out, and an old root cannot be replayed.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    keys::PublicKey,
    trust::{Envelope, TrustError},
};

pub const TRUST_ROOT_PAYLOAD_TYPE: &str = "application/vnd.warrant.trustroot.v1+toml";

/// A trust root as written (TOML) and signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustRootFile {
    /// Must be greater than the version of the root in force (the keys of
    /// the daemon's configuration are version 0).
    pub version: u64,
    /// Distinct keys of `keys` that must sign a policy bundle.
    pub threshold: usize,
    /// Public keys: base64 of 32 bytes, or OpenSSH public key lines.
    pub keys: Vec<String>,
}

/// The keys that policy bundles must be signed by, and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustRoot {
    pub version: u64,
    pub threshold: usize,
    pub keys: Vec<PublicKey>,
}

#[derive(Debug, Error)]
pub enum TrustRootError {
    #[error("trust root refused: {0}")]
    Envelope(#[from] TrustError),
    #[error("trust root refused: not valid TOML for a trust root: {0}")]
    Malformed(String),
    #[error(
        "trust root refused: key {index} is neither base64 of a 32-byte Ed25519 public key nor an OpenSSH ssh-ed25519 or sk-ssh-ed25519 line"
    )]
    BadKey { index: usize },
    #[error("trust root refused: key {index} is listed twice")]
    DuplicateKey { index: usize },
    #[error("trust root refused: threshold {threshold} must be between 1 and the number of keys ({keys})")]
    BadThreshold { threshold: usize, keys: usize },
    #[error("trust root refused: version {version} is not newer than the root in force (version {current})")]
    NotNewer { version: u64, current: u64 },
}

impl TrustRoot {
    /// Checks a trust root's text on its own (what `trust sign` signs).
    pub fn parse(text: &str) -> Result<Self, TrustRootError> {
        let file: TrustRootFile =
            toml::from_str(text).map_err(|e| TrustRootError::Malformed(e.message().to_owned()))?;
        let mut keys = Vec::new();
        for (index, text) in file.keys.iter().enumerate() {
            let key = PublicKey::parse(text).ok_or(TrustRootError::BadKey { index })?;
            if keys.contains(&key) {
                return Err(TrustRootError::DuplicateKey { index });
            }
            keys.push(key);
        }
        if file.threshold == 0 || file.threshold > keys.len() {
            return Err(TrustRootError::BadThreshold { threshold: file.threshold, keys: keys.len() });
        }
        Ok(Self { version: file.version, threshold: file.threshold, keys })
    }

    /// Accepts `envelope` as the root after `self`: signed by `self.threshold`
    /// distinct keys of `self`, and newer.
    pub fn rotate(&self, envelope: &Envelope) -> Result<TrustRoot, TrustRootError> {
        let (payload, _) = envelope.verify(TRUST_ROOT_PAYLOAD_TYPE, &self.keys, self.threshold)?;
        let text = String::from_utf8(payload).map_err(|_| TrustRootError::Malformed("not UTF-8".into()))?;
        let next = TrustRoot::parse(&text)?;
        if next.version <= self.version {
            return Err(TrustRootError::NotNewer { version: next.version, current: self.version });
        }
        Ok(next)
    }

    /// The key ids, for status and audit records.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(PublicKey::id).collect()
    }

    /// The root as [`TrustRoot::parse`] reads it back; None if a key
    /// cannot be written out.
    pub fn to_text(&self) -> Option<String> {
        let keys = self.keys.iter().map(PublicKey::to_text).collect::<Option<Vec<_>>>()?;
        toml::to_string(&TrustRootFile { version: self.version, threshold: self.threshold, keys }).ok()
    }

    /// The same keys (in any order) and threshold.
    pub fn same_keys_as(&self, other: &TrustRoot) -> bool {
        self.threshold == other.threshold
            && self.keys.len() == other.keys.len()
            && self.keys.iter().all(|k| other.keys.contains(k))
    }
}
