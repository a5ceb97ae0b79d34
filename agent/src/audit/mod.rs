//! The audit log: one JSON object per line, each carrying the SHA-256 of the
//! line before it (`prev`), its sequence number (`seq`) and its own hash
//! (`hash`), so an edit, deletion, insertion or reordering breaks the chain.
//!
//! Durability (the fsync policy): a record is written and fsynced
//! (`fdatasync`) before the daemon moves on, so a decision that happened is
//! never lost to a crash; a line torn by a crash mid-write is cut at the next
//! open and the cut is itself recorded. A batch of kernel events is
//! committed as a group ([`AuditLog::defer_sync`], [`AuditLog::sync`]):
//! each record is written before its event leaves the ring, one fdatasync
//! covers them all. A failed fdatasync is counted, not lost
//! ([`AuditLog::take_not_synced`]): the records stay written and chained,
//! and the daemon records the gap. Rotation syncs, then renames the full
//! file to `<log>.<first seq, 12 digits>` and fsyncs the directory; the
//! chain goes on in the new file. Checkpoints are written in place and fsynced.
//!
//! Checkpoints (`checkpoint`): signed notes of the chain's head, in
//! `<log>.checkpoint`.

use std::{
    fs::{self, File, OpenOptions},
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
};

use ed25519_dalek::SigningKey;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

mod checkpoint;
mod fields;
mod verify;
use checkpoint::signed_note;
pub use checkpoint::{Checkpoint, checkpoint_path, read_checkpoint};
pub use fields::Fields;
use verify::walk_chain;
pub use verify::{Summary, read_all, verify, verify_log};

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("audit log {path}, record {line}: {problem}")]
    Broken { path: String, line: u64, problem: String },
    #[error("audit checkpoint {path}: {problem}")]
    Checkpoint { path: String, problem: String },
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rotate once the current file is this large, unless configured otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

pub struct AuditLog {
    path: PathBuf,
    file: File,
    prev: String,
    seq: u64,
    max_bytes: u64,
    written: u64,
    /// Set when a rotation made a new current file (the daemon protects it).
    pub rotated: bool,
    /// Records are written without their fdatasync until [`Self::sync`].
    sync_deferred: bool,
    /// Records written since the last fdatasync.
    unsynced: u64,
    /// Records whose fdatasync failed, and the first failure, until taken.
    not_synced: Option<(u64, std::io::Error)>,
    /// A failed write left part of a line that could not be cut off yet.
    torn: bool,
}

fn record_hash(record: &Map<String, Value>) -> String {
    // serde_json keeps keys sorted (no preserve_order feature), so the
    // serialisation is canonical.
    hex::encode(Sha256::digest(serde_json::to_vec(record).expect("serialises")))
}

/// A record's line and its hash, from one serialization: the hash is of
/// the record without `hash` (keys sorted, compact: [`record_hash`]), and
/// the line is those bytes with `"hash":"..."` put in at its key's sorted
/// place, as serialising the record with its hash would write it.
/// `record`: the fields sorted by key ([`Fields::sorted`]).
fn hashed_line(record: &[(impl AsRef<str>, Value)]) -> (Vec<u8>, String) {
    let mut body = Vec::with_capacity(512);
    body.push(b'{');
    // Where the hash goes: before the first key that sorts after "hash".
    let mut before = None;
    for (index, (key, value)) in record.iter().enumerate() {
        let key = key.as_ref();
        if before.is_none() && key > "hash" {
            before = Some((body.len(), index));
        }
        if index > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, key).expect("serialises");
        body.push(b':');
        serde_json::to_writer(&mut body, value).expect("serialises");
    }
    body.push(b'}');
    let hash = hex::encode(Sha256::digest(&body));
    let field = format!("\"hash\":\"{hash}\"");
    let mut line = Vec::with_capacity(body.len() + field.len() + 2);
    match before {
        // `body[at..]` starts with the comma before that key.
        Some((at, index)) if index > 0 => {
            line.extend_from_slice(&body[..at]);
            line.push(b',');
            line.extend_from_slice(field.as_bytes());
            line.extend_from_slice(&body[at..]);
        }
        // The first key sorts after "hash": the hash opens the object.
        Some((at, _)) => {
            line.extend_from_slice(&body[..at]);
            line.extend_from_slice(field.as_bytes());
            line.push(b',');
            line.extend_from_slice(&body[at..]);
        }
        None => {
            line.extend_from_slice(&body[..body.len() - 1]);
            if !record.is_empty() {
                line.push(b',');
            }
            line.extend_from_slice(field.as_bytes());
            line.push(b'}');
        }
    }
    line.push(b'\n');
    (line, hash)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io { path: path.display().to_string(), source }
}

