//! The control socket: one JSON request and one JSON response per
//! connection. The socket is root-only (0600 in a 0700 directory), and a
//! subject cannot connect to it at all: it is one of Warrant's own files,
//! and the kernel refuses a subject's connect to a socket bound to one of
//! those (agent-ebpf's `ipc`). The daemon also refuses every request but
//! `status` from a caller whose pid is a subject's.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// The Prometheus text (a JSON string).
    Metrics,
    /// Make the calling process a subject of `profile` (used by `warrant run`).
    Register {
        profile: String,
    },
    ApplyPolicy {
        bundle: String,
    },
    InstallWarrant {
        warrant: String,
    },
    /// Put back what change (warrant) `id` covered.
    Rollback {
        id: String,
        force: bool,
    },
    /// Accept a new trust root signed by a threshold of the one in force.
    RotateTrust {
        root: String,
    },
    /// Pin the configuration's trusted keys as trust root v0 (they differ
    /// from the pinned ones, or do not verify what the host holds), if they
    /// are exactly `keys` (ids) and `threshold`, what root checked.
    AcceptConfigTrust {
        keys: Vec<String>,
        threshold: usize,
    },
    Revoke {
        id: String,
    },
    /// An RI or operator says no to a change request.
    DeclineRequest {
        id: String,
        reason: String,
    },
    /// The file at `path` is no longer a subject's (clears its mark).
    Unmark {
        path: String,
    },
    /// Every mark: mount point, inode, profile.
    ListMarks,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl Response {
    pub fn ok(data: Value) -> Self {
        Self { ok: true, error: None, data }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self { ok: false, error: Some(message.into()), data: Value::Null }
    }
}

/// Sends one request with a blocking socket (no threads: `warrant run` must
/// stay single-threaded until it execs).
pub fn call(socket: &Path, request: &Request) -> anyhow::Result<Value> {
    exchange(socket, request, "is `warrant daemon` running, and are you root?")
}

/// One JSON line out, one back; `hint` says what to check when the socket
/// cannot be reached.
pub fn exchange(socket: &Path, request: &impl Serialize, hint: &str) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot reach the daemon at {} ({hint})", socket.display()))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line).context("sending to the daemon")?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).context("reading the daemon's reply")?;
    let response: Response = serde_json::from_str(&reply).context("the daemon's reply is not valid JSON")?;
    if !response.ok {
        bail!("{}", response.error.unwrap_or_else(|| "the daemon refused without a reason".into()));
    }
    Ok(response.data)
}
