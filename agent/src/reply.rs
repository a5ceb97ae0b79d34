//! What the daemon answers: one type per control and query request, built
//! by the daemon and read by the CLI, so that neither end reads the other's
//! fields by string keys. Several are also the body of the audit record
//! the request leaves (a reply says what was recorded).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{hooks::MissingHook, query::RequestState, requests::ChangeRequest};

/// Every answer, tagged on the wire with its kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Reply {
    Status(Box<Status>),
    /// The Prometheus text.
    Metrics(String),
    Registered(Registered),
    PolicyApplied(PolicyApplied),
    WarrantInstalled(Box<WarrantInstalled>),
    Revoked(Revoked),
    RolledBack(RolledBack),
    TrustRotated(TrustRotated),
    ConfigTrustAccepted(ConfigTrustAccepted),
    Unmarked(Unmarked),
    Marks(Vec<Mark>),
    Declined(Declined),
    /// Query: the caller's profile's recent denials.
    Denials(Denials),
    /// Query: the caller's profile's change requests.
    MyRequests(MyRequests),
    /// Query: where one of them stands.
    RequestAnswer(RequestAnswer),
}

/// One reply kind, taken out of a [`Reply`]: Err gives back a reply of
/// another kind.
pub trait Answer: Sized {
    const KIND: &'static str;
    fn from_reply(reply: Reply) -> Result<Self, Reply>;
}

/// One table of the kinds: each variant's wire name (as serde's
/// snake_case tags it; a test checks they agree) and its [`Answer`].
macro_rules! answers {
    ($($variant:ident => $type:ty, $kind:literal;)*) => {
        impl Reply {
            /// The kind's name, as the wire tags it.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Reply::$variant(_) => $kind,)*
                }
            }
        }
        $(
            impl Answer for $type {
                const KIND: &'static str = $kind;
                fn from_reply(reply: Reply) -> Result<Self, Reply> {
                    match reply {
                        Reply::$variant(answer) => Ok(answer),
                        other => Err(other),
                    }
                }
            }
        )*
    };
}

answers! {
    Status => Box<Status>, "status";
    Metrics => String, "metrics";
    Registered => Registered, "registered";
    PolicyApplied => PolicyApplied, "policy_applied";
    WarrantInstalled => Box<WarrantInstalled>, "warrant_installed";
    Revoked => Revoked, "revoked";
    RolledBack => RolledBack, "rolled_back";
    TrustRotated => TrustRotated, "trust_rotated";
    ConfigTrustAccepted => ConfigTrustAccepted, "config_trust_accepted";
    Unmarked => Unmarked, "unmarked";
    Marks => Vec<Mark>, "marks";
    Declined => Declined, "declined";
    Denials => Denials, "denials";
    MyRequests => MyRequests, "my_requests";
    RequestAnswer => RequestAnswer, "request_answer";
}

/// `warrant status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub daemon: String,
    pub host: String,
    pub policy_version: Option<u64>,
    pub policy_expires: Option<String>,
    pub policy_expired: Option<bool>,
    pub profiles: Option<Vec<String>>,
    pub trust_root: Option<TrustRootStatus>,
    pub warrants: Vec<WarrantStatus>,
    /// Decisions since the daemon started, by verdict.
    pub decisions: BTreeMap<String, u64>,
    pub requests: RequestCounts,
    pub marks: MarkCounts,
    pub clock_skew_secs: i64,
    /// None: the counter could not be read.
    pub lost_events: Option<u64>,
    /// PROTECTED had no room for some file since the last apply that
    /// found room for all: files with no entry are decided by their names.
    #[serde(default)]
    pub protected_full: bool,
    pub kernel: String,
    /// bpf-lsm or fmod_ret.
    pub mode: String,
    pub missing_hooks: Vec<MissingHook>,
}

/// The trust root in force, and the configuration's keys when they differ.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustRootStatus {
    pub version: u64,
    pub threshold: usize,
    pub keys: Vec<String>,
    pub config_differs: bool,
    pub configured_keys: Option<Vec<String>>,
    pub configured_threshold: Option<usize>,
}

/// A warrant installed and not revoked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WarrantStatus {
    pub id: String,
    pub action: String,
    pub target: String,
    pub profile: String,
    pub approver: String,
    pub uses_left: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Unanswered change requests.
    pub open: usize,
    /// Per profile: attempts that opened no request (past the limits).
    pub dropped: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MarkCounts {
    /// Files subjects wrote, marked in the kernel.
    pub files: usize,
    pub capacity: u32,
}

/// `warrant run`: the caller is a subject now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registered {
    pub pid: u32,
    pub profile: String,
}

