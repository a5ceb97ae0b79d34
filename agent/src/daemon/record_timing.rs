//! The daemon's part of the audit pipeline, timed on this machine's own
//! CPU, kernel and disk (`warrant-bench records`, run by `cargo xtask
//! bench` on the host). [`time_decision_records`] hands decision events
//! straight to the state's code that records the ring's items, in the
//! drains' group commits (one fdatasync each): the ring is left out.
//! [`time_ring_records`] is the whole pipeline: events on the kernel's
//! ring, the daemon's own reader task and state's owner thread. Neither
//! attaches a program: the host may not take Warrant's. Not part of the
//! daemon; public for the bench.

use std::os::unix::fs::MetadataExt as _;
use std::time::{Duration, Instant};

use super::*;
use crate::policy::{Policy, compile};

/// Decision events recorded and the time they took.
#[derive(Debug, Clone, Copy)]
pub struct RecordTiming {
    pub records: u64,
    pub elapsed: Duration,
}

/// Records `count` allowed decisions of `action` (the action of a rule of
/// `policy_text`'s) into a fresh audit log under `dir`, through a daemon
/// state over `kernel` (maps only). Each event names this process and its
/// executable, and a file's names the file, as the kernel's do.
pub fn time_decision_records(
    dir: &Path,
    kernel: Kernel,
    policy_text: &str,
    action: &str,
    count: usize,
) -> Result<RecordTiming, DaemonError> {
    let (mut state, event) = timing_state(dir, kernel, policy_text, action)?;
    // SAFETY: Event is repr(C) plain data without padding (size asserted).
    let item = unsafe { std::slice::from_raw_parts(std::ptr::from_ref(&event).cast::<u8>(), size_of::<Event>()) };
    let first = state.audit.head().0;
    let started = Instant::now();
    let mut left = count;
    while left > 0 {
        state.group_commit(|state| {
            if left == 0 {
                return false;
            }
            left -= 1;
            state.record_item(item);
            true
        });
    }
    let elapsed = started.elapsed();
    Ok(RecordTiming { records: state.audit.head().0 - first, elapsed })
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
    pub offered_rate: u64,
    pub offered: u64,
    /// Decision records written.
    pub written: u64,
    /// From the first offer to the last record written.
    pub until_last_record: Duration,
}

/// How long no new record means the reader has taken everything it will:
/// as long as the VM's audit figure waits.
const QUIET: Duration = Duration::from_secs(5);

/// The whole pipeline: for each of `rates`, `offer` puts allowed decisions
/// of `action` on the kernel's event ring (at that rate a second, 0 as fast
/// as it can; it returns how many it offered), and the daemon's own reader
/// and state's owner record them, on a runtime like the daemon's. Counts
/// the decision records written until none came for [`QUIET`]; at the end
/// the log's chain is verified.
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
    let runtime = tokio::runtime::Runtime::new().doing(|| "cannot start a runtime".into())?;
    let owner = Owner::start(state).doing(|| "cannot start the state's owner".into())?;
    let reader = runtime.spawn(read_events(ring, owner.clone()));
    let mut decisions = DecisionCounter::open(&log)?;
    let mut timings = Vec::new();
    for &offered_rate in rates {
        let before = decisions.count()?;
        let started = Instant::now();
        let offered = offer(&source, offered_rate).doing(|| format!("cannot offer events at {offered_rate}/s"))?;
        let (mut written, mut until_last_record, mut unchanged_since) = (0, started.elapsed(), Instant::now());
        while written < offered && unchanged_since.elapsed() < QUIET && !reader.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            // Before the count: reading the log takes time of its own.
            let at = started.elapsed();
            let now = decisions.count()? - before;
            if now != written {
                (written, until_last_record, unchanged_since) = (now, at, Instant::now());
            }
        }
        if reader.is_finished() {
            let ended = runtime.block_on(reader).map_err(|e| DaemonError::Events(e.to_string()))?;
            return Err(ended.err().unwrap_or(DaemonError::Events("the event reader ended".into())));
        }
        timings.push(RingTiming { offered_rate, offered, written, until_last_record });
    }
    runtime.block_on(owner.ask(|reply| Command::Stop { failed: None, reply }));
    crate::audit::verify(&log).doing(|| format!("the timed log {} does not verify", log.display()))?;
    Ok(timings)
}

/// Counts the decision records of a growing audit log, reading only what
/// was added (a line still being written waits for its end).
struct DecisionCounter {
    file: fs::File,
    partial: Vec<u8>,
    decisions: u64,
}

impl DecisionCounter {
    fn open(path: &Path) -> Result<Self, DaemonError> {
        let file = fs::File::open(path).doing(|| format!("cannot read {}", path.display()))?;
        Ok(Self { file, partial: Vec::new(), decisions: 0 })
    }

    fn count(&mut self) -> Result<u64, DaemonError> {
        use std::io::Read as _;
        let mut added = Vec::new();
        self.file.read_to_end(&mut added).doing(|| "cannot read the audit log".into())?;
        self.partial.extend_from_slice(&added);
        let whole = self.partial.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
        let marker = br#""kind":"decision""#;
        self.decisions += self.partial[..whole]
            .split(|b| *b == b'\n')
            .filter(|line| line.windows(marker.len()).any(|w| w == marker))
            .count() as u64;
        self.partial.drain(..whole);
        Ok(self.decisions)
    }
}

/// A daemon state under `policy_text` in force, its audit log and state
/// directory under `dir`, and the event of an allowed `action` its rule
/// decides.
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

/// The event the kernel sends for an allowed decision of `action`'s allow rule,
/// made by this process; a file's names the file (its rule's tree, a
/// file) by inode, as a write of it would (the rule names the tree).
fn allowed_event(policy: &CompiledPolicy, action: &str) -> Option<Event> {
    let id = action::by_name(action)?;
    // The policy's own allow rule: the compiler's rules for guarded paths
    // and sockets are numbered after the profiles' own.
    let (key, rule) = policy
        .rules
        .iter()
        .filter(|(key, rule)| key.action == id && rule.tier == tier::ALLOW)
        .min_by_key(|(_, rule)| rule.rule_index)?;
    let exe = fs::metadata("/proc/self/exe").ok()?;
    // SAFETY: Event is plain data; all zeroes is a valid value.
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
    if action::target_kind(id) == action::TargetKind::File {
        let (tree, _) = crate::policy::file_target(key);
        let file = policy.policy.protect.iter().find(|path| protect::tree_id(path) == tree)?;
        let meta = fs::metadata(file).ok()?;
        let mut target = *key;
        target.set_inode(meta.ino(), protect::kernel_dev(meta.dev()));
        event.object = target.object;
    }
    Some(event)
}
