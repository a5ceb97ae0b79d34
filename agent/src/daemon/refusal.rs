//! Why the daemon refused a request, or could not carry it out: one enum
//! per request family, each keeping the error under it as its source. The
//! caller hears, and the audit record keeps, the whole chain in one line
//! ([`crate::kernel::error_chain`]); the display of a variant is what the
//! daemon was doing, its source why that failed.

use std::{collections::BTreeSet, io};

use crate::{
    approval::ApprovalError, daemon::trust_pin::PinError, kernel::KernelError, policy::PolicyError,
    protect::ProtectError, rollback::RollbackError, trust::TrustError, trust_root::TrustRootError,
};

/// A request the control socket refused, whichever family it is of.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Bundle(#[from] BundleRefused),
    #[error(transparent)]
    Trust(#[from] TrustRefused),
    #[error(transparent)]
    Warrant(#[from] WarrantRefused),
    #[error(transparent)]
    Rollback(#[from] RollbackRefused),
    #[error(transparent)]
    Mark(#[from] MarkRefused),
    #[error(transparent)]
    Register(#[from] RegisterRefused),
    #[error(transparent)]
    Query(#[from] QueryRefused),
    #[error("no change request {id} to decline")]
    NoRequestToDecline {
        id: String,
        #[source]
        source: io::Error,
    },
}

/// New bundles and trust roots wait while the configuration's keys are
/// not settled (`warrant trust accept-config`).
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} refused: the configured trusted keys {keys:?} are not settled (not the pinned ones, or they do not \
     verify what this host accepted); root runs `warrant trust accept-config` after checking them"
)]
pub struct Unsettled {
    /// What was refused: bundle, trust root.
    pub what: &'static str,
    pub keys: Vec<String>,
}

/// Why a bundle was not put in force.
#[derive(Debug, thiserror::Error)]
pub enum BundleRefused {
    #[error(transparent)]
    Unsettled(#[from] Unsettled),
    #[error("cannot read")]
    Unreadable(#[source] io::Error),
    /// Not an envelope, or not signed by the trust root.
    #[error("bundle refused")]
    Envelope(#[source] TrustError),
    #[error("bundle refused: policy is not UTF-8")]
    NotUtf8,
    #[error("bundle refused")]
    Policy(#[source] PolicyError),
    #[error(
        "bundle refused: version {version} is not newer than the accepted version {accepted} (rollback protection)"
    )]
    NotNewer { version: u64, accepted: u64 },
    #[error("bundle refused: policy v{version} expired at {expires}")]
    Expired { version: u64, expires: String },
    /// Its protected trees could not be walked.
    #[error("bundle refused")]
    Walk(#[source] ProtectError),
    /// The kernel and the disk were put back as they were: `kept` says
    /// which policy that leaves in force.
    #[error("bundle not applied ({kept})")]
    NotCommitted {
        kept: String,
        #[source]
        source: CommitError,
    },
    /// Putting the kernel back failed too: it may hold part of the bundle.
    #[error(
        "{}; putting back what the kernel held failed too: {}",
        crate::kernel::error_chain(.failed),
        crate::kernel::error_chain(.undo)
    )]
    NotPutBack { failed: CommitError, undo: Box<KernelError> },
}

impl BundleRefused {
    /// The audit record's kind: `policy.error` once the kernel was
    /// changed, `policy.refused` before.
    pub fn audit_kind(&self) -> &'static str {
        match self {
            Self::NotCommitted { .. } | Self::NotPutBack { .. } => "policy.error",
            _ => "policy.refused",
        }
    }
}

/// Why a staged policy did not go in force (see `policy_store`).
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("bundle could not be loaded into the kernel")]
    NotLoaded(#[source] Box<KernelError>),
    #[error("bundle could not be persisted")]
    NotPersisted(#[source] PersistError),
}

/// Why the bundle in force could not be written to the state directory.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path} (the files before are back)")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}, and putting the files before back failed ({undone})")]
    NotUndone {
        path: String,
        undone: String,
        #[source]
        source: io::Error,
    },
}

/// Why a trust root, or the configuration's keys, were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TrustRefused {
    #[error(transparent)]
    Unsettled(#[from] Unsettled),
    #[error(transparent)]
    Root(#[from] TrustRootError),
    #[error("trust root not accepted: cannot persist it in {dir}")]
    NotPersisted {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error("nothing to accept: the configured trusted keys are the pinned ones")]
    NothingWaiting,
    #[error(
        "not accepted: {waiting_threshold} of the keys {waiting:?} wait, not {threshold} of the {named:?} named \
         (`warrant status` shows configured_keys and configured_threshold; check the key files with `warrant trust \
         key-id`, then name every key with --keys and the threshold with --threshold)"
    )]
    NotNamed { waiting_threshold: usize, waiting: BTreeSet<String>, threshold: usize, named: BTreeSet<String> },
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// Why a program the daemon runs (nft for snapshots, the notify shell) is
/// not run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramRefused {
    #[error("{path}")]
    Unresolved {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} was written by a subject (profile {profile}); check it, then `warrant unmark` it")]
    WrittenBySubject { path: String, profile: String },
}

