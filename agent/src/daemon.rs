//! `warrant daemon`: loads the programs, keeps policy and warrants in the
//! kernel maps, turns decision events into audit records and change requests,
//! and answers the control socket.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, anyhow};
use ed25519_dalek::SigningKey;
use serde_json::{Map, Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, unix::AsyncFd},
    net::{UnixListener, UnixStream},
};
use tracing::{error, info, warn};
use warrant_common::{
    Event, FileKey, NO_WARRANT, ProtectedEntry, SELF_TREE, TargetKey, WarrantEntry, action, mode, tier, verdict,
};

use crate::{
    approval::{self, Approval},
    audit::AuditLog,
    config::Config,
    control::{Request, Response},
    durable::write_atomic,
    kernel::Kernel,
    metrics,
    policy::{self, CompiledPolicy, render_target},
    protect, query,
    request_gate::RequestGate,
    requests::{self, ChangeRequest},
    rollback, subjects,
    trust::{self, Envelope, POLICY_PAYLOAD_TYPE},
    trust_root::{self, TrustRoot},
};

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// CLOCK_BOOTTIME now, in ns: the clock the kernel checks warrants against.
fn boot_now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// A wall-clock instant (unix seconds) on CLOCK_BOOTTIME.
fn boot_ns_at(unix: u64) -> u64 {
    let now_unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
    let delta = unix as i128 * 1_000_000_000 - now_unix_ns;
    (boot_now_ns() as i128 + delta).clamp(0, u64::MAX as i128) as u64
}

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
    policy: Option<CompiledPolicy>,
    /// The policy replaced last: events decided just before a reload name
    /// its rules.
    previous_policy: Option<CompiledPolicy>,
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
    /// Rule contents the kernel sent, rendered, by content digest (bounded:
    /// each is wanted by the decision that follows it on the ring).
    rule_contents: HashMap<u64, String>,
    /// Warrants used since the last tick: the state their change left is
    /// noted for rollback (a file's writes follow the open that used it).
    pending_after: BTreeSet<String>,
    /// Lost events already written to the audit log as a gap.
    lost_events_recorded: u64,
    /// Files of the watched bundle directory already tried (path, size, mtime).
    seen_bundles: HashSet<(PathBuf, u64, i64)>,
    /// Paths of protected inodes already named in records, checked with one
    /// stat before use: what it saves is a walk of the tree per record.
    file_paths: HashMap<warrant_common::FileKey, PathBuf>,
    /// Limits new change requests; batches their notifications.
    request_gate: RequestGate,
    /// Each profile's latest denials, for `warrant why`.
    recent_denials: query::RecentDenials,
    /// Change requests whose warrant was refused at install, with why.
    refused_requests: HashMap<String, String>,
}

/// Most paths `file_paths` keeps; it starts again empty when full.
const FILE_PATHS_KEPT: usize = 4096;

type Shared = Arc<Mutex<State>>;

/// Accepted trust roots, one file per version: replayed from the
/// configuration's keys at start.
fn trust_roots_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("trust-roots")
}

/// The configuration's root, then each persisted rotation that a threshold
/// of the root before it signed. A rotation that no longer verifies (the
/// configuration's keys changed) ends the chain there, loudly.
fn load_trust_chain(config: &Config, initial: TrustRoot) -> Vec<TrustRoot> {
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
                break;
            }
        }
    }
    chain
}

/// The origin line of this host's audit checkpoints.
pub fn audit_origin(host: &str) -> String {
    format!("{host}/warrant-audit")
}