/// `warrant policy apply`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyApplied {
    pub version: u64,
    pub profiles: Vec<String>,
    pub apply_ms: f64,
    /// Milliseconds per phase.
    pub apply_phases_ms: BTreeMap<String, f64>,
    /// Inodes the kernel protects under it (its trees, the files Warrant
    /// guards for every policy, Warrant's own); None from an older daemon.
    #[serde(default)]
    pub protected_inodes: Option<usize>,
    /// Of those, the tree files PROTECTED had no room for (an agent may
    /// fill it): decided by their names until a walk finds them room.
    #[serde(default)]
    pub protected_missed: usize,
}

/// `warrant install` (also the `warrant.installed` record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WarrantInstalled {
    pub warrant_id: String,
    pub approver: String,
    pub profile: String,
    pub action: String,
    pub target: String,
    pub max_uses: u32,
    pub expires_at: u64,
    pub request: Option<String>,
    pub reason: String,
    /// Every Responsible Individual whose signature counts.
    pub approvers: Vec<String>,
    pub content_digest: Option<String>,
    pub request_digest: Option<String>,
    /// What a rollback of the change would restore, if anything.
    pub rollback: Option<String>,
}

/// `warrant revoke`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: String,
}

/// `warrant rollback` (also the `change.rolled_back` record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RolledBack {
    pub change_id: String,
    /// What was put back.
    pub restored: String,
    pub forced: bool,
    /// Boxed: the largest reply otherwise, and every `Result<_, Reply>` pays for it.
    pub by: Box<Caller>,
}

/// Who asked the daemon for something (from /proc, at the request): `None`
/// where /proc did not say.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Caller {
    pub pid: u32,
    pub exe: Option<String>,
    /// The real uid, as /proc/PID/status gives it.
    pub uid: Option<String>,
    /// The audit login uid (who logged in, whatever sudo made of it).
    pub loginuid: Option<String>,
}

/// `warrant trust rotate` (also the `trust.rotated` record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustRotated {
    pub version: u64,
    pub threshold: usize,
    pub keys: Vec<String>,
    pub previous_version: u64,
}

/// `warrant trust accept-config` (also the `trust.config_accepted` record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigTrustAccepted {
    pub keys: Vec<String>,
    pub threshold: usize,
    pub previous_keys: Vec<String>,
    pub version_in_force: u64,
}

/// `warrant unmark` (also the `marks.cleared` record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unmarked {
    pub path: String,
    /// DEV:INO.
    pub inode: String,
    pub profile: String,
    pub by_pid: u32,
}

/// One file a subject wrote (`warrant marks`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mark {
    /// None: its filesystem is not mounted here.
    pub mount: Option<String>,
    pub device: String,
    pub inode: u64,
    pub profile: String,
}

/// `warrant requests decline` (also the `request.declined` record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Declined {
    pub request: String,
    pub profile: String,
    pub reason: String,
}

/// `warrant why`: newest first, each the fields of a decision record an
/// agent may read about itself (see `query::Denial`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Denials {
    pub profile: String,
    pub denials: Vec<crate::query::Denial>,
}

/// `warrant requests mine`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MyRequests {
    pub profile: String,
    pub requests: Vec<ChangeRequest>,
}

/// `warrant wait`: where a request stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestAnswer {
    pub profile: String,
    pub request: String,
    pub exit_code: u8,
    pub status: RequestState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_taken_as_its_own_kind_only() {
        let reply = Reply::Revoked(Revoked { revoked: "w-1".into() });
        let wire = serde_json::to_string(&reply).unwrap();
        assert_eq!(wire, r#"{"kind":"revoked","body":{"revoked":"w-1"}}"#);
        let read: Reply = serde_json::from_str(&wire).unwrap();
        assert_eq!(read.kind(), Revoked::KIND);
        assert_eq!(Revoked::from_reply(read.clone()).unwrap().revoked, "w-1");
        assert_eq!(Declined::from_reply(read).unwrap_err().kind(), "revoked");
    }

    #[test]
    fn each_kind_is_named_as_the_wire_tags_it() {
        for reply in [
            Reply::Metrics(String::new()),
            Reply::Marks(Vec::new()),
            Reply::Revoked(Revoked { revoked: String::new() }),
            Reply::PolicyApplied(PolicyApplied {
                version: 1,
                profiles: Vec::new(),
                apply_ms: 0.0,
                apply_phases_ms: BTreeMap::new(),
                protected_inodes: None,
                protected_missed: 0,
            }),
        ] {
            let wire = serde_json::to_value(&reply).unwrap();
            assert_eq!(wire["kind"], reply.kind());
        }
    }
}