/// Why a warrant was not installed, or not revoked.
#[derive(Debug, thiserror::Error)]
pub enum WarrantRefused {
    #[error("cannot read")]
    Unreadable(#[source] io::Error),
    #[error("warrant refused: no policy in force: apply a bundle first")]
    NoPolicy,
    #[error("warrant refused")]
    Envelope(#[source] TrustError),
    #[error("warrant refused")]
    Check(#[source] ApprovalError),
    /// Valid by the boot clock, not by the wall clock (see `crate::clock`).
    #[error("warrant refused by the wall clock")]
    WallClock(#[source] ApprovalError),
    #[error("warrant refused: {id} was already installed on this host (replay)")]
    Replay { id: String },
    #[error(
        "warrant refused: change request {request} here (digest {local}) is not the one approved (digest {signed})"
    )]
    RequestChanged { request: String, local: String, signed: String },
    #[error("warrant refused: {holder} is still active for this target; revoke it first")]
    StillActive { holder: String },
    #[error("warrant not installed")]
    Program(#[source] ProgramRefused),
    #[error("warrant not installed (without a snapshot the change could not be rolled back)")]
    Snapshot(#[source] RollbackError),
    #[error("warrant not installed: cannot persist the ledger")]
    Ledger(#[source] io::Error),
    #[error("warrant not installed")]
    Kernel(#[source] KernelError),
    #[error("no such warrant")]
    NoSuchIndex,
    #[error("no active warrant {id} (see `warrant status`)")]
    NotActive { id: String },
    #[error("cannot remove the warrant from the kernel")]
    NotRemoved(#[source] KernelError),
    #[error("cannot persist the warrant table")]
    TableNotSaved(#[source] io::Error),
}

/// Why a change was not rolled back.
#[derive(Debug, thiserror::Error)]
pub enum RollbackRefused {
    #[error("rollback refused")]
    Program(#[source] ProgramRefused),
    #[error("rollback refused")]
    Restore(#[source] RollbackError),
}

/// Why a file's mark was not cleared, or the marks not listed.
#[derive(Debug, thiserror::Error)]
pub enum MarkRefused {
    #[error("{path}: no such file")]
    NoSuchFile { path: String },
    #[error("{path} is not marked: no subject wrote it")]
    NotMarked { path: String },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Why `warrant run` could not make its process a subject.
#[derive(Debug, thiserror::Error)]
pub enum RegisterRefused {
    #[error("no policy in force: apply a bundle first")]
    NoPolicy,
    #[error("policy v{version} has no profile {profile:?} (profiles: {known:?})")]
    NoProfile { version: u64, profile: String, known: Vec<String> },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Why a subject's question about its own profile has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryRefused {
    #[error(
        "not a subject: the query socket answers Warrant's subjects about themselves, by the connection they \
         made as subjects (agents: ask again on a new connection; operators: warrant audit tail, warrant requests)"
    )]
    NotASubject,
    #[error("cannot list requests")]
    CannotList(#[source] io::Error),
    #[error("no change request {id} of profile {profile}")]
    NoRequest { id: String, profile: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::error_chain;

    #[test]
    fn a_refusal_says_what_was_done_what_stays_and_why_on_one_line() {
        let failed = BundleRefused::NotCommitted {
            kept: "policy v3 stays in force".into(),
            source: CommitError::NotPersisted(PersistError::Write {
                path: "/var/lib/warrant/policy.bundle".into(),
                source: io::Error::from(io::ErrorKind::StorageFull),
            }),
        };
        assert_eq!(failed.audit_kind(), "policy.error");
        let said = error_chain(&Refusal::from(failed));
        assert_eq!(
            said,
            "bundle not applied (policy v3 stays in force): bundle could not be persisted: cannot write \
             /var/lib/warrant/policy.bundle (the files before are back): no storage space"
        );
        let refused = BundleRefused::NotNewer { version: 2, accepted: 3 };
        assert_eq!(refused.audit_kind(), "policy.refused");
    }

    #[test]
    fn a_source_its_error_already_says_is_said_once() {
        // TrustRootError prints the TrustError it also returns as its source.
        let refused = TrustRefused::from(TrustRootError::from(TrustError::Unsigned));
        assert_eq!(error_chain(&refused), "trust root refused: envelope has no signature");
        let refused = WarrantRefused::Envelope(TrustError::Unsigned);
        assert_eq!(error_chain(&refused), "warrant refused: envelope has no signature");
    }
}