/// The host key at `path`, made (with its `.pub`) on first start.
fn load_host_key(path: &Path) -> anyhow::Result<SigningKey> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let public = trust::generate_key_pair(path).map_err(|e| anyhow!("host key: {e}"))?;
        info!(key = %trust::key_id(&public), path = %path.display(), "made the host key that signs audit checkpoints");
    }
    trust::read_signing_key(path).map_err(|e| anyhow!("host key: {e}"))
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
fn restore_digest_key(kernel: &mut Kernel, state_dir: &Path) -> anyhow::Result<()> {
    let path = digest_key_path(state_dir);
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    let stored = fs::read(&path).ok().filter(|b| b.len() == 16).map(|b| [word(&b[..8]), word(&b[8..])]);
    let key = match stored {
        Some(key) => key,
        None => {
            use rand::RngCore as _;
            let key = [rand::rngs::OsRng.next_u64(), rand::rngs::OsRng.next_u64()];
            let bytes: Vec<u8> = key.iter().flat_map(|w| w.to_le_bytes()).collect();
            write_atomic(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
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
    fn record(&mut self, kind: &str, fields: Value) -> u64 {
        let mut record = Map::new();
        record.insert("time".into(), now_unix().into());
        record.insert("kind".into(), kind.into());
        record.insert("host".into(), self.host.clone().into());
        if let Value::Object(fields) = fields {
            record.extend(fields);
        }
        let appended = self.audit.append(record);
        if self.audit.rotated {
            // The new file is a new inode: protect it like the one before.
            self.audit.rotated = false;
            let log = self.config.audit_log.clone();
            self.protect_new_inodes(&[], &[log], "the new audit log file");
        }
        match appended {
            Ok(seq) => seq,
            Err(e) => {
                // The log is the record of truth: say so loudly, keep enforcing.
                error!("audit log write failed: {e}");
                0
            }
        }
    }

    fn last_version(&self) -> u64 {
        read_number(&version_path(&self.config.state_dir))
    }

    /// Verifies and applies a bundle; on any refusal the policy in force stays.
    /// The kernel's protected inodes for policy trees `trees` and Warrant's
    /// own files, with the tree ids they belong to.
    fn protected_inodes(
        &self,
        trees: &[String],
    ) -> Result<(std::collections::HashMap<FileKey, ProtectedEntry>, HashSet<u32>), protect::ProtectError> {
        let own = self.config.own_paths();
        let roots = trees.iter().map(Path::new).chain(own.iter().map(PathBuf::as_path));
        for path in protect::on_overlayfs(roots) {
            warn!(path = %path.display(), "protected path is on overlayfs, where Warrant cannot protect files");
        }
        let inodes = protect::inodes(trees, &own)?;
        let mut ids: HashSet<u32> = trees.iter().map(|t| protect::tree_id(t)).collect();
        ids.insert(SELF_TREE);
        Ok((inodes, ids))
    }

    /// Adds the inodes of policy `trees` and Warrant's `own` paths to the
    /// protected set, for a file the daemon itself just replaced (`what`).
    fn protect_new_inodes(&mut self, trees: &[String], own: &[PathBuf], what: &str) {
        let added = protect::inodes(trees, own)
            .map_err(|e| e.to_string())
            .and_then(|entries| self.kernel.add_protected(&entries).map_err(|e| e.to_string()));
        if let Err(e) = added {
            error!("cannot protect {what}: {e}");
        }
    }

    /// Makes subjects of running processes the policy matches: the kernel
    /// only sees execs and cgroup moves from now on.
    fn pick_up(&mut self, entries: &std::collections::HashMap<warrant_common::MatchKey, u32>) {
        for found in subjects::running_matches(entries, std::process::id()) {
            if self.kernel.subject_profile(found.pid).is_some() {
                continue;
            }
            let profile = self.policy.as_ref().map(|p| p.profile_name(found.profile_id)).unwrap_or_default();
            match self.kernel.mark_process(found.pid, found.profile_id) {
                Ok(0) => {}
                Ok(threads) => {
                    let exe = exe_of(found.pid);
                    info!(pid = found.pid, profile, by = found.by, "running process picked up as a subject");
                    self.record(
                        "subject.picked_up",
                        json!({"pid": found.pid, "exe": exe, "profile": profile, "by": found.by, "threads": threads}),
                    );
                }
                Err(e) => warn!(pid = found.pid, "cannot pick up a matching process: {e}"),
            }
        }
    }

    /// Names a decision's target for people: for a file, its path.
    fn describe_target(&mut self, key: &TargetKey) -> String {
        let text = render_target(key);
        if action::target_kind(key.action) != action::TargetKind::File {
            return text;
        }
        let (tree_id, inode) = policy::file_target(key);
        let tree = self
            .policy
            .as_ref()
            .and_then(|p| p.policy.protect.iter().find(|t| protect::tree_id(t) == tree_id))
            .cloned();
        match (tree, inode) {
            (Some(tree), None) => tree,
            (Some(tree), Some(inode)) => self
                .path_of(Path::new(&tree), inode)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("{tree} (inode {}, since removed)", inode.ino)),
            (None, _) => text,
        }
    }

    /// A path of protected inode `key` under `tree`: the one named last if
    /// it still leads there, else found by walking the tree.
    fn path_of(&mut self, tree: &Path, key: warrant_common::FileKey) -> Option<PathBuf> {
        if let Some(path) = self.file_paths.get(&key)
            && protect::file_key(path) == Some(key)
        {
            return Some(path.clone());
        }
        let path = protect::find_path(tree, key)?;
        if self.file_paths.len() >= FILE_PATHS_KEPT {
            self.file_paths.clear();
        }
        self.file_paths.insert(key, path.clone());
        Some(path)
    }

    /// Verifies and applies a bundle. Every refusal, whichever way the
    /// bundle came (`via`: control, bundle_dir, restore), is audited.
    fn apply_bundle(&mut self, bundle: &str, restoring: bool, via: &str) -> Result<Value, String> {
        self.try_apply_bundle(bundle, restoring).map_err(|(kind, message)| {
            // As the refused bundle claims it: it may be unsigned.
            let version = Envelope::parse(bundle)
                .ok()
                .and_then(|e| e.unverified_text())
                .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
                .and_then(|table| table.get("version")?.as_integer());
            self.record(kind, json!({"version": version, "via": via, "reason": message}));
            message
        })
    }

    /// Err: the audit kind (policy.refused, or policy.error once the kernel
    /// holds the new policy) and the message.
    fn try_apply_bundle(&mut self, bundle: &str, restoring: bool) -> Result<Value, (&'static str, String)> {
        let refused = |message: String| ("policy.refused", message);
        let started = std::time::Instant::now();
        let envelope = Envelope::parse(bundle).map_err(|e| refused(format!("bundle refused: {e}")))?;
        // A new bundle needs the root in force. The persisted bundle, restored
        // at start, was accepted under a root that may since have rotated.
        let roots = if restoring { &self.trust_chain[..] } else { &self.trust_chain[self.trust_chain.len() - 1..] };
        let verified = roots
            .iter()
            .rev()
            .map(|root| envelope.verify(POLICY_PAYLOAD_TYPE, &root.keys, root.threshold))
            .reduce(|newest, older| newest.or(older))
            .expect("the trust chain is never empty");
        let (payload, signers) = verified.map_err(|e| refused(format!("bundle refused: {e}")))?;
        let text = String::from_utf8(payload).map_err(|_| refused("bundle refused: policy is not UTF-8".into()))?;
        let mut compiled = policy::Policy::parse(&text)
            .and_then(policy::compile)
            .map_err(|e| refused(format!("bundle refused: {e}")))?;
        // Every subject may ask about itself.
        compiled.allow_socket(&self.config.query_socket.to_string_lossy());
        let last = self.last_version();
        let version = compiled.version();
        if version < last || (version == last && !restoring) {
            return Err(refused(format!(
                "bundle refused: version {version} is not newer than the accepted version {last} (rollback protection)"
            )));
        }
        // The bundle in force, restored at start, stays in force past its
        // expiry (never fail open); check_expiry says so loudly.
        if compiled.expired_at(now_unix()) && !restoring {
            return Err(refused(format!("bundle refused: policy v{version} expired at {}", compiled.policy.expires)));
        }
        let mut phases = serde_json::Map::new();
        // `verify` is everything before: the signature, the parse and compile.
        let mut phase_started = started;
        let mut phase = |name: &str| {
            phases.insert(name.into(), json!(phase_started.elapsed().as_secs_f64() * 1e3));
            phase_started = std::time::Instant::now();
        };
        phase("verify");
        // Walked before anything changes, so a refusal leaves the policy in force whole.
        let (inodes, trees) =
            self.protected_inodes(&compiled.policy.protect).map_err(|e| refused(format!("bundle refused: {e}")))?;
        let not_loaded = |e: crate::kernel::KernelError| {
            ("policy.error", format!("bundle could not be loaded into the kernel: {e}"))
        };
        self.kernel
            .set_protected(&inodes, &trees)
            .and_then(|()| self.kernel.set_proc_trees(&protect::proc_trees(&compiled.policy.protect)))
            .map_err(not_loaded)?;
        phase("protect");
        self.kernel.set_policy(version, &compiled.profiles, &compiled.rules).map_err(not_loaded)?;
        let matches = subjects::resolve(&compiled.matchers);
        self.kernel.set_matches(&matches.entries, &matches.cgroup_paths, matches.kinds).map_err(not_loaded)?;
        phase("kernel");
        let state_dir = self.config.state_dir.clone();
        write_atomic(&policy_bundle_path(&state_dir), bundle.as_bytes())
            .and_then(|()| write_atomic(&version_path(&state_dir), version.to_string().as_bytes()))
            .map_err(|e| {
                ("policy.error", format!("policy applied but not persisted in {}: {e}", state_dir.display()))
            })?;
        phase("persist");
        let signer_ids: Vec<String> = signers.iter().map(crate::keys::PublicKey::id).collect();
        let profiles: Vec<String> = compiled.profile_ids.keys().cloned().collect();
        let mut unresolved = compiled.unresolved.clone();
        unresolved.extend(matches.unresolved.iter().cloned());
        for rule in &unresolved {
            warn!(version, "{rule}; the rule covers nothing on this host");
        }
        self.previous_policy = self.policy.replace(compiled);
        self.expiry_reported = false;
        self.drop_orphan_warrants();
        self.record(
            "policy.applied",
            json!({"version": version, "signers": signer_ids, "profiles": profiles, "unresolved": unresolved}),
        );
        info!(version, "policy applied");
        phase("record");
        self.pick_up(&matches.entries);
        phase("pick_up");
        // From the bundle received to every map written, persisted and the
        // running processes picked up: what `cargo xtask bench` reports.
        let apply_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(json!({"version": version, "profiles": profiles, "apply_ms": apply_ms, "apply_phases_ms": phases}))
    }

    /// Accepts a new trust root signed by a threshold of the one in force.
    fn rotate_trust(&mut self, text: &str) -> Result<Value, String> {
        let current = self.trust_chain.last().expect("the trust chain is never empty").clone();
        let rotated = Envelope::parse(text)
            .map_err(|e| trust_root::TrustRootError::from(e).to_string())
            .and_then(|envelope| current.rotate(&envelope).map_err(|e| e.to_string()));
        let root = match rotated {
            Ok(root) => root,
            Err(message) => {
                self.record("trust.refused", json!({"reason": message}));
                return Err(message);
            }
        };
        let dir = trust_roots_dir(&self.config.state_dir);
        fs::create_dir_all(&dir)
            .and_then(|()| write_atomic(&dir.join(format!("{:08}.bundle", root.version)), text.as_bytes()))
            .map_err(|e| format!("trust root not accepted: cannot persist it in {}: {e}", dir.display()))?;
        let summary = json!({"version": root.version, "threshold": root.threshold, "keys": root.key_ids(),
                             "previous_version": current.version});
        self.record("trust.rotated", summary.clone());
        info!(version = root.version, "trust root rotated");
        self.trust_chain.push(root);
        Ok(summary)
    }

    /// Warrants whose approver is no longer an RI for their action go.
    fn drop_orphan_warrants(&mut self) {
        let Some(policy) = &self.policy else { return };
        let mut orphans = Vec::new();
        for (index, w) in &self.warrants {
            if w.revoked {
                continue;
            }
            let still = policy.responsibles.iter().any(|(ri, key)| {
                ri.name == w.approval.approver && policy.approver_for(key, &w.approval.action).is_some()
            });
            if !still {
                orphans.push(*index);
            }
        }
        for index in orphans {
            let _ = self.revoke_index(index, "approver no longer a Responsible Individual in policy");
        }
    }

    fn save_warrants(&self) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(&self.warrants).expect("serialises");
        write_atomic(&warrants_path(&self.config.state_dir), &bytes)
            .map_err(|e| format!("cannot persist the warrant table: {e}"))
    }

    fn revoke_index(&mut self, index: u32, reason: &str) -> Result<(), String> {
        let w = self.warrants.get_mut(&index).ok_or("no such warrant")?;
        w.revoked = true;
        let key = w.key;
        let id = w.approval.id.clone();
        self.kernel.remove_warrant(&key).map_err(|e| e.to_string())?;
        self.save_warrants()?;
        self.record("warrant.revoked", json!({"warrant_id": id, "reason": reason}));
        Ok(())
    }

    /// Checks and installs a warrant. Every refusal, whichever way the
    /// warrant came (`via`: control, inbox), is audited.
    fn install_warrant(&mut self, text: &str, via: &str) -> Result<Value, String> {
        self.try_install_warrant(text).map_err(|message| {
            // As the refused warrant claims them: it may be unsigned.
            let claimed = Envelope::parse(text)
                .ok()
                .and_then(|e| e.unverified_text())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or_default();
            let text_of = |key: &str| claimed.get(key).and_then(Value::as_str).map(str::to_owned);
            let (id, request) = (text_of("id"), text_of("request"));
            self.record(
                "warrant.refused",
                json!({"warrant_id": id, "request": request, "via": via, "reason": message}),
            );
            if let Some(request) = request
                && requests::exists(&self.config.state_dir, &request)
            {
                self.refused_requests.insert(request, message.clone());
            }
            message
        })
    }

    fn try_install_warrant(&mut self, text: &str) -> Result<Value, String> {
        let policy = self.policy.as_ref().ok_or("warrant refused: no policy in force: apply a bundle first")?;
        let envelope = Envelope::parse(text).map_err(|e| format!("warrant refused: {e}"))?;
        let checked =
            approval::check(&envelope, policy, &self.host, now_unix()).map_err(|e| format!("warrant refused: {e}"))?;
        let a = &checked.approval;
        if self.ledger.contains(&a.id) {
            return Err(format!("warrant refused: {} was already installed on this host (replay)", a.id));
        }
        // The approver signed what `warrant approve` showed; the request here
        // must still be that (a request approved elsewhere may be absent).
        if let (Some(request), Some(signed)) = (&a.request, &a.request_digest)
            && let Ok(local) = requests::load(&self.config.state_dir, request)
            && local.digest() != *signed
        {
            return Err(format!(
                "warrant refused: change request {request} here (digest {}) is not the one approved (digest {signed})",
                local.digest()
            ));
        }
        if let Some(active) = self.kernel.warrant(&checked.key)
            && active.uses_left > 0
            && active.expires_ns > boot_now_ns()
        {
            let holder = self.warrants.get(&active.warrant_index).map(|w| w.approval.id.clone());
            return Err(format!(
                "warrant refused: {} is still active for this target; revoke it first",
                holder.unwrap_or_else(|| "another warrant".into())
            ));
        }
        let index = self.warrants.keys().next_back().map_or(0, |i| i + 1);
        let entry = WarrantEntry {
            not_before_ns: boot_ns_at(a.not_before),
            expires_ns: boot_ns_at(a.expires_at),
            uses_left: a.max_uses as u64,
            warrant_index: index,
            _reserved: 0,
            content_digest: checked.content_digest,
        };
        // Before the kernel sees the warrant: what it covers, as it is now.
        let snapshot = match rollback::take(&self.config.state_dir, &a.id, &a.action, &a.target, now_unix()) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                return Err(format!(
                    "warrant not installed: {e}; without a snapshot the change could not be rolled back"
                ));
            }
        };
        self.ledger.insert(a.id.clone());
        let ledger = serde_json::to_vec(&self.ledger).expect("serialises");
        write_atomic(&ledger_path(&self.config.state_dir), &ledger)
            .map_err(|e| format!("warrant not installed: cannot persist the ledger: {e}"))?;
        self.kernel.install_warrant(&checked.key, &entry).map_err(|e| format!("warrant not installed: {e}"))?;
        let summary = json!({
            "warrant_id": a.id, "approver": a.approver, "profile": a.profile, "action": a.action,
            "target": a.target, "max_uses": a.max_uses, "expires_at": a.expires_at,
            "request": a.request, "reason": a.reason, "approvers": checked.approvers,
            "content_digest": a.content_digest, "request_digest": a.request_digest,
            "rollback": snapshot.as_ref().map(rollback::describe),
        });
        self.record("warrant.installed", summary.clone());
        let installed = InstalledWarrant {
            uses_left: Some(entry.uses_left),
            approval: checked.approval,
            key: checked.key,
            revoked: false,
        };
        self.warrants.insert(index, installed);
        self.save_warrants()?;
        Ok(summary)
    }

    /// After a reboot the kernel's maps start empty: every warrant still
    /// live goes back in with the uses it had left. After a daemon restart
    /// the pinned map still holds them, and the kernel's count stands.
    fn restore_warrants(&mut self) {
        let now = now_unix();
        let mut restored = Vec::new();
        for (index, w) in &self.warrants {
            if w.revoked || w.approval.expires_at <= now || self.kernel.warrant(&w.key).is_some() {
                continue;
            }
            let uses_left = w.uses_left.unwrap_or(w.approval.max_uses as u64);
            if uses_left == 0 {
                continue;
            }
            let entry = WarrantEntry {
                not_before_ns: boot_ns_at(w.approval.not_before),
                expires_ns: boot_ns_at(w.approval.expires_at),
                uses_left,
                warrant_index: *index,
                _reserved: 0,
                // Checked at install, so it parses; 0 (any content) if absent.
                content_digest: w.approval.content_digest.as_deref().and_then(approval::parse_digest).unwrap_or(0),
            };
            match self.kernel.install_warrant(&w.key, &entry) {
                Ok(()) => restored.push((w.approval.id.clone(), uses_left)),
                Err(e) => error!(warrant = %w.approval.id, "cannot restore a warrant into the kernel: {e}"),
            }
        }
        for (id, uses_left) in restored {
            self.record("warrant.restored", json!({"warrant_id": id, "uses_left": uses_left}));
        }
    }

    /// Persists the kernel's count of uses left for warrant `index`.
    fn note_warrant_use(&mut self, index: u32) {
        let Some(w) = self.warrants.get_mut(&index) else { return };
        self.pending_after.insert(w.approval.id.clone());
        let left = self.kernel.warrant(&w.key).map_or(0, |e| e.uses_left);
        w.uses_left = Some(left);
        if let Err(e) = self.save_warrants() {
            error!("{e}");
        }
    }

    /// Applies new bundles from `bundle_dir` and installs warrants from
    /// `inbox_dir`, each through the same checks as the control socket.
    fn check_watched_dirs(&mut self) {
        if let Some(dir) = self.config.bundle_dir.clone() {
            for path in new_files(&dir) {
                let Ok(meta) = fs::metadata(&path) else { continue };
                let stamp = (
                    path.clone(),
                    meta.len(),
                    meta.modified()
                        .map(|t| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0))
                        .unwrap_or(0),
                );
                if !self.seen_bundles.insert(stamp) {
                    continue;
                }
                let text = fs::read_to_string(&path);
                // The bundle in force, seen again after a restart: nothing to do.
                let in_force = fs::read_to_string(policy_bundle_path(&self.config.state_dir)).ok();
                if let (Ok(text), Some(in_force)) = (&text, &in_force)
                    && text.trim() == in_force.trim()
                {
                    continue;
                }
                let file = path.display().to_string();
                let outcome = match text {
                    Ok(text) => self.apply_bundle(&text, false, &format!("bundle_dir {file}")),
                    Err(e) => {
                        let reason = format!("cannot read: {e}");
                        self.record("policy.refused", json!({"via": format!("bundle_dir {file}"), "reason": reason}));
                        Err(reason)
                    }
                };
                match outcome {
                    Ok(_) => info!(file, "bundle from the watched directory applied"),
                    Err(reason) => warn!(file, "{reason}"),
                }
            }
        }
        if let Some(inbox) = self.config.inbox_dir.clone() {
            for path in new_files(&inbox) {
                let via = format!("inbox {}", path.display());
                let outcome = match fs::read_to_string(&path) {
                    Ok(text) => self.install_warrant(&text, &via),
                    Err(e) => {
                        let reason = format!("cannot read: {e}");
                        self.record("warrant.refused", json!({"via": via, "reason": reason}));
                        Err(reason)
                    }
                };
                let (to, reason) = match outcome {
                    Ok(_) => ("installed", None),
                    Err(reason) => ("refused", Some(reason)),
                };
                let dest = inbox.join(to);
                let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
                let moved =
                    fs::create_dir_all(&dest).and_then(|()| fs::rename(&path, dest.join(&name))).and_then(|()| {
                        match &reason {
                            Some(reason) => {
                                let mut note = dest.join(&name).into_os_string();
                                note.push(".reason");
                                fs::write(note, format!("{reason}\n"))
                            }
                            None => Ok(()),
                        }
                    });
                if let Err(e) = moved {
                    error!(file = %path.display(), "cannot move a warrant out of the inbox: {e}");
                }
            }
        }
    }

    /// Signs a checkpoint of the audit log when records came since the last
    /// one and the interval has passed (or `now`, at shutdown).
    fn checkpoint(&mut self, now: bool) {
        let (records, _) = self.audit.head();
        let (last, at) = self.last_checkpoint;
        let due = at.elapsed().as_secs() >= self.config.checkpoint_interval_secs;
        if records == last || !(now || due) {
            return;
        }
        match self.audit.checkpoint(&self.host_key, &audit_origin(&self.host)) {
            Ok(()) => self.last_checkpoint = (records, std::time::Instant::now()),
            Err(e) => error!("audit checkpoint failed: {e}"),
        }
    }

    /// Notes, for rollback, the state the changes of recently used warrants left.
    fn note_changes(&mut self) {
        for id in std::mem::take(&mut self.pending_after) {
            if let Err(e) = rollback::note_after(&self.config.state_dir, &id) {
                error!(change = %id, "cannot note the state a change left: {e}");
            }
        }
    }

    /// Puts back what change (warrant) `id` covered, and records who did.
    fn rollback(&mut self, id: &str, force: bool, caller: u32) -> Result<Value, String> {
        self.note_changes();
        let by = json!({"pid": caller, "exe": exe_of(caller), "uid": proc_field(caller, "Uid:"),
                        "loginuid": fs::read_to_string(format!("/proc/{caller}/loginuid")).ok().map(|t| t.trim().to_owned())});
        match rollback::restore(&self.config.state_dir, id, force, now_unix()) {
            Ok(meta) => {
                let what = rollback::describe(&meta);
                // A restored file is a new inode: protect it as its tree is.
                if let rollback::Covered::File { path, .. } = &meta.covered
                    && let Some(policy) = &self.policy
                    && let Some(tree) = policy::tree_of(&policy.policy.protect, &path.to_string_lossy())
                {
                    let tree = tree.to_owned();
                    self.protect_new_inodes(&[tree], &[], "the restored file");
                }
                let summary = json!({"change_id": id, "restored": what, "forced": force, "by": by});
                self.record("change.rolled_back", summary.clone());
                info!(change = id, %what, "change rolled back");
                Ok(summary)
            }
            Err(e) => {
                let message = format!("rollback refused: {e}");
                self.record("rollback.refused", json!({"change_id": id, "reason": message, "by": by}));
                Err(message)
            }
        }
    }

    /// Decisions the kernel made but could not report (its event ring was
    /// full) become a gap record: the log says how many it does not hold.
    fn check_lost_events(&mut self) {
        let lost = match self.kernel.lost_events() {
            Ok(lost) => lost,
            Err(e) => {
                error!("cannot read the kernel's lost-event counter: {e}");
                return;
            }
        };
        // A counter below the recorded count: the maps were made anew (a reboot).
        let recorded = if lost < self.lost_events_recorded { 0 } else { self.lost_events_recorded };
        if lost == recorded {
            self.lost_events_recorded = lost;
            return;
        }
        error!(lost = lost - recorded, "the kernel's event ring was full: decisions were enforced but not reported");
        self.record(
            "audit.gap",
            json!({"lost_events": lost - recorded, "lost_total": lost, "cause": "kernel event ring full"}),
        );
        self.lost_events_recorded = lost;
        if let Err(e) = write_atomic(&lost_events_path(&self.config.state_dir), lost.to_string().as_bytes()) {
            error!("cannot persist the lost-event count: {e}");
        }
    }

    /// A policy past `expires` keeps being enforced (never fall open), but
    /// the host must say so loudly until a new bundle arrives.
    fn check_expiry(&mut self) {
        let Some(policy) = &self.policy else { return };
        if self.expiry_reported || !policy.expired_at(now_unix()) {
            return;
        }
        let (version, expires) = (policy.version(), policy.policy.expires.clone());
        error!(version, %expires, "policy in force has EXPIRED; still enforcing it; apply a new bundle");
        self.record("policy.expired", json!({"version": version, "expires": expires, "still_enforced": true}));
        self.expiry_reported = true;
    }

    fn status(&self) -> Value {
        let warrants: Vec<Value> = self
            .warrants
            .iter()
            .filter(|(_, w)| !w.revoked)
            .map(|(_, w)| {
                let left = self.kernel.warrant(&w.key).map(|e| e.uses_left).unwrap_or(0);
                json!({"id": w.approval.id, "action": w.approval.action, "target": w.approval.target,
                       "profile": w.approval.profile, "approver": w.approval.approver, "uses_left": left,
                       "expires_at": w.approval.expires_at})
            })
            .collect();
        json!({
            "daemon": "running",
            "host": self.host,
            "policy_version": self.policy.as_ref().map(CompiledPolicy::version),
            "policy_expires": self.policy.as_ref().map(|p| p.policy.expires.clone()),
            "policy_expired": self.policy.as_ref().map(|p| p.expired_at(now_unix())),
            "profiles": self.policy.as_ref().map(|p| p.profile_ids.keys().cloned().collect::<Vec<_>>()),
            "trust_root": self.trust_chain.last().map(|root| json!({
                "version": root.version, "threshold": root.threshold, "keys": root.key_ids(),
            })),
            "warrants": warrants,
            "decisions": self.counters,
            "requests": {"open": self.request_gate.open(), "dropped": self.request_gate.dropped()},
            "lost_events": self.kernel.lost_events().ok(),
            "kernel": kernel_release(),
            "mode": self.kernel.mode().name(),
            "missing_hooks": self.kernel.missing_hooks(),
        })
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
    fn policy_of_version(&self, version: u64) -> Option<&CompiledPolicy> {
        match &self.previous_policy {
            Some(previous) if previous.version() == version => Some(previous),
            _ => self.policy.as_ref(),
        }
    }

    /// Keeps the rendering of a rule's content for the decision after it.
    fn on_rule_content(&mut self, content: &warrant_common::RuleContent) {
        if self.rule_contents.len() >= 1024 {
            self.rule_contents.clear();
        }
        let len = content.len as usize;
        let kept = len.min(content.bytes.len());
        let text = crate::nft_render::render(&content.bytes[..kept], kept == len);
        self.rule_contents.insert(content.digest, text);
    }

    fn on_event(&mut self, event: &Event) {
        if event.action == action::SUBJECT_MATCHED {
            let by = match u32::from_le_bytes([event.table[0], event.table[1], event.table[2], event.table[3]]) {
                warrant_common::match_kind::EXE => "exe",
                warrant_common::match_kind::CGROUP => "cgroup",
                _ => "uid",
            };
            let profile = self.policy.as_ref().map(|p| p.profile_name(event.profile_id));
            // The cgroup tracepoint sees the process's leader only: its other
            // threads are marked from here (exec-time matches have no others).
            let threads = if by == "cgroup" {
                self.kernel.mark_process(event.tgid, event.profile_id).unwrap_or_else(|e| {
                    warn!(pid = event.tgid, "cannot mark the threads of a process moved into a matched cgroup: {e}");
                    0
                })
            } else {
                0
            };
            let (exe, comm) = (exe_of(event.tgid), comm_of(event));
            self.record(
                "subject.matched",
                json!({"pid": event.tgid, "exe": exe, "comm": comm, "uid": event.uid, "profile": profile, "by": by, "threads_marked_after": threads}),
            );
            return;
        }
        let action_name = action::name(event.action).unwrap_or("unclassified");
        let target = self.describe_target(&warrant_common::TargetKey {
            profile_id: 0,
            action: event.action,
            family: event.family,
            generation: 0,
            _pad: [0; 6],
            table: event.table,
            object: event.object,
        });
        let decided_under = self.policy_of_version(event.policy_version);
        let (profile, rule, profile_mode) = match decided_under {
            Some(p) => {
                // Self-protection consults no rule.
                let rule = (event.tier != tier::UNMATCHED && !action::is_self_protection(event.action))
                    .then(|| p.rule_names.get(event.rule_index as usize))
                    .flatten()
                    .map(|(profile, r)| {
                        let rate = r.rate.as_ref().map(|rate| format!(" at most {rate}")).unwrap_or_default();
                        format!("{profile}#{}: {} {} -> {:?}{rate}", event.rule_index, r.action, r.target, r.tier)
                            .to_lowercase()
                    });
                let m = p.profiles.iter().find(|(id, _)| *id == event.profile_id).map(|(_, e)| e.mode);
                (p.profile_name(event.profile_id), rule, m)
            }
            None => (format!("profile#{}", event.profile_id), None, None),
        };
        let requests_per_minute = decided_under
            .and_then(|p| p.policy.profiles.iter().find(|x| x.name == profile))
            .and_then(|x| x.requests_per_minute);
        let exe = exe_of(event.tgid).unwrap_or_else(|| "?".into());
        let comm = comm_of(event);
        // A short-lived process may be gone before its event is read.
        let exe = if exe == "?" { format!("? (exited; comm {comm})") } else { exe };
        let verdict_text = verdict_name(event.verdict);
        let mut fields = json!({
            "pid": event.tgid, "tid": event.tid, "uid": event.uid, "exe": exe, "comm": comm,
            "profile": profile, "action": action_name, "target": target,
            "tier": tier_name(event.tier), "verdict": verdict_text, "rule": rule,
            "policy_version": event.policy_version,
            "message": format!("{}/{}", event.msg_index + 1, event.msg_count),
            "mode": if profile_mode == Some(mode::AUDIT) { "audit" } else { "enforce" },
        });
        // An `allow` rule decided in the approve tier: its rate was used up.
        let allow_rule = decided_under.and_then(|p| p.rule_names.get(event.rule_index as usize));
        if event.tier == tier::APPROVE
            && !action::is_self_protection(event.action)
            && allow_rule.is_some_and(|(_, r)| r.tier == policy::Tier::Allow)
        {
            fields["rate_limited"] = json!(true);
        }
        *self.counters.entry(verdict_text.to_owned()).or_default() += 1;
        *self.decision_counts.entry((verdict_text.to_owned(), action_name.to_owned(), profile.clone())).or_default() +=
            1;
        if event.warrant_index != NO_WARRANT
            && let Some(w) = self.warrants.get(&event.warrant_index)
        {
            fields["warrant_id"] = w.approval.id.clone().into();
            fields["approver"] = w.approval.approver.clone().into();
        }
        if event.verdict == verdict::ALLOWED_BY_WARRANT && event.warrant_index != NO_WARRANT {
            self.note_warrant_use(event.warrant_index);
        }
        let content_digest = requests::digest_text(event.content_digest);
        let rendering = self.rule_contents.get(&event.content_digest).cloned().filter(|_| content_digest.is_some());
        if let Some(digest) = &content_digest {
            fields["content_digest"] = digest.clone().into();
        }
        if let Some(text) = &rendering {
            fields["content"] = text.clone().into();
        }
        if event.verdict == verdict::DENIED_NEEDS_WARRANT && event.action != 0 {
            let id = requests::request_id(&profile, action_name, &target, content_digest.as_deref());
            // A repeated attempt updates its request; a new one must pass the gate.
            if !requests::exists(&self.config.state_dir, &id)
                && let Err(dropped) = self.request_gate.admit_new(&profile, requests_per_minute, now_unix())
            {
                fields["request_dropped"] = dropped.to_string().into();
                self.record_decision(&profile, event.verdict, fields);
                return;
            }
            let request = ChangeRequest {
                id: id.clone(),
                host: self.host.clone(),
                profile: profile.clone(),
                action: action_name.into(),
                target: target.clone(),
                first_seen: now_unix(),
                last_seen: now_unix(),
                attempts: 1,
                pid: event.tgid,
                uid: event.uid,
                exe: exe.clone(),
                comm: comm.clone(),
                policy_version: event.policy_version,
                content_digest,
                rendering,
                declined: None,
            };
            match requests::record(&self.config.state_dir, request) {
                Ok(saved) => {
                    fields["request"] = id.into();
                    if saved.attempts == 1 {
                        self.request_gate.queue_notify(saved);
                    }
                }
                Err(e) => error!("cannot write change request: {e}"),
            }
        }
        self.record_decision(&profile, event.verdict, fields);
    }

    /// Writes a decision record; a denial is also kept for its profile's
    /// `warrant why`.
    fn record_decision(&mut self, profile: &str, verdict_value: u32, fields: Value) {
        let denied = matches!(
            verdict_value,
            verdict::DENIED | verdict::DENIED_NEEDS_WARRANT | verdict::BATCH_DENIED | verdict::UNPARSEABLE
        );
        let view = fields.as_object().filter(|_| denied).map(query::denial_view);
        let seq = self.record("decision", fields);
        if let Some(mut view) = view {
            view["seq"] = seq.into();
            view["time"] = now_unix().into();
            self.recent_denials.note(profile, view);
        }
    }

    /// A subject's question about its own profile (never another's).
    fn answer(&self, query: query::Query, pid: u32) -> Result<Value, String> {
        let profile_id = self.kernel.subject_profile(pid).ok_or(
            "not a subject: the query socket answers Warrant's subjects about themselves \
             (operators: warrant audit tail, warrant requests)",
        )?;
        let profile = match &self.policy {
            Some(policy) => policy.profile_name(profile_id),
            None => format!("profile#{profile_id}"),
        };
        match query {
            query::Query::Why => Ok(json!({"profile": profile, "denials": self.recent_denials.of(&profile)})),
            query::Query::MyRequests => {
                let all = requests::list(&self.config.state_dir).map_err(|e| format!("cannot list requests: {e}"))?;
                let mine: Vec<&ChangeRequest> = all.iter().filter(|r| r.profile == profile).collect();
                Ok(json!({"profile": profile, "requests": mine}))
            }
            query::Query::RequestState { id } => {
                let state = self.request_state(&profile, &id)?;
                Ok(json!({"profile": profile, "request": id, "exit_code": state.exit_code(), "status": state}))
            }
        }
    }

    /// Where change request `id` stands, for a subject of `profile`.
    fn request_state(&self, profile: &str, id: &str) -> Result<query::RequestState, String> {
        let request = requests::load(&self.config.state_dir, id)
            .ok()
            .filter(|r| r.profile == profile)
            .ok_or_else(|| format!("no change request {id} of profile {profile}"))?;
        if let Some(reason) = request.declined {
            return Ok(query::RequestState::Declined { reason });
        }
        let now = boot_now_ns();
        let mut spent = None;
        for (index, w) in self.warrants.iter().filter(|(_, w)| w.approval.request.as_deref() == Some(id)) {
            let entry = self.kernel.warrant(&w.key).filter(|_| !w.revoked);
            match entry {
                Some(e) if e.warrant_index == *index && e.uses_left > 0 && e.expires_ns > now => {
                    return Ok(query::RequestState::Approved {
                        warrant_id: w.approval.id.clone(),
                        uses_left: e.uses_left,
                        expires_at: w.approval.expires_at,
                    });
                }
                _ => spent = Some(w.approval.id.clone()),
            }
        }
        if let Some(warrant_id) = spent {
            return Ok(query::RequestState::Expired { warrant_id });
        }
        if let Some(reason) = self.refused_requests.get(id) {
            return Ok(query::RequestState::Refused { reason: reason.clone() });
        }
        Ok(query::RequestState::Pending)
    }

    /// Once per tick: one notify run for the requests opened since the
    /// last, and one `requests.dropped` record per profile that had
    /// attempts past its limits.
    fn flush_requests(&mut self) {
        for (profile, count) in self.request_gate.take_unreported_drops() {
            let total = self.request_gate.dropped().get(&profile).copied().unwrap_or(count);
            warn!(profile, count, "approve-tier attempts opened no change request (past the request limits)");
            self.record("requests.dropped", json!({"profile": profile, "count": count, "total": total}));
        }
        let batch = self.request_gate.take_notify_batch();
        if !batch.is_empty() {
            self.notify(&batch);
        }
    }

    fn notify(&self, batch: &[ChangeRequest]) {
        let Some(command) = &self.config.notify_command else { return };
        let payload = serde_json::to_vec(&json!({"host": self.host, "requests": batch})).expect("serialises");
        let spawned =
            std::process::Command::new("/bin/sh").args(["-c", command]).stdin(std::process::Stdio::piped()).spawn();
        match spawned {
            Ok(mut child) => {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(&payload);
                }
                std::thread::spawn(move || child.wait());
            }
            Err(e) => warn!("notify command failed to start: {e}"),
        }
    }
}

