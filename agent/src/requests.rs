//! Change requests: what a subject tried in the `approve` tier, waiting for
//! a Responsible Individual. One file per distinct (profile, action, target)
//! in the state directory, so repeated attempts are counted, not duplicated.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeRequest {
    pub id: String,
    pub host: String,
    pub profile: String,
    pub action: String,
    pub target: String,
    pub first_seen: u64,
    pub last_seen: u64,
    pub attempts: u64,
    pub pid: u32,
    pub uid: u32,
    pub exe: String,
    pub comm: String,
    pub policy_version: u64,
    /// The digest of the exact content tried (an nft rule's expressions),
    /// as 16 hex digits; a warrant for this request binds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    /// The content itself, readable (for an nft rule, its expressions in
    /// `nft --debug=netlink` notation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendering: Option<String>,
    /// Why an RI said no (`warrant requests decline`), once one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declined: Option<String>,
}

impl ChangeRequest {
    /// What a warrant for this request approves, as the approver was shown
    /// it: SHA-256 over the id, profile, action, target and content (digest
    /// and text), NUL-separated; 16 hex digits. Counters and the latest
    /// requester change with every attempt, and the host with the host that
    /// holds it (a warrant may be for several): none of them is in it.
    pub fn digest(&self) -> String {
        let parts = [
            self.id.as_str(),
            &self.profile,
            &self.action,
            &self.target,
            self.content_digest.as_deref().unwrap_or(""),
            self.rendering.as_deref().unwrap_or(""),
        ];
        let digest = Sha256::digest(parts.join("\0"));
        hex::encode(&digest[..8])
    }
}

/// One request per distinct (profile, action, target, content).
pub fn request_id(profile: &str, action: &str, target: &str, content_digest: Option<&str>) -> String {
    let digest = Sha256::digest(format!("{profile}\0{action}\0{target}\0{}", content_digest.unwrap_or("")));
    format!("r-{}", &hex::encode(digest)[..12])
}

/// A content digest as requests and warrants write it.
pub fn digest_text(digest: u64) -> Option<String> {
    (digest != 0).then(|| format!("{digest:016x}"))
}

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("requests")
}

/// A request id as [`request_id`] makes it, `r-` and 12 hex digits: never
/// a path, whoever sends it (a subject asks through the query socket).
pub fn is_request_id(id: &str) -> bool {
    id.len() == 14 && id.starts_with("r-") && id[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn path_of(state_dir: &Path, id: &str) -> std::io::Result<PathBuf> {
    if !is_request_id(id) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{id:?} is not a change request id (r- and 12 hex digits)"),
        ));
    }
    Ok(dir(state_dir).join(format!("{id}.json")))
}

/// Records an attempt; returns the request (new or updated).
pub fn record(state_dir: &Path, mut fresh: ChangeRequest) -> std::io::Result<ChangeRequest> {
    fs::create_dir_all(dir(state_dir))?;
    let path = path_of(state_dir, &fresh.id)?;
    if let Ok(existing) = load(state_dir, &fresh.id) {
        // Ids are 48 bits of a hash of text the agent chose: one it made
        // collide keeps the request the approver was told of, untouched.
        let change =
            |r: &ChangeRequest| (r.profile.clone(), r.action.clone(), r.target.clone(), r.content_digest.clone());
        if change(&existing) != change(&fresh) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("request id {} already names another change: this one gets no request", fresh.id),
            ));
        }
        fresh.first_seen = existing.first_seen;
        fresh.attempts = existing.attempts + 1;
        fresh.declined = existing.declined;
        // What was shown first stays what is shown (and what a warrant's
        // request digest covers): one id is one content.
        if existing.rendering.is_some() {
            fresh.rendering = existing.rendering;
        }
    }
    crate::durable::write_atomic(&path, &serde_json::to_vec_pretty(&fresh).expect("serialises"))?;
    Ok(fresh)
}

/// Marks request `id` declined, with the reason.
pub fn decline(state_dir: &Path, id: &str, reason: &str) -> std::io::Result<ChangeRequest> {
    let mut request = load(state_dir, id)?;
    request.declined = Some(reason.to_owned());
    crate::durable::write_atomic(&path_of(state_dir, id)?, &serde_json::to_vec_pretty(&request).expect("serialises"))?;
    Ok(request)
}

pub fn exists(state_dir: &Path, id: &str) -> bool {
    path_of(state_dir, id).is_ok_and(|p| p.exists())
}

pub fn load(state_dir: &Path, id: &str) -> std::io::Result<ChangeRequest> {
    let text = fs::read(path_of(state_dir, id)?)?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

pub fn list(state_dir: &Path) -> std::io::Result<Vec<ChangeRequest>> {
    let mut all = Vec::new();
    let entries = match fs::read_dir(dir(state_dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Ok(bytes) = fs::read(&path)
            && let Ok(request) = serde_json::from_slice(&bytes)
        {
            all.push(request);
        }
    }
    all.sort_by_key(|r: &ChangeRequest| r.first_seen);
    Ok(all)
}
