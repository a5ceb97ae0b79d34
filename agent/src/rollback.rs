//! Rollback of warranted changes. Before a warrant for a file or nftables
//! change reaches the kernel, the daemon snapshots what it covers (the
//! file's bytes and metadata, or the whole ruleset); after the change it
//! notes the state it left. `warrant rollback CHANGE_ID` (the warrant id)
//! puts the snapshot back, unless the target changed again since, which
//! needs `--force`.
//!
//! Files are restored atomically (a temporary file beside the target,
//! fsynced, then renamed over it); the ruleset by `nft -f` of `flush
//! ruleset` followed by the snapshot, which nftables applies as one
//! transaction.

use std::{
    fs,
    io::Read as _,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::durable::{write_atomic, write_synced};

#[derive(Debug, Error)]
pub enum RollbackError {
    #[error("no change {0} to roll back (a change id is the id of a file or nft warrant installed here)")]
    Unknown(String),
    #[error("change {0} has not happened yet: its warrant was not used")]
    NotUsed(String),
    #[error("change {0} was rolled back already")]
    Done(String),
    #[error("{what} changed again after change {id}; roll back anyway with --force")]
    ChangedSince { id: String, what: String },
    #[error("snapshot of {what}: {reason}")]
    Snapshot { what: String, reason: String },
    #[error("restoring {what}: {reason}")]
    Restore { what: String, reason: String },
}

/// What a snapshot holds, in `snapshots/ID/meta.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Covered {
    /// `file` (bytes in `content` when it existed).
    File { path: PathBuf, existed: bool, mode: u32, uid: u32, gid: u32, sha256: String },
    /// The nftables ruleset (`ruleset.json` as `nft -j list ruleset` gives
    /// it, which a rollback reads back; `ruleset.nft`, as `nft list` prints
    /// it, for people only: its comments are not escaped).
    Nftables,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub change_id: String,
    pub taken_at: u64,
    pub covered: Covered,
    /// The state the change left (file digest, or the ruleset's JSON), once used.
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub rolled_back_at: Option<u64>,
}

fn dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("snapshots").join(id)
}

fn snapshot_error(what: impl Into<String>) -> impl Fn(std::io::Error) -> RollbackError {
    let what = what.into();
    move |e| RollbackError::Snapshot { what: what.clone(), reason: e.to_string() }
}

fn sha256_of(path: &Path) -> Option<String> {
    fs::read(path).ok().map(|bytes| hex::encode(Sha256::digest(bytes)))
}

fn nft(args: &[&str]) -> Result<String, String> {
    let path = crate::programs::find("nft").ok_or("nft is not installed in /usr/sbin, /usr/bin, /sbin or /bin")?;
    let out = crate::programs::command(&path).args(args).output().map_err(|e| format!("cannot run nft: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8(out.stdout).map_err(|_| "nft printed non-UTF-8".into())
}

/// The ruleset as JSON with the `metainfo` entry left out (it names the
/// nft version, not the rules), for comparing two moments.
fn ruleset_json() -> Result<String, String> {
    let text = nft(&["-j", "list", "ruleset"])?;
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("nft -j: {e}"))?;
    if let Some(items) = value.get_mut("nftables").and_then(|v| v.as_array_mut()) {
        items.retain(|item| item.get("metainfo").is_none());
    }
    Ok(value.to_string())
}

/// The saved ruleset (`ruleset_json`) as one `nft -j -f` transaction:
/// flush, then every object added. JSON, not the text `nft list` prints:
/// nft prints a comment (an element's or a rule's, text a subject chose)
/// unescaped, so that text read back could carry commands of the
/// subject's; in JSON every string stays a string. Handles are left out:
/// the kernel gives new ones, and an add would take one as a position.
fn restore_document(saved: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(saved).map_err(|e| format!("the saved ruleset: {e}"))?;
    let items = value.get("nftables").and_then(|v| v.as_array()).ok_or("the saved ruleset has no nftables list")?;
    let mut commands = vec![serde_json::json!({"flush": {"ruleset": null}})];
    for item in items {
        let Some(object) = item.as_object() else {
            return Err(format!("the saved ruleset holds {item}, not an object"));
        };
        let mut object = object.clone();
        for body in object.values_mut() {
            if let Some(body) = body.as_object_mut() {
                body.remove("handle");
            }
        }
        commands.push(serde_json::json!({"add": object}));
    }
    Ok(serde_json::json!({"nftables": commands}).to_string())
}

/// Whether a warrant for `action` is one rollback covers.
pub fn covers(action: &str) -> bool {
    action.starts_with("nft.") || (action.starts_with("file.") && action != "file.chown" && action != "file.xattr")
}

/// Snapshots what a warrant for `action` on `target` covers, before the
/// warrant is installed. `Ok(None)`: the action is not one rollback covers.
pub fn take(state_dir: &Path, id: &str, action: &str, target: &str, now: u64) -> Result<Option<Meta>, RollbackError> {
    if !covers(action) {
        return Ok(None);
    }
    let dir = dir(state_dir, id);
    fs::create_dir_all(&dir).map_err(snapshot_error(dir.display().to_string()))?;
    let covered = if action.starts_with("nft.") {
        let json = ruleset_json().map_err(|reason| RollbackError::Snapshot { what: "the ruleset".into(), reason })?;
        let text = nft(&["list", "ruleset"])
            .map_err(|reason| RollbackError::Snapshot { what: "the ruleset".into(), reason })?;
        write_synced(&dir.join("ruleset.json"), json.as_bytes()).map_err(snapshot_error("ruleset.json"))?;
        write_synced(&dir.join("ruleset.nft"), text.as_bytes()).map_err(snapshot_error("ruleset.nft"))?;
        Covered::Nftables
    } else {
        let path = PathBuf::from(target.trim());
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => {
                // Not through a symlink swapped in since the check above.
                let mut bytes = Vec::new();
                fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .and_then(|mut file| file.read_to_end(&mut bytes))
                    .map_err(snapshot_error(target))?;
                write_synced(&dir.join("content"), &bytes).map_err(snapshot_error(target))?;
                Covered::File {
                    path,
                    existed: true,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    sha256: hex::encode(Sha256::digest(&bytes)),
                }
            }
            Ok(_) => {
                return Err(RollbackError::Snapshot { what: target.into(), reason: "not a regular file".into() });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Covered::File { path, existed: false, mode: 0, uid: 0, gid: 0, sha256: String::new() }
            }
            Err(e) => return Err(snapshot_error(target)(e)),
        }
    };
    let meta = Meta { change_id: id.into(), taken_at: now, covered, after: None, rolled_back_at: None };
    save(state_dir, &meta)?;
    Ok(Some(meta))
}