/// The executable of process `pid`, while it lives.
fn exe_of(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).ok()
}

/// The first value of a `/proc/PID/status` line (e.g. the real uid of `Uid:`).
fn proc_field(pid: u32, name: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next().map(str::to_owned)
}

/// The command name the kernel recorded with an event.
fn comm_of(event: &Event) -> String {
    String::from_utf8_lossy(warrant_common::name_bytes(&event.comm)).into_owned()
}

/// The regular, non-hidden files directly in `dir`, by name.
fn new_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        // Symlinks to files count: a Kubernetes ConfigMap mounts its files so.
        .filter(|e| {
            !e.file_name().to_string_lossy().starts_with('.') && fs::metadata(e.path()).is_ok_and(|m| m.is_file())
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("cannot create state directory {}", config.state_dir.display()))?;
    for dir in config.bundle_dir.iter().chain(&config.inbox_dir) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create watched directory {}", dir.display()))?;
    }
    let trusted = config
        .trusted_keys
        .iter()
        .map(|p| trust::read_signer_key(p).map_err(|e| anyhow!("trusted key: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if trusted.is_empty() {
        warn!("no trusted_keys configured: no policy bundle can be accepted; subjects are denied everything");
    }
    let trust_chain =
        load_trust_chain(&config, TrustRoot { version: 0, threshold: config.policy_threshold, keys: trusted });
    let host_key = load_host_key(&config.host_key_path())?;
    let audit = AuditLog::open(&config.audit_log, config.audit_max_bytes).context("cannot open the audit log")?;
    // The checkpoint file exists before Warrant's own files are listed.
    let origin = audit_origin(&config.host_name());
    audit.checkpoint(&host_key, &origin).context("cannot write the audit checkpoint")?;
    let mut kernel = Kernel::load(true).context("enforcement is unavailable (see `warrant doctor`)")?;
    // Loading parsed the kernel's BTF twice (megabytes, freed since): give
    // the freed heap back rather than carry it as resident memory.
    // SAFETY: malloc_trim only releases free memory at the heap's top and in
    // free chunks; no live allocation is touched.
    unsafe { libc::malloc_trim(0) };
    // Warrant's own files are protected from the start, before any policy;
    // a restart keeps the pinned entries of the policy's trees meanwhile.
    let own = protect::inodes(&[], &config.own_paths()).context("cannot list Warrant's own files")?;
    kernel.add_protected(&own)?;
    let events = kernel.take_events()?;
    kernel.set_daemon_tgid(std::process::id())?;
    restore_digest_key(&mut kernel, &config.state_dir)?;
    let ledger =
        fs::read(ledger_path(&config.state_dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let host = config.host_name();
    let warrants = fs::read(warrants_path(&config.state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut state = State {
        config: config.clone(),
        host,
        kernel,
        trust_chain,
        policy: None,
        previous_policy: None,
        audit,
        warrants,
        ledger,
        counters: BTreeMap::new(),
        decision_counts: metrics::DecisionCounts::new(),
        file_paths: HashMap::new(),
        expiry_reported: false,
        host_key,
        last_checkpoint: (0, std::time::Instant::now()),
        pending_after: BTreeSet::new(),
        rule_contents: HashMap::new(),
        lost_events_recorded: read_number(&lost_events_path(&config.state_dir)),
        seen_bundles: HashSet::new(),
        request_gate: RequestGate::new(
            config.requests_per_minute,
            config.max_open_requests,
            requests::list(&config.state_dir).map(|all| all.len()).unwrap_or(0),
        ),
        recent_denials: query::RecentDenials::default(),
        refused_requests: HashMap::new(),
    };
    let missing_hooks = state.kernel.missing_hooks().to_vec();
    let started = json!({"pid": std::process::id(), "kernel": kernel_release(), "mode": state.kernel.mode().name(),
                         "missing_hooks": missing_hooks});
    state.record("daemon.started", started);
    let replaced = state.kernel.replaced_pins().to_vec();
    if !replaced.is_empty() {
        // Events the old maps held unread went with them.
        warn!(?replaced, "replaced pinned maps of another layout; subjects carried over");
        state.record("pins.replaced", json!({"reasons": replaced, "unread_events_lost": true}));
    }
    state.restore_warrants();
    let persisted = fs::read_to_string(policy_bundle_path(&config.state_dir)).ok();
    let initial = persisted
        .map(|b| (b, true))
        .or_else(|| config.bundle.as_ref().and_then(|p| fs::read_to_string(p).ok()).map(|b| (b, false)));
    if let Some((bundle, restoring)) = initial
        && let Err(e) = state.apply_bundle(&bundle, restoring, if restoring { "restore" } else { "config bundle" })
    {
        error!("{e}; no policy in force: subjects are denied every action");
    }
    let shared: Shared = Arc::new(Mutex::new(state));

    let socket = config.socket.clone();
    if let Some(dir) = socket.parent() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).with_context(|| format!("cannot bind {}", socket.display()))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))?;
    let queries = bind_query_socket(&config.query_socket)?;
    info!(socket = %socket.display(), query_socket = %config.query_socket.display(), "daemon ready");

    let reader = tokio::spawn(read_events(events, shared.clone()));
    let query_server = tokio::spawn(serve_queries(queries, shared.clone()));
    let metrics_server = match config.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?;
            info!(%address, "serving Prometheus metrics at /metrics");
            Some(tokio::spawn(serve_metrics(listener, shared.clone())))
        }
        None => None,
    };
    // Watched directories, expiry, ring loss, checkpoints, rollback notes.
    let housekeeping = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                every.tick().await;
                let mut state = shared.lock().expect("state lock");
                state.check_watched_dirs();
                state.check_expiry();
                state.check_lost_events();
                state.checkpoint(false);
                state.note_changes();
                state.flush_requests();
            }
        })
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                tokio::spawn(serve(stream, shared.clone()));
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    reader.abort();
    query_server.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    housekeeping.abort();
    let mut state = shared.lock().expect("state lock");
    state.flush_requests();
    state.record("daemon.stopped", json!({}));
    state.checkpoint(true);
    let _ = fs::remove_file(&socket);
    Ok(())
}

