//! Checkpoints: a C2SP signed note (origin line, record count, chain head as
//! base64, then an Ed25519 signature line by the host key) in
//! `<log>.checkpoint`. The chain alone cannot tell a log cut short from one
//! that ended there; the checkpoint can, for everything before it.

use std::{
    fs,
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::{AuditError, io_error};

/// Where the checkpoint of `log` is kept.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".checkpoint");
    name.into()
}

/// C2SP's key hash for an Ed25519 key: SHA-256(name, "\n", 0x01, key)[..4].
fn note_key_hash(origin: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(origin.as_bytes());
    hasher.update(b"\n\x01");
    hasher.update(key.as_bytes());
    hasher.finalize()[..4].try_into().expect("four bytes")
}

fn note_body(origin: &str, size: u64, head: &str) -> String {
    let root = hex::decode(head).unwrap_or_default();
    format!("{origin}\n{size}\n{}\n", B64.encode(root))
}

pub(super) fn signed_note(origin: &str, size: u64, head: &str, key: &SigningKey) -> String {
    let body = note_body(origin, size, head);
    let mut signature = note_key_hash(origin, &key.verifying_key()).to_vec();
    signature.extend_from_slice(&key.sign(body.as_bytes()).to_bytes());
    format!("{body}\n\u{2014} {origin} {}\n", B64.encode(signature))
}

/// A checkpoint whose signature checked out.
#[derive(Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub head: String,
}

/// Reads and checks the signed note at `path` against `key`.
pub fn read_checkpoint(path: &Path, key: &VerifyingKey) -> Result<Checkpoint, AuditError> {
    let bad = |problem: &str| AuditError::Checkpoint { path: path.display().to_string(), problem: problem.into() };
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let (body, signatures) = text.split_once("\n\n").ok_or_else(|| bad("not a signed note"))?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let (Some(origin), Some(size), Some(root), None) = (lines.next(), lines.next(), lines.next(), lines.next()) else {
        return Err(bad("not a checkpoint (origin, size, root hash)"));
    };
    let size: u64 = size.parse().map_err(|_| bad("size is not a number"))?;
    let head = hex::encode(B64.decode(root).map_err(|_| bad("root hash is not base64"))?);
    let expected_hash = note_key_hash(origin, key);
    let signed = signatures.lines().any(|line| {
        let Some(rest) = line.strip_prefix("\u{2014} ") else { return false };
        let Some((name, signature)) = rest.split_once(' ') else { return false };
        let Ok(bytes) = B64.decode(signature) else { return false };
        name == origin
            && bytes.len() == 68
            && bytes[..4] == expected_hash
            && Signature::from_slice(&bytes[4..]).is_ok_and(|s| key.verify_strict(body.as_bytes(), &s).is_ok())
    });
    if !signed {
        return Err(bad("no valid signature by the host key (forged, edited, or another host's key)"));
    }
    Ok(Checkpoint { origin: origin.to_owned(), size, head })
}
