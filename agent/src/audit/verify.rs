//! Reading the audit log back: its chain checked record by record across
//! rotated files, against its signed checkpoint when the host key is given,
//! and its records read whole.

use std::{
    fs::{self, File},
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
};

use ed25519_dalek::VerifyingKey;
use serde_json::{Map, Value};

use super::{AuditError, Checkpoint, GENESIS, chain_files, checkpoint_path, io_error, read_checkpoint, record_hash};

pub struct Summary {
    pub records: u64,
    pub last_hash: String,
    /// The hash of the record a checkpoint names, when one was checked.
    pub hash_at: Option<String>,
    /// Bytes of a last line with no newline yet, not counted: a record
    /// the daemon is writing now, or one a crash cut short (cut at its
    /// next start).
    pub unfinished_tail: u64,
}

/// Checks the whole chain of one file, from the genesis.
pub fn verify(path: &Path) -> Result<Summary, AuditError> {
    walk_chain(&[path.to_owned()], None)
}

/// Checks the chain across `files` in order (rotated files, then the
/// current one); names the first bad record. Keeps the hash of record
/// `keep_hash_of`, if it is reached.
pub(super) fn walk_chain(files: &[PathBuf], keep_hash_of: Option<u64>) -> Result<Summary, AuditError> {
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    let mut hash_at = None;
    let mut unfinished_tail = 0;
    for (index, path) in files.iter().enumerate() {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && files.len() == 1 => break,
            Err(e) => return Err(io_error(path)(e)),
        };
        let mut reader = BufReader::new(file);
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            if reader.read_until(b'\n', &mut bytes).map_err(io_error(path))? == 0 {
                break;
            }
            // Only the current file's last line may still be being written.
            if bytes.last() != Some(&b'\n') && index == files.len() - 1 {
                unfinished_tail = bytes.len() as u64;
                break;
            }
            let number = count + 1;
            let line = String::from_utf8_lossy(&bytes);
            let broken =
                |problem: String| AuditError::Broken { path: path.display().to_string(), line: number, problem };
            let mut record: Map<String, Value> =
                serde_json::from_str(&line).map_err(|e| broken(format!("not JSON: {e}")))?;
            let hash = record
                .remove("hash")
                .and_then(|h| h.as_str().map(str::to_owned))
                .ok_or_else(|| broken("has no hash".into()))?;
            if record.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
                return Err(broken("does not follow the record before it (deleted, inserted or reordered)".into()));
            }
            if record.get("seq").and_then(Value::as_u64) != Some(number) {
                return Err(broken("sequence number out of order".into()));
            }
            if record_hash(&record) != hash {
                return Err(broken("content does not match its hash (edited)".into()));
            }
            if keep_hash_of == Some(number) {
                hash_at = Some(hash.clone());
            }
            prev = hash;
            count = number;
        }
    }
    Ok(Summary { records: count, last_hash: prev, hash_at, unfinished_tail })
}

/// Checks the chain of `log` and its rotated files, and, given the host
/// key, that the log still holds what its checkpoint signed: a log cut
/// short, or rewritten before the checkpoint, is caught even when its chain
/// is whole. Returns the summary and the checkpoint checked.
pub fn verify_log(log: &Path, host_key: Option<&VerifyingKey>) -> Result<(Summary, Option<Checkpoint>), AuditError> {
    let files = chain_files(log);
    let Some(key) = host_key else {
        return Ok((walk_chain(&files, None)?, None));
    };
    let path = checkpoint_path(log);
    // The daemon rewrites the checkpoint in place: a read while it does
    // may see a mix of two notes. One more read before calling it bad.
    let checkpoint = read_checkpoint(&path, key).or_else(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        read_checkpoint(&path, key)
    })?;
    let summary = walk_chain(&files, Some(checkpoint.size))?;
    let bad = |problem: String| AuditError::Checkpoint { path: path.display().to_string(), problem };
    if summary.records < checkpoint.size {
        return Err(bad(format!(
            "signed {} records, the log has {}: truncated after record {}",
            checkpoint.size, summary.records, summary.records
        )));
    }
    if checkpoint.size > 0 && summary.hash_at.as_deref() != Some(checkpoint.head.as_str()) {
        return Err(bad(format!(
            "record {} is not the one the checkpoint signed (the log was rewritten)",
            checkpoint.size
        )));
    }
    Ok((summary, Some(checkpoint)))
}

/// Every record, in order, across rotated files (for `audit tail` and `explain`).
pub fn read_all(path: &Path) -> Result<Vec<Map<String, Value>>, AuditError> {
    let mut records = Vec::new();
    for file in chain_files(path) {
        let text = fs::read_to_string(&file).map_err(io_error(&file))?;
        records.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    if records.is_empty() && !path.exists() {
        return Err(io_error(path)(std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    Ok(records)
}
