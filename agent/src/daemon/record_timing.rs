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
    let (mut state, event) = timing_state(dir, kernel, policy_text, action)?;
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

/// Where [`time_ring_records`]'s caller puts its events: the kernel's
/// event ring (a second fd of it) and the event to put there.
pub struct RingSource {
    pub ring: std::os::fd::OwnedFd,
    pub event: Event,
}

/// What [`time_ring_records`] measured at one offered rate.
#[derive(Debug, Clone, Copy)]
pub struct RingTiming {
    pub rate: u64,
    pub offered: u64,
    pub written: u64,
    /// From the first offer to the last record written.
    pub last_record: Duration,
}

/// The whole pipeline on this machine: for each of `rates`, `offer` puts
/// allowed decisions of `action` on the kernel's event ring (at that rate
/// a second, 0 as fast as it can; it returns how many it put), and the
/// daemon's own reader and state's owner record them, as `warrant daemon`
/// does. Counts the records written until none came for a second.
pub fn time_ring_records(
    dir: &Path,
    kernel: Kernel,
    policy_text: &str,
    action: &str,
    rates: &[u64],
    offer: &mut dyn FnMut(&RingSource, u64) -> std::io::Result<u64>,
) -> Result<Vec<RingTiming>, DaemonError> {
    use std::os::fd::AsFd as _;
    let (mut state, event) = timing_state(dir, kernel, policy_text, action)?;
    let ring = state.kernel.take_events()?;
    let source =
        RingSource { ring: ring.as_fd().try_clone_to_owned().doing(|| "cannot share the ring".into())?, event };
    let log = state.config.audit_log.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .doing(|| "cannot start a runtime".into())?;
    let owner = Owner::start(state).doing(|| "cannot start the state's owner".into())?;
    runtime.spawn(read_events(ring, owner.clone()));
    let mut lines = LineCounter::open(&log)?;
    let mut timings = Vec::new();
    for &rate in rates {
        let before = lines.count()?;
        let started = Instant::now();
        let offered = offer(&source, rate).doing(|| format!("cannot offer events at {rate}/s"))?;
        let (mut written, mut last_record, mut unchanged_since) = (0, started.elapsed(), Instant::now());
        while written < offered && unchanged_since.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(20));
            let now = lines.count()? - before;
            if now != written {
                (written, last_record, unchanged_since) = (now, started.elapsed(), Instant::now());
            }
        }
        timings.push(RingTiming { rate, offered, written, last_record });
    }
    runtime.block_on(owner.ask(|reply| Command::Stop { failed: None, reply }));
    Ok(timings)
}

/// Counts the lines of a growing file, reading only what was added.
struct LineCounter {
    file: fs::File,
    lines: u64,
}

impl LineCounter {
    fn open(path: &Path) -> Result<Self, DaemonError> {
        let file = fs::File::open(path).doing(|| format!("cannot read {}", path.display()))?;
        Ok(Self { file, lines: 0 })
    }

    fn count(&mut self) -> Result<u64, DaemonError> {
        use std::io::Read as _;
        let mut buffer = [0u8; 1 << 16];
        loop {
            let read = self.file.read(&mut buffer).doing(|| "cannot read the audit log".into())?;
            if read == 0 {
                return Ok(self.lines);
            }
            self.lines += buffer[..read].iter().filter(|b| **b == b'\n').count() as u64;
        }
    }
}

/// A daemon state under `policy_text` in force, its audit log and state
/// directory under `dir`, and the event of an allowed `action` its first
/// rule decides.
fn timing_state(dir: &Path, kernel: Kernel, policy_text: &str, action: &str) -> Result<(State, Event), DaemonError> {
    let policy = Policy::parse(policy_text).doing(|| "the timing policy does not parse".into())?;
    let compiled = compile(policy).doing(|| "the timing policy does not compile".into())?;
    let event = allowed_event(&compiled, action)
        .ok_or_else(|| DaemonError::Config(format!("the timing policy has no rule for {action}")))?;
    let config = Config {
        state_dir: dir.join("state"),
        audit_log: dir.join("log/audit.jsonl"),
        host: Some("records-timing".into()),
        // Not rotated while timed: the records are counted in one file.
        audit_max_bytes: 1 << 40,
        ..Config::default()
    };
    fs::create_dir_all(&config.state_dir).doing(|| format!("cannot create {}", config.state_dir.display()))?;
    let audit =
        AuditLog::open(&config.audit_log, config.audit_max_bytes).doing(|| "cannot open the audit log".into())?;
    let host_key = load_host_key(&config.host_key_path())?;
    let mut state = State::new(config, kernel, Vec::new(), audit, host_key);
    state.policy = Some(compiled);
    Ok((state, event))
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
