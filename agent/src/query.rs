//! The query socket: where an agent learns why it was refused and waits for
//! a human. It is open to every process (mode 0666, and every profile may
//! connect to it, whatever its rules), and it answers a subject only about
//! its own profile; a caller that is not a subject gets nothing. It changes
//! nothing: the control socket, which subjects cannot reach, does that.
//!
//! The contract an agent is given (README, "For the agent"): one JSON line
//! in, one JSON line out, as `warrant why --json`, `warrant requests mine
//! --json` and `warrant wait` use it.

use std::{collections::VecDeque, path::Path};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DEFAULT_SOCKET: &str = "/run/warrant-query/query.sock";

/// Denials kept per profile for `warrant why`.
pub const RECENT_DENIALS: usize = 32;

/// Longest request line the daemon reads from the query socket.
pub const MAX_REQUEST_BYTES: u64 = 4096;

/// Query connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a query connection has to be answered, from accept.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Query {
    /// The caller's profile's recent denials, newest first.
    Why,
    /// The caller's profile's change requests.
    MyRequests,
    /// Where a request of the caller's profile stands.
    RequestState { id: String },
}

/// Where a change request stands, as `warrant wait` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RequestState {
    /// No answer yet.
    Pending,
    /// A warrant for it is installed and has uses left: retry now.
    Approved { warrant_id: String, uses_left: u64, expires_at: u64 },
    /// An RI declined it (`warrant requests decline`).
    Declined { reason: String },
    /// A warrant for it was refused at install (its reason says why).
    Refused { reason: String },
    /// Its warrant expired, was revoked or its uses are spent.
    Expired { warrant_id: String },
}

impl RequestState {
    /// `warrant wait`'s exit code for this state (README documents them).
    pub fn exit_code(&self) -> u8 {
        match self {
            RequestState::Approved { .. } => 0,
            RequestState::Declined { .. } | RequestState::Refused { .. } => 3,
            RequestState::Expired { .. } => 4,
            RequestState::Pending => 5,
        }
    }
}

/// Recent denial records, per profile, bounded.
#[derive(Debug, Default)]
pub struct RecentDenials {
    by_profile: std::collections::HashMap<String, VecDeque<Denial>>,
}

impl RecentDenials {
    pub fn note(&mut self, profile: &str, record: Denial) {
        let kept = self.by_profile.entry(profile.to_owned()).or_default();
        if kept.len() == RECENT_DENIALS {
            kept.pop_back();
        }
        kept.push_front(record);
    }

    /// Newest first.
    pub fn of(&self, profile: &str) -> Vec<Denial> {
        self.by_profile.get(profile).map(|kept| kept.iter().cloned().collect()).unwrap_or_default()
    }
}

/// The fields of a decision record an agent may read about itself.
pub type Denial = serde_json::Map<String, Value>;

/// The [`Denial`] view of a decision record.
pub fn denial_view(record: &serde_json::Map<String, Value>) -> Denial {
    let mut view = serde_json::Map::new();
    for key in [
        "seq",
        "time",
        "action",
        "target",
        "verdict",
        "tier",
        "rule",
        "policy_version",
        "content_digest",
        "request",
        "request_dropped",
        "rate_limited",
        "pid",
        "exe",
    ] {
        if let Some(value) = record.get(key).filter(|v| !v.is_null()) {
            view.insert(key.into(), value.clone());
        }
    }
    view
}

/// Sends one query to the daemon's query socket and takes its reply as `A`.
pub fn call<A: crate::reply::Answer>(socket: &Path, query: &Query) -> Result<A, crate::control::ControlError> {
    crate::control::exchange(
        socket,
        query,
        "is `warrant daemon` running? The query socket answers Warrant's subjects about themselves",
    )
}