/// What else `log`'s directory holds: names that are neither the log's (its
/// rotated files, checkpoint and temporary files start with its name, or a
/// dot and its name) nor the host's public key (the package leaves it there
/// at purge) nor `lost+found`. The directory is Warrant's own, protected
/// like the state directory: a subject that could make files there could plant a rotated
/// file that breaks the chain the daemon reads at start.
pub fn foreign_entries(log: &Path) -> Vec<String> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let hidden = format!(".{name}");
    let mut foreign: Vec<String> = names_in(dir)
        // lost+found: a log on a file system of its own.
        .filter(|file| {
            !file.starts_with(name.as_ref())
                && !file.starts_with(&hidden)
                && file != "host.key.pub"
                && file != "lost+found"
        })
        .collect();
    foreign.sort();
    foreign
}

/// The names in the log's directory `dir` (the working directory for a
/// bare file name); none if it cannot be read.
fn names_in(dir: &Path) -> impl Iterator<Item = String> {
    fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
}

/// The rotated files of `log`, oldest first, then `log` itself if it exists.
pub fn chain_files(log: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return vec![log.to_owned()];
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut rotated: Vec<PathBuf> = names_in(dir)
        .filter_map(|file| {
            let suffix = file.strip_prefix(&prefix)?;
            (suffix.len() == 12 && suffix.bytes().all(|b| b.is_ascii_digit())).then(|| dir.join(&file))
        })
        .collect();
    rotated.sort();
    if log.exists() {
        rotated.push(log.to_owned());
    }
    rotated
}

impl AuditLog {
    /// Opens (or creates) the log and continues its chain across rotated files.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, AuditError> {
        let io = io_error(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(&io)?;
        }
        let torn = drop_torn_tail(path).map_err(&io)?;
        let summary = walk_chain(&chain_files(path), None)?;
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(&io)?;
        let written = file.metadata().map_err(&io)?.len();
        let mut log = Self {
            path: path.to_owned(),
            file,
            prev: summary.last_hash,
            seq: summary.records,
            max_bytes: max_bytes.max(4096),
            written,
            rotated: false,
            sync_deferred: false,
            unsynced: 0,
            not_synced: None,
            torn: false,
        };
        if torn > 0 {
            let mut record = Fields::new();
            record.set("kind", "audit.torn_tail").set("dropped_bytes", torn);
            log.append(record)?;
        }
        Ok(log)
    }

    /// Records so far, and the hash of the last one.
    pub fn head(&self) -> (u64, &str) {
        (self.seq, &self.prev)
    }

    /// Appends one record; returns its sequence number (the event id).
    pub fn append(&mut self, record: impl Into<Fields>) -> Result<u64, AuditError> {
        let mut record = record.into();
        // A write cut short (a full disk) would leave part of a line in the
        // chain, with the next record after it: cut back to the last whole
        // line, then or, if that fails too, before the next write.
        if self.torn {
            self.file.set_len(self.written).map_err(io_error(&self.path))?;
            self.torn = false;
        }
        if self.written >= self.max_bytes {
            self.rotate()?;
        }
        let seq = self.seq + 1;
        record.set("seq", seq).set("prev", self.prev.as_str());
        let (line, hash) = hashed_line(&record.sorted());
        if let Err(e) = self.file.write_all(&line) {
            self.torn = self.file.set_len(self.written).is_err();
            return Err(io_error(&self.path)(e));
        }
        self.written += line.len() as u64;
        self.prev = hash;
        self.seq = seq;
        self.unsynced += 1;
        if !self.sync_deferred {
            // Written and chained: a failed sync is counted, not an error.
            let _ = self.sync();
        }
        Ok(seq)
    }

    /// Until [`Self::sync`], records are written without an fdatasync each
    /// (a group commit): a crash of the daemon loses none of them (they are
    /// in the kernel's page cache); a crash of the host loses those not yet
    /// synced, as it loses the events still in the ring.
    pub fn defer_sync(&mut self) {
        self.sync_deferred = true;
    }

    /// Ends a group commit: one fdatasync for every record written since
    /// the last. Err: those records may not be on disk; they are counted
    /// for [`Self::take_not_synced`].
    pub fn sync(&mut self) -> Result<(), AuditError> {
        self.sync_deferred = false;
        let records = std::mem::take(&mut self.unsynced);
        if records == 0 {
            return Ok(());
        }
        match self.file.sync_data() {
            Ok(()) => Ok(()),
            Err(source) => {
                let message = source.to_string();
                let (counted, _) = self.not_synced.get_or_insert((0, source));
                *counted += records;
                Err(AuditError::Io { path: self.path.display().to_string(), source: std::io::Error::other(message) })
            }
        }
    }

    /// Records written since the last fdatasync.
    pub fn unsynced(&self) -> u64 {
        self.unsynced
    }

    /// Records whose fdatasync failed since the last call, with the first
    /// failure: written and chained, but maybe not on disk.
    pub fn take_not_synced(&mut self) -> Option<(u64, std::io::Error)> {
        self.not_synced.take()
    }

    /// Moves the full file aside (named by its first record) and starts a
    /// new one; the next record's `prev` is the last hash of the old file.
    fn rotate(&mut self) -> Result<(), AuditError> {
        // The old file's records are durable before it is set aside (a
        // failure is counted, and the record that rotates is still written).
        let deferred = self.sync_deferred;
        let _ = self.sync();
        self.sync_deferred = deferred;
        let io = io_error(&self.path);
        let first = first_seq(&self.path).unwrap_or(self.seq.max(1));
        let mut aside = self.path.as_os_str().to_owned();
        aside.push(format!(".{first:012}"));
        fs::rename(&self.path, &aside).map_err(&io)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(&io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(&io)?;
        }
        self.written = 0;
        self.rotated = true;
        Ok(())
    }

    /// Writes a checkpoint of the log as it stands, signed by `key`, as a
    /// C2SP signed note with `origin` (this host's log name).
    pub fn checkpoint(&self, key: &SigningKey, origin: &str) -> Result<(), AuditError> {
        let note = signed_note(origin, self.seq, &self.prev, key);
        let path = checkpoint_path(&self.path);
        let io = io_error(&path);
        // In place, not by rename: the file keeps the inode the kernel protects.
        let mut file = OpenOptions::new().create(true).write(true).truncate(false).open(&path).map_err(&io)?;
        file.write_all(note.as_bytes()).map_err(&io)?;
        file.set_len(note.len() as u64).map_err(&io)?;
        file.sync_all().map_err(&io)
    }
}