/// What the kernel puts on the EVENTS ring.
enum Record {
    Decision(Box<Event>),
    Content(Box<warrant_common::RuleContent>),
}

async fn read_events(ring: aya::maps::RingBuf<aya::maps::MapData>, shared: Shared) -> anyhow::Result<()> {
    // SAFETY: the ring buffer owns its fd for as long as the AsyncFd lives.
    let mut fd = unsafe { AsyncFd::register(ring) }.map_err(|e| anyhow!("cannot watch the event ring: {e}"))?;
    loop {
        let mut guard = fd.readable_mut().await?;
        // Readiness is cleared before the ring is drained, not after: the
        // kernel wakes a reader only when it had caught up, so an event
        // committed between the last read and a later clear would wait,
        // unread, for the next event that wakes it.
        guard.clear_ready();
        let ring = guard.get_inner_mut();
        // An event leaves the ring only once its record is written and
        // fsynced (the item's drop releases it): a daemon killed in between
        // reads it again after a restart. At least once: a kill between the
        // fsync and the release records it twice.
        while let Some(item) = ring.next() {
            let Some(record) = parse_record(&item) else { continue };
            let mut state = shared.lock().expect("state lock");
            match &record {
                Record::Content(content) => state.on_rule_content(content),
                Record::Decision(event) => state.on_event(event),
            }
            drop(state);
            drop(item);
        }
    }
}

