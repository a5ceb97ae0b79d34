//! `warrant daemon`: loads the programs, keeps policy and warrants in the
//! kernel maps, turns decision events into audit records and change requests,
//! and answers its sockets. One `State`, owned by one thread that takes
//! typed commands (`owner`), its methods by part:
//! `policy_apply` (bundles, trust roots), `warrants` (install, restore,
//! revoke, rollback), `events` (ring to audit records and requests), `asks`
//! (notifications, a subject's questions), `housekeeping` (the 2 s tick) and
//! `sockets` (control, query, metrics).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fs,
    io::Write as _,
    os::{fd::OwnedFd, unix::fs::PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::UNIX_EPOCH,
};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, unix::AsyncFd},
    net::{UnixListener, UnixStream},
    task::JoinSet,
};
use tracing::{error, info, warn};
use warrant_common::{
    Event, FileKey, NO_WARRANT, ProtectedEntry, SELF_TREE, TargetKey, WarrantEntry, action, mode, tier, verdict,
};

use crate::{
    approval::{self, Approval},
    audit::{AuditLog, Fields},
    config::Config,
    control::{Request, Response},
    durable::write_atomic,
    held,
    kernel::{Kernel, PolicyStepFailed, StagedPolicy, error_chain},
    metrics,
    policy::{self, CompiledPolicy, render_target},
    protect, query,
    reply::{self, Reply},
    request_gate::RequestGate,
    requests::{self, ChangeRequest},
    rollback, subjects,
    trust::{self, Envelope, POLICY_PAYLOAD_TYPE},
    trust_root::{self, TrustRoot},
};

mod addresses;
mod asks;
mod error;
mod events;
mod exe_names;
mod housekeeping;
mod marks;
mod mounts;
mod owner;
mod policy_apply;
mod policy_store;
mod record_timing;
mod refusal;
mod rule_contents;
mod sockets;
mod start;
mod trust_pin;
mod versions;
mod warrants;

pub use error::DaemonError;
use error::Doing as _;
use events::{exe_of, proc_field, read_events};
use housekeeping::new_files;
use owner::{Command, Owner};
pub use record_timing::{RecordTiming, RingSource, RingTiming, time_decision_records, time_ring_records};
use refusal::{
    BundleRefused, CommitError, MarkRefused, PersistError, ProgramRefused, QueryRefused, Refusal, RegisterRefused,
    RollbackRefused, TrustRefused, Unsettled, WarrantRefused,
};
use sockets::{bind_query_socket, serve, serve_metrics, serve_queries};
pub use start::run;

use crate::clock::boot_now_ns;
/// Now by the daemon's anchored clock, and CLOCK_BOOTTIME, the clock the
/// kernel checks warrants against (see `crate::clock`).
pub use crate::clock::now_unix;

pub fn tier_name(value: u32) -> &'static str {
    match value {
        tier::ALLOW => "allow",
        tier::APPROVE => "approve",
        tier::DENY => "deny",
        _ => "unmatched",
    }
}

pub fn verdict_name(value: u32) -> &'static str {
    match value {
        verdict::ALLOWED => "allowed",
        verdict::ALLOWED_BY_WARRANT => "allowed-by-warrant",
        verdict::DENIED => "denied",
        verdict::DENIED_NEEDS_WARRANT => "denied-needs-warrant",
        verdict::WOULD_DENY => "would-deny",
        verdict::BATCH_DENIED => "denied-with-batch",
        verdict::UNPARSEABLE => "denied-unparseable",
        _ => "unknown",
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct InstalledWarrant {
    approval: Approval,
    #[serde(with = "key_hex")]
    key: warrant_common::TargetKey,
    revoked: bool,
    /// Uses left as last read from the kernel (after each use): what a
    /// reboot, which empties the kernel's maps, reinstalls.
    #[serde(default)]
    uses_left: Option<u64>,
}

/// Map keys as hex in the state directory (they are plain bytes).
mod key_hex {
    use warrant_common::TargetKey;

    pub fn serialize<S: serde::Serializer>(key: &TargetKey, s: S) -> Result<S::Ok, S::Error> {
        // SAFETY: TargetKey is repr(C) with no implicit padding.
        let bytes = unsafe { std::slice::from_raw_parts(std::ptr::from_ref(key).cast::<u8>(), size_of::<TargetKey>()) };
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TargetKey, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        if bytes.len() != size_of::<TargetKey>() {
            return Err(serde::de::Error::custom("wrong key length"));
        }
        // SAFETY: any bytes are a valid TargetKey; read_unaligned copies them out.
        Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<TargetKey>()) })
    }
}