fn first_seq(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let line = BufReader::new(file).lines().next()?.ok()?;
    serde_json::from_str::<Map<String, Value>>(&line).ok()?.get("seq")?.as_u64()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_directory_holds_only_the_logs_files() {
        let dir = std::env::temp_dir().join(format!("warrant-audit-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.jsonl");
        for own in
            ["audit.jsonl", "audit.jsonl.000000000001", "audit.jsonl.checkpoint", ".audit.jsonl.checkpoint.0a.tmp"]
        {
            fs::write(dir.join(own), "").unwrap();
        }
        fs::write(dir.join("host.key.pub"), "").unwrap();
        fs::create_dir(dir.join("lost+found")).unwrap();
        assert!(foreign_entries(&log).is_empty());
        fs::write(dir.join("syslog"), "").unwrap();
        fs::write(dir.join("notes"), "").unwrap();
        assert_eq!(foreign_entries(&log), ["notes", "syslog"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_serialise_with_their_keys_sorted() {
        // The chain's hashes need one serialisation of a record: serde_json's
        // `preserve_order` (turned on by any crate in the build) would break it.
        let mut record = Map::new();
        record.insert("b".into(), 1.into());
        record.insert("a".into(), 2.into());
        assert_eq!(serde_json::to_string(&record).unwrap(), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn a_line_is_the_record_with_its_hash_serialised_canonically() {
        let records = [
            serde_json::json!({}),
            serde_json::json!({"a": 1}),
            serde_json::json!({"z": "x"}),
            serde_json::json!({"kind": "t", "exe": "/bin/\"q\"\n", "seq": 3, "host": "h", "nested": {"k": [1, 2]}}),
            serde_json::json!({"hasg": 1, "hash0": 2, "h": 3, "\u{e9}": "\u{1f600}"}),
            serde_json::json!({"time": 1_700_000_000u64, "kind": "decision", "host": "h", "pid": 7, "rule": null,
                "exe": "/tmp/\u{1b}[31m\u{0}\t", "mode": "enforce", "rate_limited": true, "Z": -1, "_": 0.5,
                "warrant_unusable": {"why": "expired", "warrant_id": null}, "seq": 9, "prev": GENESIS}),
        ];
        for record in records {
            let Value::Object(record) = record else { unreachable!() };
            // Fields set in another order than the map's.
            let mut fields = Fields::new();
            for (key, value) in record.iter().rev() {
                fields.set(key.clone(), value.clone());
            }
            let (line, hash) = hashed_line(&fields.sorted());
            assert_eq!(hash, record_hash(&record));
            let mut with_hash = record.clone();
            with_hash.insert("hash".into(), hash.into());
            let mut canonical = serde_json::to_vec(&with_hash).unwrap();
            canonical.push(b'\n');
            assert_eq!(String::from_utf8(line).unwrap(), String::from_utf8(canonical).unwrap());
        }
    }
}
