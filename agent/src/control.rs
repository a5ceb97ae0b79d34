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

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::reply::{Answer, Reply};

/// The version of the control and query protocol. Both ends send it, and
/// a peer of another version is refused with what to do, so that a CLI
/// and a daemon of different releases never misread each other's fields.
pub const PROTOCOL_VERSION: u32 = 2;

/// Why an exchange with the daemon gave no answer to use.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the daemon at {socket} ({hint})")]
    Unreachable {
        socket: String,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the request")]
    Encode(#[source] serde_json::Error),
    #[error("sending to the daemon")]
    Send(#[source] std::io::Error),
    #[error("reading the daemon's reply")]
    Receive(#[source] std::io::Error),
    #[error("the daemon's reply is not one this `warrant` can read")]
    Malformed(#[source] serde_json::Error),
    #[error(
        "the daemon at {socket} speaks protocol v{theirs} and this `warrant` v{PROTOCOL_VERSION}: run the binary of the daemon's release"
    )]
    Version { socket: String, theirs: u32 },
    /// The daemon's own refusal, as it worded it.
    #[error("{0}")]
    Refused(String),
    #[error("the daemon answered with a {got} reply where a {expected} reply was due")]
    UnexpectedReply { expected: &'static str, got: &'static str },
}

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

/// One answer on the wire: the reply, or why there is none. Its version is
/// read first, so that a peer of another release is told so rather than
/// misread.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    /// [`PROTOCOL_VERSION`]; 0 from a daemon that predates versions.
    #[serde(default)]
    pub v: u32,
    /// Whether `reply` is there. Not read here: kept so that a CLI of
    /// protocol v1, which reads it before the version, reaches the version
    /// and says to run the daemon's release rather than that the reply is
    /// malformed.
    #[serde(default)]
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
}

impl Response {
    pub fn ok(reply: Reply) -> Self {
        Self { v: PROTOCOL_VERSION, ok: true, error: None, reply: Some(reply) }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self { v: PROTOCOL_VERSION, ok: false, error: Some(message.into()), reply: None }
    }
}

/// A command's outcome as a caller reads it: the reply, or why not (the
/// error and its sources, on one line).
impl<E: std::error::Error> From<Result<Reply, E>> for Response {
    fn from(result: Result<Reply, E>) -> Self {
        match result {
            Ok(reply) => Response::ok(reply),
            Err(refused) => Response::error(crate::kernel::error_chain(&refused)),
        }
    }
}

/// Sends one request with a blocking socket (no threads: `warrant run` must
/// stay single-threaded until it execs) and takes its reply as `A`.
pub fn call<A: Answer>(socket: &Path, request: &Request) -> Result<A, ControlError> {
    exchange(socket, request, "is `warrant daemon` running, and are you root?")
}

/// One JSON line out, one back, taken as reply kind `A`; `hint` says what
/// to check when the socket cannot be reached.
pub fn exchange<A: Answer>(socket: &Path, request: &impl Serialize, hint: &str) -> Result<A, ControlError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| ControlError::Unreachable {
        socket: socket.display().to_string(),
        hint: hint.to_owned(),
        source,
    })?;
    let mut versioned = serde_json::to_value(request).map_err(ControlError::Encode)?;
    versioned["v"] = PROTOCOL_VERSION.into();
    let mut line = serde_json::to_vec(&versioned).map_err(ControlError::Encode)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(ControlError::Send)?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(ControlError::Receive)?;
    let response: Value = serde_json::from_str(&reply).map_err(ControlError::Malformed)?;
    let theirs = response.get("v").and_then(Value::as_u64).unwrap_or(0);
    if theirs != u64::from(PROTOCOL_VERSION) {
        return Err(ControlError::Version { socket: socket.display().to_string(), theirs: theirs as u32 });
    }
    let response: Response = serde_json::from_value(response).map_err(ControlError::Malformed)?;
    match (response.reply, response.error) {
        (_, Some(message)) => Err(ControlError::Refused(message)),
        (Some(reply), None) => {
            A::from_reply(reply).map_err(|other| ControlError::UnexpectedReply { expected: A::KIND, got: other.kind() })
        }
        (None, None) => Err(ControlError::Refused("the daemon refused without a reason".into())),
    }
}

/// Reads one request line of the protocol (`what`: request, query); Err:
/// why it is refused, a request of another protocol version included.
pub fn parse_versioned<T: DeserializeOwned>(line: &str, what: &str) -> Result<T, String> {
    let mut value: Value = serde_json::from_str(line).map_err(|e| format!("malformed {what}: {e}"))?;
    let version = value.as_object_mut().and_then(|fields| fields.remove("v")).and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(PROTOCOL_VERSION) {
        return Err(format!(
            "this daemon speaks protocol v{PROTOCOL_VERSION} and the {what} came in v{version}: run the `warrant` binary of the daemon's release"
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("malformed {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_of_another_protocol_version_is_refused_with_what_to_do() {
        let mut current = serde_json::to_value(Request::Status).unwrap();
        current["v"] = PROTOCOL_VERSION.into();
        assert!(matches!(parse_versioned::<Request>(&current.to_string(), "request"), Ok(Request::Status)));
        let unversioned = serde_json::to_string(&Request::Status).unwrap();
        let refused = parse_versioned::<Request>(&unversioned, "request").unwrap_err();
        assert!(refused.contains("came in v0") && refused.contains("daemon's release"), "{refused}");
        let query = format!(r#"{{"op":"why","v":{PROTOCOL_VERSION}}}"#);
        assert_eq!(parse_versioned::<crate::query::Query>(&query, "query"), Ok(crate::query::Query::Why));
        assert!(parse_versioned::<Request>("not json", "request").unwrap_err().starts_with("malformed request"));
    }

    #[test]
    fn a_reply_still_says_ok_for_a_cli_of_protocol_v1() {
        // v1 read `ok` before `v`: without it, the version's refusal would
        // read as a malformed reply.
        let refused = serde_json::to_value(Response::error("no")).unwrap();
        assert_eq!((refused["ok"].as_bool(), refused["v"].as_u64()), (Some(false), Some(u64::from(PROTOCOL_VERSION))));
        let answered = serde_json::to_value(Response::ok(Reply::Metrics("m".into()))).unwrap();
        assert_eq!(answered["ok"], true);
        assert_eq!(answered["reply"], serde_json::json!({"kind": "metrics", "body": "m"}));
    }
}