struct State {
    config: Config,
    host: String,
    kernel: Kernel,
    /// The roots of trust accepted here, oldest (the configuration's keys)
    /// first; the last one signs new bundles.
    trust_chain: Vec<TrustRoot>,
    /// The configuration's root when root has to settle it (see
    /// `trust_pin`): no new bundle or rotation is accepted meanwhile.
    trust_unsettled: Option<TrustRoot>,
    policy: Option<CompiledPolicy>,
    /// The policy replaced last: events decided just before a reload name
    /// its rules.
    earlier_policies: versions::EarlierPolicies,
    audit: AuditLog,
    warrants: BTreeMap<u32, InstalledWarrant>,
    /// Every warrant id ever installed here, persisted: a warrant is installed once.
    ledger: BTreeSet<String>,
    counters: BTreeMap<String, u64>,
    /// Decisions by (verdict, action, profile), for the metrics.
    decision_counts: metrics::DecisionCounts,
    /// The policy in force has expired and that was reported.
    expiry_reported: bool,
    /// Signs audit checkpoints.
    host_key: SigningKey,
    /// The record count of the last checkpoint, and when it was written.
    last_checkpoint: (u64, std::time::Instant),
    /// Rule contents the kernel sent, rendered, until their decisions are
    /// recorded.
    rule_contents: rule_contents::RuleContents,
    /// Warrants used since the last tick: the state their change left is
    /// noted for rollback (a file's writes follow the open that used it).
    pending_after: BTreeSet<String>,
    /// Lost events already written to the audit log as a gap.
    lost_events_recorded: u64,
    /// Files of the watched bundle directory already tried (path, size, mtime).
    seen_bundles: HashSet<(PathBuf, u64, i64)>,
    /// Of those, the ones refused while the keys were unsettled: tried
    /// again once root accepts the configuration's keys.
    bundles_awaiting_trust: Vec<(PathBuf, u64, i64)>,
    /// Paths of protected inodes already named in records, checked with one
    /// stat before use (once a drain): what it saves is a walk of the tree
    /// per record. With the drain in which each was checked last.
    file_paths: HashMap<warrant_common::FileKey, (PathBuf, u64)>,
    /// Drains of the event ring so far (the last is the one under way).
    drains: u64,
    /// Executables' paths, by process and inode, for decision records.
    exe_names: exe_names::ExeNames,
    /// Limits new change requests; batches their notifications.
    request_gate: RequestGate,
    /// Each profile's latest denials, for `warrant why`.
    recent_denials: query::RecentDenials,
    /// Change requests whose warrant was refused at install, with why.
    refused_requests: HashMap<String, String>,
    /// PROTECTED's failed inserts already recorded (see `check_protected_misses`).
    protected_misses_recorded: u64,
    /// When the trees were last walked again to settle those misses (see
    /// `heal_protected`).
    protected_healed_at: Option<std::time::Instant>,
    /// The protected roots for mount changes, and the policy version they
    /// are of (see `mounts`).
    mount_roots: Option<(u64, Vec<(PathBuf, u32)>)>,
    /// The kernel's mark change count when the marks were last saved.
    marks_saved_at: Option<u64>,
    /// Marks at the last save.
    marks_count: usize,
    /// Records the audit log could not take since its last good write.
    unwritten_records: u64,
    /// Records written whose fdatasync failed, not yet recorded as a gap.
    unsynced_records: u64,
    /// The daemon found itself a subject, and said so.
    confined_reported: bool,
    /// The wall clock is off the anchored one, and that was recorded.
    clock_skew_reported: bool,
}

/// Most paths `file_paths` keeps; it starts again empty when full.
const FILE_PATHS_KEPT: usize = 4096;

/// Accepted trust roots, one file per version: replayed from the
/// configuration's keys at start.
fn trust_roots_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("trust-roots")
}

/// The configuration's root, then each persisted rotation that a threshold
/// of the root before it signed. A rotation that no longer verifies (the
/// configuration's keys changed) ends the chain there, loudly; it is
/// returned (file, reason) to be audited once the log is open.
fn load_trust_chain(config: &Config, initial: TrustRoot) -> (Vec<TrustRoot>, Option<(String, String)>) {
    let mut chain = vec![initial];
    for path in new_files(&trust_roots_dir(&config.state_dir)) {
        let current = chain.last().expect("never empty");
        let next = fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| Envelope::parse(&text).map_err(|e| e.to_string()))
            .and_then(|envelope| current.rotate(&envelope).map_err(|e| e.to_string()));
        match next {
            Ok(root) => chain.push(root),
            Err(e) => {
                error!(file = %path.display(), "persisted trust root does not follow the one before it: {e}; using trust root v{}", current.version);
                return (chain, Some((path.display().to_string(), e)));
            }
        }
    }
    (chain, None)
}