/// One item of the event ring. The two record types differ in size
/// (asserted in warrant-common); anything else is skipped.
fn parse_record(item: &[u8]) -> Option<Record> {
    if item.len() == std::mem::size_of::<warrant_common::RuleContent>() {
        // SAFETY: the kernel wrote a whole RuleContent (size checked).
        let content = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<warrant_common::RuleContent>()) };
        Some(Record::Content(Box::new(content)))
    } else if item.len() >= std::mem::size_of::<Event>() {
        // SAFETY: the kernel wrote a whole Event (size checked).
        Some(Record::Decision(Box::new(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) })))
    } else {
        None
    }
}

/// A minimal HTTP/1.0 responder: every request gets the metrics text.
async fn serve_metrics(listener: tokio::net::TcpListener, shared: Shared) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let body = metrics::render(&shared.lock().expect("state lock").metrics());
        tokio::spawn(async move {
            // The request line and headers are read and ignored.
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

async fn serve(stream: UnixStream, shared: Shared) {
    let peer_pid = stream.peer_cred().ok().and_then(|c| c.pid()).map(|p| p as u32);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => handle(request, peer_pid, &shared),
        Err(e) => Response::error(format!("malformed request: {e}")),
    };
    let mut bytes = serde_json::to_vec(&response).expect("serialises");
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
}

fn handle(request: Request, peer_pid: Option<u32>, shared: &Shared) -> Response {
    let mut state = shared.lock().expect("state lock");
    let Some(pid) = peer_pid else {
        return Response::error("cannot identify the caller (no SO_PEERCRED)");
    };
    if !matches!(request, Request::Status | Request::Metrics)
        && let Some(profile) = state.kernel.subject_profile(pid)
    {
        let message = format!("refused: the caller (pid {pid}) is a subject of profile #{profile}");
        state.record("control.refused", json!({"pid": pid, "request": format!("{request:?}")}));
        return Response::error(message);
    }
    let result = match request {
        Request::Status => Ok(state.status()),
        Request::Metrics => Ok(Value::String(metrics::render(&state.metrics()))),
        Request::Register { profile } => register(&mut state, pid, &profile),
        Request::ApplyPolicy { bundle } => state.apply_bundle(&bundle, false, "control"),
        Request::InstallWarrant { warrant } => state.install_warrant(&warrant, "control"),
        Request::RotateTrust { root } => state.rotate_trust(&root),
        Request::Rollback { id, force } => state.rollback(&id, force, pid),
        Request::Revoke { id } => {
            let index = state.warrants.iter().find(|(_, w)| w.approval.id == id && !w.revoked).map(|(i, _)| *i);
            match index {
                Some(index) => state.revoke_index(index, "revoked by operator").map(|()| json!({"revoked": id})),
                None => Err(format!("no active warrant {id} (see `warrant status`)")),
            }
        }
        Request::DeclineRequest { id, reason } => match requests::decline(&state.config.state_dir, &id, &reason) {
            Ok(request) => {
                let summary = json!({"request": id, "profile": request.profile, "reason": reason});
                state.record("request.declined", summary.clone());
                Ok(summary)
            }
            Err(e) => Err(format!("no change request {id} to decline: {e}")),
        },
    };
    match result {
        Ok(data) => Response::ok(data),
        Err(message) => Response::error(message),
    }
}

/// The query socket, open to every process, in a directory of its own
/// (not among Warrant's own files: the kernel refuses a subject's connect
/// to those).
fn bind_query_socket(path: &Path) -> anyhow::Result<UnixListener> {
    // The kernel decides a connect by the socket's name, up to this length.
    if path.as_os_str().len() >= warrant_common::NAME_LEN {
        anyhow::bail!(
            "query_socket {} is longer than {} bytes: choose a shorter path",
            path.display(),
            warrant_common::NAME_LEN - 1
        );
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    }
    let _ = fs::remove_file(path);
    let listener = UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

async fn serve_queries(listener: UnixListener, shared: Shared) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer_query(stream, shared.clone()));
            }
            Err(e) => {
                warn!("query socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer_query(stream: UnixStream, shared: Shared) {
    use tokio::io::AsyncReadExt as _;
    let peer_pid = stream.peer_cred().ok().and_then(|c| c.pid()).map(|p| p as u32);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read.take(query::MAX_REQUEST_BYTES)).read_line(&mut line).await.is_err() {
        return;
    }
    let response = match (serde_json::from_str::<query::Query>(&line), peer_pid) {
        (Ok(query), Some(pid)) => {
            let state = shared.lock().expect("state lock");
            match state.answer(query, pid) {
                Ok(data) => Response::ok(data),
                Err(message) => Response::error(message),
            }
        }
        (Err(e), _) => Response::error(format!("malformed query: {e}")),
        (_, None) => Response::error("cannot identify the caller (no SO_PEERCRED)"),
    };
    let mut bytes = serde_json::to_vec(&response).expect("serialises");
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
}

fn register(state: &mut State, pid: u32, profile: &str) -> Result<Value, String> {
    let policy = state.policy.as_ref().ok_or("no policy in force: apply a bundle first")?;
    let id = *policy.profile_ids.get(profile).ok_or_else(|| {
        let known: Vec<&String> = policy.profile_ids.keys().collect();
        format!("policy v{} has no profile {profile:?} (profiles: {known:?})", policy.version())
    })?;
    state.kernel.mark_subject(pid, id).map_err(|e| e.to_string())?;
    state.record("subject.registered", json!({"pid": pid, "profile": profile}));
    Ok(json!({"pid": pid, "profile": profile}))
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}
