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

/// The fields of a decision record an agent may read about itself
/// (`warrant why`): no approver, no warrant id, no other profile's names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Denial {
    /// The record's number in the audit log.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    pub action: String,
    pub target: String,
    pub verdict: String,
    pub tier: String,
    /// The rule that decided (none: no rule matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub policy_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    /// The change request it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Why it made none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_dropped: Option<String>,
    /// An `allow` rule's rate was used up, so the approve tier decided.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rate_limited: bool,
    pub pid: u32,
    pub exe: String,
}

impl Denial {
    /// The view of decision record `record` (read in place, not copied);
    /// its `seq` and `time` are the log's, set once it is written.
    pub fn of_record(record: &Value) -> Self {
        Denial::deserialize(record).unwrap_or_else(|e| {
            tracing::warn!("a decision record does not read as a denial: {e}");
            Denial::default()
        })
    }
}

/// Sends one query to the daemon's query socket and takes its reply as `A`.
pub fn call<A: crate::reply::Answer>(socket: &Path, query: &Query) -> Result<A, crate::control::ControlError> {
    crate::control::exchange(
        socket,
        query,
        "is `warrant daemon` running? The query socket answers Warrant's subjects about themselves",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_is_the_decision_record_less_what_the_agent_may_not_read() {
        let record = serde_json::json!({
            "kind": "decision", "pid": 4242, "tid": 4243, "uid": 0, "exe": "/usr/sbin/nft", "comm": "nft",
            "profile": "agent", "action": "nft.rule.add", "target": "inet filter input", "tier": "approve",
            "verdict": "denied-needs-warrant", "rule": null, "policy_version": 3, "message": "1/1",
            "mode": "enforce", "approver": "alice", "warrant_id": "w-1", "request": "r-9",
        });
        let view = Denial { seq: 17, time: 1_700_000_000, ..Denial::of_record(&record) };
        assert_eq!((view.seq, view.time, view.pid, view.policy_version), (17, 1_700_000_000, 4242, 3));
        assert_eq!(
            (view.action.as_str(), view.request.as_deref(), view.rule.as_deref()),
            ("nft.rule.add", Some("r-9"), None)
        );
        let wire = serde_json::to_value(&view).unwrap();
        for absent in ["approver", "warrant_id", "profile", "uid", "rule", "rate_limited", "request_dropped"] {
            assert!(wire.get(absent).is_none(), "{absent} in {wire}");
        }
        assert_eq!(serde_json::from_value::<Denial>(wire).unwrap(), view);
    }
}