/// The origin line of this host's audit checkpoints.
pub fn audit_origin(host: &str) -> String {
    format!("{host}/warrant-audit")
}

/// The host key at `path`, made (with its `.pub`) on first start.
fn load_host_key(path: &Path) -> Result<SigningKey, DaemonError> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).doing(|| format!("cannot create {}", dir.display()))?;
        }
        let public = trust::generate_key_pair(path).doing(|| "cannot make the host key".into())?;
        info!(key = %trust::key_id(&public), path = %path.display(), "made the host key that signs audit checkpoints");
    }
    trust::read_signing_key(path).doing(|| "cannot read the host key".into())
}

/// How many lost kernel events the audit log has recorded as gaps.
fn lost_events_path(state_dir: &Path) -> PathBuf {
    state_dir.join("lost-events")
}

fn policy_bundle_path(state_dir: &Path) -> PathBuf {
    state_dir.join("policy.bundle")
}
fn version_path(state_dir: &Path) -> PathBuf {
    state_dir.join("policy.version")
}
/// The content digest's key, kept in the state directory (which subjects
/// may neither read nor write) so that content-bound warrants outlive a
/// reboot, and put into the kernel when its map is new.
fn digest_key_path(state_dir: &Path) -> PathBuf {
    state_dir.join("digest.key")
}

