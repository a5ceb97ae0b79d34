//! The audit log: one JSON object per line, each carrying the SHA-256 of the
//! line before it (`prev`) and of itself (`hash`), so an edit, deletion or
//! reordering breaks the chain. Every record is written and fsynced before
//! the daemon moves on: a decision that happened is never lost to a crash.

use std::{
    fs::{self, File, OpenOptions},
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("audit log {path}, record {line}: {problem}")]
    Broken { path: String, line: u64, problem: String },
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub struct AuditLog {
    path: PathBuf,
    file: File,
    prev: String,
    seq: u64,
}

fn record_hash(record: &Map<String, Value>) -> String {
    // serde_json keeps keys sorted (no preserve_order feature), so the
    // serialisation is canonical.
    hex::encode(Sha256::digest(serde_json::to_vec(record).expect("serialises")))
}

impl AuditLog {
    /// Opens (or creates) the log and continues its chain.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io { path: path.display().to_string(), source };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let torn = drop_torn_tail(path).map_err(io)?;
        let (seq, prev) = match verify(path) {
            Ok(summary) => (summary.records, summary.last_hash),
            Err(AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                (0, GENESIS.to_owned())
            }
            Err(e) => return Err(e),
        };
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        let mut log = Self { path: path.to_owned(), file, prev, seq };
        if torn > 0 {
            let mut record = Map::new();
            record.insert("kind".into(), "audit.torn_tail".into());
            record.insert("dropped_bytes".into(), torn.into());
            log.append(record)?;
        }
        Ok(log)
    }

    /// Appends one record; returns its sequence number (the event id).
    pub fn append(&mut self, mut record: Map<String, Value>) -> Result<u64, AuditError> {
        let seq = self.seq + 1;
        record.insert("seq".into(), seq.into());
        record.insert("prev".into(), self.prev.clone().into());
        let hash = record_hash(&record);
        record.insert("hash".into(), hash.clone().into());
        let mut line = serde_json::to_vec(&record).expect("serialises");
        line.push(b'\n');
        let io = |source| AuditError::Io { path: self.path.display().to_string(), source };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.prev = hash;
        self.seq = seq;
        Ok(seq)
    }
}

/// A crash can cut the last line short; that partial line was never a
/// record (records are fsynced whole). Cuts it off and returns its length,
/// so the chain continues and the gap is itself recorded.
fn drop_torn_tail(path: &Path) -> std::io::Result<u64> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(0);
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new().write(true).open(path)?.set_len(keep as u64)?;
    Ok((bytes.len() - keep) as u64)
}

pub struct Summary {
    pub records: u64,
    pub last_hash: String,
}

/// Checks the whole chain; names the first bad record.
pub fn verify(path: &Path) -> Result<Summary, AuditError> {
    let io = |source| AuditError::Io { path: path.display().to_string(), source };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    for line in reader.lines() {
        let line = line.map_err(io)?;
        let number = count + 1;
        let broken = |problem: String| AuditError::Broken {
            path: path.display().to_string(),
            line: number,
            problem,
        };
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
        prev = hash;
        count = number;
    }
    Ok(Summary { records: count, last_hash: prev })
}

/// Every record, in order (for `audit tail` and `explain`).
pub fn read_all(path: &Path) -> Result<Vec<Map<String, Value>>, AuditError> {
    let io = |source| AuditError::Io { path: path.display().to_string(), source };
    let text = fs::read_to_string(path).map_err(io)?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