fn save(state_dir: &Path, meta: &Meta) -> Result<(), RollbackError> {
    let path = dir(state_dir, &meta.change_id).join("meta.json");
    write_atomic(&path, &serde_json::to_vec_pretty(meta).expect("serialises"))
        .map_err(snapshot_error(path.display().to_string()))
}

pub fn load(state_dir: &Path, id: &str) -> Result<Meta, RollbackError> {
    let text = fs::read(dir(state_dir, id).join("meta.json")).map_err(|_| RollbackError::Unknown(id.into()))?;
    serde_json::from_slice(&text).map_err(|_| RollbackError::Unknown(id.into()))
}

/// The state of what `meta` covers, now.
fn current_state(meta: &Meta) -> Result<String, RollbackError> {
    match &meta.covered {
        Covered::File { path, .. } => Ok(sha256_of(path).unwrap_or_else(|| "absent".into())),
        Covered::Nftables => {
            ruleset_json().map_err(|reason| RollbackError::Snapshot { what: "the ruleset".into(), reason })
        }
    }
}

/// Notes the state a warranted change left (called after each use).
pub fn note_after(state_dir: &Path, id: &str) -> Result<(), RollbackError> {
    let mut meta = match load(state_dir, id) {
        Ok(meta) => meta,
        Err(RollbackError::Unknown(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.rolled_back_at.is_some() {
        return Ok(());
    }
    meta.after = Some(current_state(&meta)?);
    save(state_dir, &meta)
}

/// What `meta` covers, for messages.
pub fn describe(meta: &Meta) -> String {
    match &meta.covered {
        Covered::File { path, .. } => path.display().to_string(),
        Covered::Nftables => "the nftables ruleset".into(),
    }
}

/// Puts the snapshot of change `id` back. Returns what was restored.
pub fn restore(state_dir: &Path, id: &str, force: bool, now: u64) -> Result<Meta, RollbackError> {
    let mut meta = load(state_dir, id)?;
    if meta.rolled_back_at.is_some() {
        return Err(RollbackError::Done(id.into()));
    }
    let Some(after) = meta.after.clone() else {
        return Err(RollbackError::NotUsed(id.into()));
    };
    if !force && current_state(&meta)? != after {
        return Err(RollbackError::ChangedSince { id: id.into(), what: describe(&meta) });
    }
    let what = describe(&meta);
    let failed = |reason: String| RollbackError::Restore { what: what.clone(), reason };
    let snapshot = dir(state_dir, id);
    match &meta.covered {
        Covered::Nftables => {
            let saved = fs::read_to_string(snapshot.join("ruleset.json")).map_err(|e| failed(e.to_string()))?;
            let script = snapshot.join("restore.json");
            write_synced(&script, restore_document(&saved).map_err(&failed)?.as_bytes())
                .map_err(|e| failed(e.to_string()))?;
            nft(&["-j", "-f", &script.to_string_lossy()]).map_err(failed)?;
        }
        Covered::File { path, existed: false, .. } => match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e.to_string())),
        },
        Covered::File { path, mode, uid, gid, .. } => {
            let bytes = fs::read(snapshot.join("content")).map_err(|e| failed(e.to_string()))?;
            crate::durable::replace_file(path, &bytes, *mode, Some((*uid, *gid))).map_err(|e| failed(e.to_string()))?;
        }
    }
    meta.rolled_back_at = Some(now);
    save(state_dir, &meta)?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_adds_every_saved_object_after_a_flush_strings_kept_and_handles_dropped() {
        let comment = "a\" } }\ntable ip injected { }\n#";
        let saved = serde_json::json!({"nftables": [
            {"table": {"family": "inet", "name": "filter", "handle": 3}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 9, "comment": comment,
                      "expr": [{"accept": null}]}},
        ]});
        let document: serde_json::Value = serde_json::from_str(&restore_document(&saved.to_string()).unwrap()).unwrap();
        let commands = document["nftables"].as_array().unwrap();
        assert_eq!(commands[0], serde_json::json!({"flush": {"ruleset": null}}));
        assert_eq!(commands[1], serde_json::json!({"add": {"table": {"family": "inet", "name": "filter"}}}));
        assert_eq!(commands[2]["add"]["rule"]["comment"], comment);
        assert!(commands[2]["add"]["rule"].get("handle").is_none());
        assert!(restore_document("[1]").is_err() && restore_document(r#"{"nftables": [1]}"#).is_err());
    }
}