/// Makes the kernel's digest key the one in the state directory, drawing
/// one at the first start.
fn restore_digest_key(kernel: &mut Kernel, state_dir: &Path) -> Result<(), DaemonError> {
    let path = digest_key_path(state_dir);
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    let stored = fs::read(&path).ok().filter(|b| b.len() == 16).map(|b| [word(&b[..8]), word(&b[8..])]);
    let key = match stored {
        Some(key) => key,
        None => {
            use rand::RngCore as _;
            let key = [rand::rngs::OsRng.next_u64(), rand::rngs::OsRng.next_u64()];
            let bytes: Vec<u8> = key.iter().flat_map(|w| w.to_le_bytes()).collect();
            write_atomic(&path, &bytes).doing(|| format!("cannot write {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .doing(|| format!("cannot make {} 0600", path.display()))?;
            tracing::info!(path = %path.display(), "drew the key for rule content digests");
            key
        }
    };
    if kernel.digest_key()? != key {
        kernel.set_digest_key(key)?;
    }
    Ok(())
}

fn ledger_path(state_dir: &Path) -> PathBuf {
    state_dir.join("warrant-ledger.json")
}
/// The installed warrants by kernel index: the kernel map is pinned and
/// outlives the daemon, so the names behind its indexes must too.
fn warrants_path(state_dir: &Path) -> PathBuf {
    state_dir.join("warrants.json")
}

/// A number the daemon persisted in a file of its own; 0 before the first.
fn read_number(path: &Path) -> u64 {
    fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

impl State {
    /// Records a typed reply as the body of record `kind` (what the caller
    /// was told is what the log keeps).
    fn record_reply(&mut self, kind: &str, body: &impl serde::Serialize) -> u64 {
        // A body that will not serialise still leaves a record that says so.
        let fields = serde_json::to_value(body).unwrap_or_else(|e| json!({"unserialisable": e.to_string()}));
        self.record(kind, fields)
    }

    fn record(&mut self, kind: &str, fields: Value) -> u64 {
        self.record_fields(kind, Fields::from_value(fields))
    }

    /// Writes record `kind` with `fields` (which may set `time`, `kind` or
    /// `host` themselves); returns its sequence number, 0 if not written.
    fn record_fields(&mut self, kind: &str, mut fields: Fields) -> u64 {
        fields
            .set_if_absent("time", || now_unix().into())
            .set_if_absent("kind", || kind.into())
            .set_if_absent("host", || self.host.clone().into());
        let appended = self.audit.append(fields);
        if self.audit.rotated {
            // The new file is a new inode: protect it like the one before.
            self.audit.rotated = false;
            let log = self.config.audit_log.clone();
            self.protect_new_inodes(&[], &[log], "the new audit log file");
        }
        self.note_syncs();
        match appended {
            Ok(seq) => {
                if self.unwritten_records > 0 {
                    let lost = std::mem::take(&mut self.unwritten_records);
                    self.record("audit.gap", json!({"cause": "audit log writes failed", "records_not_written": lost}));
                }
                seq
            }
            Err(e) => {
                // The log is the record of truth: say so loudly (once per
                // failing spell, not per record), keep enforcing, and record
                // the gap when writes work again.
                if self.unwritten_records == 0 {
                    error!("audit log write failed: {e}");
                }
                self.unwritten_records += 1;
                0
            }
        }
    }

    /// The newest version accepted here: persisted, or in force if the
    /// file cannot be read.
    fn last_version(&self) -> u64 {
        let in_force = self.policy.as_ref().map_or(0, CompiledPolicy::version);
        read_number(&version_path(&self.config.state_dir)).max(in_force)
    }

    fn status(&self) -> reply::Status {
        let warrants = self
            .warrants
            .values()
            .filter(|w| !w.revoked)
            .map(|w| reply::WarrantStatus {
                id: w.approval.id.clone(),
                action: w.approval.action.clone(),
                target: w.approval.target.clone(),
                profile: w.approval.profile.clone(),
                approver: w.approval.approver.clone(),
                uses_left: self.kernel.warrant(&w.key).map(|e| e.uses_left).unwrap_or(0),
                expires_at: w.approval.expires_at,
            })
            .collect();
        let unsettled = self.trust_unsettled.as_ref();
        reply::Status {
            daemon: "running".into(),
            host: self.host.clone(),
            policy_version: self.policy.as_ref().map(CompiledPolicy::version),
            policy_expires: self.policy.as_ref().map(|p| p.policy.expires.clone()),
            policy_expired: self.policy.as_ref().map(|p| p.expired_at(now_unix())),
            profiles: self.policy.as_ref().map(|p| p.profile_ids.keys().cloned().collect()),
            trust_root: self.trust_chain.last().map(|root| reply::TrustRootStatus {
                version: root.version,
                threshold: root.threshold,
                keys: root.key_ids(),
                config_differs: unsettled.is_some(),
                configured_keys: unsettled.map(TrustRoot::key_ids),
                configured_threshold: unsettled.map(|root| root.threshold),
            }),
            warrants,
            decisions: self.counters.clone(),
            requests: reply::RequestCounts {
                open: self.request_gate.open(),
                dropped: self.request_gate.dropped().clone(),
            },
            marks: reply::MarkCounts { files: self.marks_count, capacity: warrant_common::MARKS_CAPACITY },
            clock_skew_secs: crate::clock::skew_secs(),
            lost_events: self.kernel.lost_events().ok(),
            protected_full: self.kernel.protected_misses_unsettled(),
            kernel: kernel_release(),
            mode: self.kernel.mode().name().into(),
            missing_hooks: self.kernel.missing_hooks().to_vec(),
        }
    }

    fn metrics(&self) -> metrics::Snapshot {
        let now = boot_now_ns();
        let warrants_active = self
            .warrants
            .values()
            .filter(|w| !w.revoked)
            .filter(|w| self.kernel.warrant(&w.key).is_some_and(|e| e.uses_left > 0 && e.expires_ns > now))
            .count() as u64;
        metrics::Snapshot {
            decisions: self.decision_counts.clone(),
            warrants_active,
            lost_events: self.kernel.lost_events().unwrap_or(0),
            policy_version: self.policy.as_ref().map(CompiledPolicy::version),
            policy_expired: self.policy.as_ref().is_some_and(|p| p.expired_at(now_unix())),
            enforcement_available: true,
            audit_records: self.audit.head().0,
            requests_open: self.request_gate.open() as u64,
            requests_dropped: self.request_gate.dropped().clone(),
        }
    }

    /// The policy a kernel decision of policy `version` read.
    /// None for a version this daemon no longer keeps (or never saw).
    fn policy_of_version(&self, version: u64) -> Option<&CompiledPolicy> {
        match &self.policy {
            Some(current) if current.version() == version => Some(current),
            _ => self.earlier_policies.get(version),
        }
    }
}

/// A policy's text compiled as this daemon enforces it: with the query
/// socket's directory guarded (no subject replaces the socket) and the
/// socket itself open to every profile (each may ask about itself).
fn compile_here(
    config: &Config,
    text: &str,
    names: &dyn policy::HostNames,
) -> Result<CompiledPolicy, policy::PolicyError> {
    let query_dir: Vec<String> =
        config.query_socket.parent().map(|d| d.to_string_lossy().into_owned()).into_iter().collect();
    for surface in crate::guarded::make_missing() {
        warn!("a guarded surface this host lacks could not be made, and is not guarded: {surface}");
    }
    let mut compiled = policy::compile_guarding(policy::Policy::parse(text)?, &query_dir, names)?;
    compiled.allow_socket(&config.query_socket.to_string_lossy());
    Ok(compiled)
}

/// Gives the heap that work freed (BTF parsed at load, a policy's tree
/// walks and pickups) back to the system rather than carry it as resident
/// memory.
fn give_back_freed_memory() {
    // SAFETY: malloc_trim only releases free memory at the heaps' tops and
    // in free chunks, in every arena; no live allocation is touched.
    unsafe { libc::malloc_trim(0) };
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}
