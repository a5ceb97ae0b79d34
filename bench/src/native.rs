//! What a policy apply does, on this machine's own CPU, file systems and
//! kernel: `cargo xtask bench` runs it on the host, beside the VM, whose
//! emulated CPU and 9p root slow every part. The programs are not loaded
//! here (this kernel may not take them); the maps are, fresh and pinned
//! nowhere, when the host lets root make them.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use warrant::kernel::{Kernel, StagedPolicy};
use warrant::keys::PublicKey;
use warrant::policy::{self, Policy, ThisHost};
use warrant::trust::{self, Envelope, POLICY_PAYLOAD_TYPE};
use warrant_common::{FileKey, ProtectedEntry};

use crate::native_ring::Producer;
use crate::policy_text::{apply_policy, records_policy};

/// Runs of each policy; the first walk reads a cold cache if nothing read
/// those paths before.
const RUNS: usize = 5;

/// For policies of 10, 100 and 1000 rules, each of [`RUNS`] times: the
/// daemon's `verify` phase (the bundle's signature checked, the policy
/// parsed and compiled), its `walk` (the inodes of every protected tree,
/// the guarded ones included, as the daemon walks them but for its own
/// files) and, if the maps could be made, its `commit`'s writes into them
/// (the daemon's commit also persists the bundle, with an fsync, not timed
/// here). One JSON line a policy.
pub fn apply(repo: &Path) -> Result<()> {
    let key_path = repo.join("policies/demo-keys/security-team.key");
    let key = trust::read_signing_key(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let trusted = [PublicKey::Ed25519(key.verifying_key())];
    let protected = std::env::temp_dir().join(format!("warrant-bench-native-{}", std::process::id()));
    std::fs::write(&protected, b"").with_context(|| format!("creating {}", protected.display()))?;
    let mut kernel = match Kernel::maps_only() {
        Ok(kernel) => Some(kernel),
        Err(e) => {
            eprintln!("warrant-bench: the commit is not measured on this host: cannot make the maps: {e}");
            None
        }
    };
    let measured = (|| {
        let mut version = 1;
        for rules in [10u64, 100, 1000] {
            let (mut verify_ms, mut walk_ms, mut commit_ms, mut inodes) = (Vec::new(), Vec::new(), Vec::new(), 0);
            for _ in 0..RUNS {
                version += 1;
                let text = apply_policy(version, rules, &[&protected], None);
                let bundle = Envelope::sign(POLICY_PAYLOAD_TYPE, text.as_bytes(), std::slice::from_ref(&key)).to_json();
                let started = Instant::now();
                let compiled = verify_and_compile(&bundle, &trusted).with_context(|| format!("{rules} rules"))?;
                verify_ms.push(started.elapsed().as_secs_f64() * 1e3);
                let started = Instant::now();
                let walked = warrant::protect::inodes(&compiled.policy.protect, &[]);
                let walked = walked.with_context(|| format!("walking for {rules} rules"))?;
                walk_ms.push(started.elapsed().as_secs_f64() * 1e3);
                inodes = walked.len();
                if let Some(in_maps) = kernel.as_mut() {
                    let started = Instant::now();
                    match commit(in_maps, &compiled, &walked) {
                        Ok(()) => commit_ms.push(started.elapsed().as_secs_f64() * 1e3),
                        // The other figures stand without it.
                        Err(e) => {
                            eprintln!(
                                "warrant-bench: committing {rules} rules into the maps failed, not measured: {e:#}"
                            );
                            kernel = None;
                        }
                    }
                }
            }
            println!(
                "{}",
                json!({"kind": "native_apply", "rules": rules, "inodes": inodes, "verify_ms": verify_ms,
                       "walk_ms": walk_ms, "commit_ms": commit_ms})
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&protected);
    measured
}

/// The daemon's `verify` phase: the signature, then the policy parsed and
/// compiled (with this host's names; the daemon's also know what subjects
/// wrote, which changes no timing here).
fn verify_and_compile(bundle: &str, trusted: &[PublicKey]) -> Result<policy::CompiledPolicy> {
    let (payload, _) = Envelope::parse(bundle)?.verify(POLICY_PAYLOAD_TYPE, trusted, 1)?;
    let policy = Policy::parse(std::str::from_utf8(&payload)?)?;
    Ok(policy::compile_guarding(policy, &[], &ThisHost)?)
}

/// The daemon's commit (`Kernel::put_policy`) of `compiled`, whose walk
/// found `inodes`, without the bundle's persist between the switch and the
/// commit. Anything left over counts as a failure here.
fn commit(
    kernel: &mut Kernel,
    compiled: &policy::CompiledPolicy,
    inodes: &HashMap<FileKey, ProtectedEntry>,
) -> Result<()> {
    let protect = &compiled.policy.protect;
    let staged = StagedPolicy {
        version: compiled.version(),
        profiles: &compiled.profiles,
        rules: &compiled.rules,
        inodes,
        trees: &protect.iter().map(|tree| warrant::protect::tree_id(tree)).collect::<HashSet<u32>>(),
        roots: &warrant::protect::roots_needing_entries(protect, &[], inodes),
        kept_trees: &HashSet::new(),
        proc_trees: &warrant::protect::proc_trees(protect),
        matches: &warrant::subjects::resolve(&compiled.matchers),
    };
    let leftovers = kernel
        .put_policy(&staged, || Ok::<(), std::convert::Infallible>(()))
        .map_err(|not_put| anyhow::anyhow!("the policy was not put in force: {not_put}"))?;
    if let Some(e) = leftovers.generation_before.iter().chain(&leftovers.protection_before).next() {
        anyhow::bail!("the policy before left something in the maps: {e}");
    }
    Ok(())
}

/// Decision records per action timed by [`records`].
const RECORDS: usize = 50_000;

/// The daemon's handling and recording of allowed decisions (a write of a
/// protected file; a unix connect), [`RECORDS`] of each, into a fresh
/// audit log on this host's temporary directory, with its fdatasyncs: one
/// JSON line an action (without the kernel's ring and the reader's
/// wake-up: `warrant::daemon::time_decision_records`); then the whole
/// pipeline at offered rates ([`ring_rates`]).
pub fn records() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("warrant-bench-records-{}", std::process::id()));
    let file = dir.join("protected");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&file, b"").with_context(|| format!("creating {}", file.display()))?;
    let text = records_policy(&file, &dir.join("bench.sock"));
    let measured = (|| {
        for action in ["file.write", "ipc.connect"] {
            let kernel = Kernel::maps_only().context("the daemon's state needs the maps: cannot make them")?;
            let run = dir.join(action);
            let timing = warrant::daemon::time_decision_records(&run, kernel, &text, action, RECORDS)
                .with_context(|| format!("recording {action} decisions"))?;
            let seconds = timing.elapsed.as_secs_f64();
            println!(
                "{}",
                json!({"kind": "native_records", "action": action, "records": timing.records,
                       "ms": seconds * 1e3, "per_s": timing.records as f64 / seconds,
                       "log_file_system": file_system_of(&run)})
            );
        }
        ring_rates(&dir, &text)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

/// Offered rates of the whole pipeline's figure (0: as fast as it goes),
/// each for [`RING_SECONDS`], as the VM's audit figure offers them.
const RING_RATES: [u64; 4] = [1_000, 10_000, 50_000, 0];
const RING_SECONDS: f64 = 2.0;

/// The whole pipeline at each of [`RING_RATES`]: events on the daemon's
/// ring (see `native_ring`), read and recorded by its reader and owner;
/// one JSON line a rate, as the VM's audit figure prints them, with what
/// the ring had no room for as `lost`.
fn ring_rates(dir: &Path, text: &str) -> Result<()> {
    let kernel = Kernel::maps_only().context("the ring needs the maps: cannot make them")?;
    let mut producer = None;
    let mut dropped = Vec::new();
    let mut offer = |source: &warrant::daemon::RingSource, rate| {
        let producer = match &mut producer {
            Some(producer) => producer,
            None => producer.insert(Producer::new(source)?),
        };
        let (offered, lost) = producer.offer(rate, RING_SECONDS)?;
        dropped.push(lost);
        Ok(offered)
    };
    let run = dir.join("ring");
    let timings = warrant::daemon::time_ring_records(&run, kernel, text, "file.write", &RING_RATES, &mut offer)
        .context("recording events from the ring")?;
    for (timing, lost) in timings.iter().zip(dropped) {
        println!(
            "{}",
            json!({"kind": "native_audit", "offered_rate": timing.offered_rate, "seconds": RING_SECONDS,
                   "ops": timing.offered, "written": timing.written, "lost": lost,
                   "last_record_s": timing.until_last_record.as_secs_f64(),
                   "log_file_system": file_system_of(&run)})
        );
    }
    Ok(())
}

/// The file system type the audit log sat on (tmpfs syncs nothing).
fn file_system_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point).then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map(|(_, kind)| kind)
        .unwrap_or_default()
}
