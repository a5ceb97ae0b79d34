//! The daemon's part of the audit pipeline, timed on this machine's own
//! CPU and disk (`warrant-bench records`, run by `cargo xtask bench` on the
//! host): decision events as the kernel writes them, handled by the same
//! `State` code as the daemon's and recorded in drains of up to
//! `DRAIN_BATCH` with one fdatasync each, as `drain` records the ring's.
//! Not timed: the ring itself and the reader's wake-up (the VM measures
//! the whole pipeline, under emulation).

use std::time::{Duration, Instant};

use super::*;
use std::os::unix::fs::MetadataExt as _;

use crate::policy::{Policy, compile};

/// Decision events recorded and the time they took.
#[derive(Debug, Clone, Copy)]
pub struct RecordTiming {
    pub records: u64,
    pub elapsed: Duration,
}

/// Records `count` allowed decisions of rule `action` (an action name of
/// `policy_text`'s first profile) into a fresh audit log under `dir`,
/// through a daemon state over `kernel` (maps only: nothing is attached).
/// Each event names this process and its executable, as the kernel's do.
pub fn time_decision_records(
    dir: &Path,
    kernel: Kernel,
    policy_text: &str,
    action: &str,
    count: usize,
) -> Result<RecordTiming, DaemonError> {
    let policy = Policy::parse(policy_text).doing(|| "the timing policy does not parse".into())?;
    let compiled = compile(policy).doing(|| "the timing policy does not compile".into())?;
    let event = allowed_event(&compiled, action)
        .ok_or_else(|| DaemonError::Config(format!("the timing policy has no rule for {action}")))?;
    let config = Config {
        state_dir: dir.join("state"),
        audit_log: dir.join("log/audit.jsonl"),
        host: Some("records-timing".into()),
        ..Config::default()
    };
    fs::create_dir_all(&config.state_dir).doing(|| format!("cannot create {}", config.state_dir.display()))?;
    let audit =
        AuditLog::open(&config.audit_log, config.audit_max_bytes).doing(|| "cannot open the audit log".into())?;
    let host_key = load_host_key(&config.host_key_path())?;
    let mut state = State::new(config, kernel, Vec::new(), audit, host_key);
    state.policy = Some(compiled);
    let started = Instant::now();
    let mut left = count;
    while left > 0 {
        let batch = left.min(events::DRAIN_BATCH);
        state.drains += 1;
        state.audit.defer_sync();
        for _ in 0..batch {
            state.on_event(&event);
        }
        state.sync_audit();
        left -= batch;
    }
    Ok(RecordTiming { records: count as u64, elapsed: started.elapsed() })
}

/// The event the kernel sends for an allowed decision of `action`'s first
/// rule, made by this process.
fn allowed_event(policy: &CompiledPolicy, action: &str) -> Option<Event> {
    let id = action::by_name(action)?;
    let (key, rule) = policy.rules.iter().find(|(key, _)| key.action == id)?;
    let exe = fs::metadata("/proc/self/exe").ok()?;
    let mut event: Event = unsafe { std::mem::zeroed() };
    event.boot_ns = boot_now_ns();
    event.policy_version = policy.version();
    event.exe = FileKey { dev: protect::kernel_dev(exe.dev()), ino: exe.ino() };
    event.tgid = std::process::id();
    event.tid = event.tgid;
    event.profile_id = key.profile_id;
    event.action = key.action;
    event.tier = rule.tier;
    event.verdict = verdict::ALLOWED;
    event.rule_index = rule.rule_index;
    event.warrant_index = NO_WARRANT;
    event.msg_count = 1;
    event.family = key.family;
    event.comm[..14].copy_from_slice(b"warrant-bench\0");
    event.table = key.table;
    event.object = key.object;
    Some(event)
}
