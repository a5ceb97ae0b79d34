//! One bench run in one boot: a daemon under policies/bench.toml, then
//! interleaved rounds. Each round measures every workload with the programs
//! detached (the baseline) and attached, as a non-subject, as a subject and,
//! for file workloads, as a subject on a protected file it may write; the
//! order of the baseline and the rest alternates. Then the firewall path:
//! `nft -f` of 1..1000 rules, as a subject and not.
//!
//! Output: one JSON object per line on stdout (xtask turns them into the
//! table); progress on stderr. The firewall and daemon figures are in
//! `figures`.

mod figures;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use warrant::kernel::links;

use crate::workloads::Workload;

pub struct Setup {
    pub warrant: PathBuf,
    pub repo: PathBuf,
    pub rounds: u32,
    pub workloads: Vec<Workload>,
    /// Stop after the loops and their program costs.
    pub loops_only: bool,
    /// Fill PROTECTED first (see `fill_protected`).
    pub protected_full: bool,
}

const DIR: &str = "/run/warrant-bench";
/// What one measured loop should last under the emulated CPU.
const LOOP_TARGET: Duration = Duration::from_millis(300);
/// Rule counts per `nft -f`. The kernel side decides batches of up to
/// 1023 actions and refuses longer ones whole (README, limits).
const NFT_BATCHES: [u32; 4] = [1, 10, 100, 1000];
/// Decisions a second offered to the audit pipeline (0: as fast as one
/// subject can), each for AUDIT_SECONDS.
const OFFERED_RATES: [u64; 4] = [1_000, 10_000, 50_000, 0];
const AUDIT_SECONDS: f64 = 2.0;
/// Running processes a policy apply picks up, in the last apply case.
const PICKUP_PROCESSES: u32 = 1000;

struct Bench<'a> {
    setup: &'a Setup,
    dir: PathBuf,
    config: PathBuf,
    me: PathBuf,
    daemon: Child,
}

pub fn run(setup: &Setup) -> Result<()> {
    let dir = PathBuf::from(DIR);
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["plain", "protected"] {
        std::fs::create_dir_all(dir.join(sub))?;
        std::fs::write(dir.join(sub).join("data"), vec![0u8; 4096])?;
    }
    let config = dir.join("warrant.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{d}/state\"\nsocket = \"{d}/run/warrant.sock\"\naudit_log = \"{d}/log/audit.jsonl\"\n\
             trusted_keys = [\"{k}\"]\nhost = \"vm-bench\"\nbundle_dir = \"{d}/bundles.d\"\ninbox_dir = \"{d}/inbox\"\n",
            d = dir.display(),
            k = setup.repo.join("policies/demo-keys/security-team.key.pub").display()
        ),
    )?;
    // The socket UnixConnect connects to, accepted and dropped for the whole run.
    let listener = std::os::unix::net::UnixListener::bind(dir.join("bench.sock"))?;
    std::thread::spawn(move || listener.incoming().for_each(drop));

    let started = Instant::now();
    let daemon = Command::new(&setup.warrant)
        .arg("--config")
        .arg(&config)
        .arg("daemon")
        .stdout(std::fs::File::create(dir.join("daemon.log"))?)
        .stderr(std::fs::File::create(dir.join("daemon.err"))?)
        .spawn()
        .context("cannot start the daemon")?;
    let me = std::env::current_exe()?;
    let mut bench = Bench { setup, dir, config, me, daemon };
    bench.wait_until_answering(started)?;
    emit(json!({"kind": "daemon_start", "ms": started.elapsed().as_secs_f64() * 1e3}));
    bench.apply_policy()?;
    if setup.protected_full {
        bench.fill_protected()?;
    }
    for (program, info) in links::pinned_programs()? {
        emit(json!({"kind": "verifier", "program": program, "instructions": info.verified_instruction_count()}));
    }
    emit(json!({"kind": "rss", "when": "idle", "kib": bench.daemon_status_kib("VmRSS")?}));

    let iterations = bench.calibrate()?;
    for round in 0..setup.rounds {
        eprintln!("warrant-bench: round {} of {}", round + 1, setup.rounds);
        bench.workload_round(round, &iterations)?;
    }
    bench.program_costs(&iterations)?;
    if !setup.loops_only {
        bench.nft_rounds()?;
        bench.audit_rates()?;
        emit(json!({"kind": "rss", "when": "peak after the audit rates", "kib": bench.daemon_status_kib("VmHWM")?}));
        bench.policy_applies()?;
        bench.warranted_rule()?;
    }
    emit(json!({"kind": "rss", "when": "after load", "kib": bench.daemon_status_kib("VmRSS")?}));
    // What the figure is made of: the daemon's own memory, and pages it maps
    // (its binary's, and the event ring's, all mapped from the start), and
    // its highest.
    emit(json!({"kind": "rss", "when": "after load, anonymous", "kib": bench.daemon_status_kib("RssAnon")?}));
    let mapped = bench.daemon_status_kib("RssFile")? + bench.daemon_status_kib("RssShmem")?;
    emit(json!({"kind": "rss", "when": "after load, mapped", "kib": mapped}));
    emit(json!({"kind": "rss", "when": "peak (VmHWM)", "kib": bench.daemon_status_kib("VmHWM")?}));
    let _ = bench.daemon.kill();
    let _ = bench.daemon.wait();
    Ok(())
}

/// Each pinned program's (runs, nanoseconds run) so far, by name.
fn run_statistics() -> Result<std::collections::BTreeMap<String, (u64, u64)>> {
    Ok(links::pinned_programs()?
        .into_iter()
        .map(|(program, info)| (program, (info.run_count(), info.run_time().as_nanos() as u64)))
        .collect())
}

/// Each program that ran between two [`run_statistics`]: its runs per
/// step (of `steps`) and nanoseconds per run, as `program_cost` lines
/// carry them.
fn programs_between(
    before: &std::collections::BTreeMap<String, (u64, u64)>,
    after: &std::collections::BTreeMap<String, (u64, u64)>,
    steps: f64,
) -> serde_json::Map<String, serde_json::Value> {
    after
        .iter()
        .filter_map(|(program, &(calls, ns))| {
            let (calls_before, ns_before) = before.get(program).copied().unwrap_or_default();
            let calls = calls.checked_sub(calls_before).filter(|c| *c > 0)?;
            let ns = ns.saturating_sub(ns_before);
            let cost = json!({"calls_per_op": calls as f64 / steps, "ns_per_call": ns as f64 / calls as f64});
            Some((program.clone(), cost))
        })
        .collect()
}

fn emit(value: serde_json::Value) {
    println!("{value}");
}

impl Bench<'_> {
    fn warrant(&self) -> Command {
        let mut command = Command::new(&self.setup.warrant);
        command.arg("--config").arg(&self.config);
        command
    }

    fn warrant_ok(&self, args: &[&str]) -> Result<()> {
        let out = self.warrant().args(args).output()?;
        if !out.status.success() {
            bail!("warrant {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    fn wait_until_answering(&mut self, started: Instant) -> Result<()> {
        loop {
            if self.warrant().arg("status").stdout(Stdio::null()).stderr(Stdio::null()).status()?.success() {
                return Ok(());
            }
            if let Some(status) = self.daemon.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("daemon.err")).unwrap_or_default();
                bail!("the daemon exited ({status}): {log}");
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("the daemon did not answer within 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn apply_policy(&self) -> Result<()> {
        let (ms, phases, inodes) = self.sign_and_apply(&self.setup.repo.join("policies/bench.toml"))?;
        emit(json!({"kind": "policy_apply", "rules": 3, "protected_inodes": inodes, "ms": ms, "phases_ms": phases}));
        Ok(())
    }

    /// Fills PROTECTED with keys no file has (of the bench's tree, as an
    /// agent's files there would be), then makes a file in the tree whose
    /// entry finds no room: from then on the kernel decides every file
    /// with no entry by its names, for the rest of the run.
    fn fill_protected(&self) -> Result<()> {
        use warrant_common::{FileKey, ProtectedEntry};
        let pinned = aya::maps::MapData::from_pin("/sys/fs/bpf/warrant/maps/PROTECTED").context("PROTECTED")?;
        let mut protected: aya::maps::HashMap<_, FileKey, ProtectedEntry> =
            aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(pinned)?)?;
        let entry = ProtectedEntry { tree: warrant::protect::tree_id(&format!("{DIR}/protected")), flags: 0 };
        let mut filled = 0;
        while protected.insert(FileKey { dev: 0xfee1_dead, ino: filled }, entry, 0).is_ok() {
            filled += 1;
        }
        std::fs::write(self.dir.join("protected/missed"), "")?;
        let out = self.warrant().args(["status", "--json"]).output()?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).context("warrant status --json")?;
        if status["protected_full"] != true {
            bail!("PROTECTED took {filled} more keys, but the daemon does not say it is full: {status}");
        }
        emit(json!({"kind": "protected_full", "filled": filled}));
        Ok(())
    }

    /// Field `name` (kB) of the daemon's /proc status.
    fn daemon_status_kib(&self, name: &str) -> Result<u64> {
        status_kib(self.daemon.id(), name)
    }

    /// What `work` returns, and the daemon's highest VmRSS while it ran
    /// (sampled every 100 ms: a briefer peak can be missed). An error if no
    /// sample could be read.
    fn highest_rss_during<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<(T, u64)> {
        /// Stops the sampler however `work` ends: a panic too, which the
        /// scope would otherwise wait on forever.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let done = AtomicBool::new(false);
        let pid = self.daemon.id();
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut highest = None;
                while !done.load(Ordering::Relaxed) {
                    if let Ok(kib) = status_kib(pid, "VmRSS") {
                        highest = highest.max(Some(kib));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                highest
            });
            let outcome = {
                let _stop = StopOnDrop(&done);
                work()
            };
            let highest = sampler.join().map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))?;
            let highest = highest.with_context(|| format!("no VmRSS of the daemon (pid {pid}) could be read"))?;
            outcome.map(|value| (value, highest))
        })
    }

    /// Iterations per workload for a loop of about LOOP_TARGET.
    fn calibrate(&self) -> Result<Vec<(Workload, u64)>> {
        let mut iterations = Vec::new();
        for &workload in &self.setup.workloads {
            let probe = 100;
            let ns = self.sample(workload, probe, false, &self.file(false))?;
            let wanted = (LOOP_TARGET.as_nanos() as f64 / ns.max(1.0)) as u64;
            iterations.push((workload, wanted.clamp(probe, 2_000_000)));
        }
        Ok(iterations)
    }

    fn file(&self, protected: bool) -> PathBuf {
        self.dir.join(if protected { "protected" } else { "plain" }).join("data")
    }

    /// Every workload once detached (the baseline) and once attached, the
    /// programs detached and attached again around each baseline sample so
    /// that a pair is measured close together; which comes first alternates.
    fn workload_round(&self, round: u32, iterations: &[(Workload, u64)]) -> Result<()> {
        for (index, &(workload, n)) in iterations.iter().enumerate() {
            let baseline = || -> Result<()> {
                let started = Instant::now();
                let detached = links::detach_all()?;
                let detach_ms = started.elapsed().as_secs_f64() * 1e3;
                // Changing kernel text makes the emulator translate afresh: a
                // loop not measured first, on either side of a toggle.
                let result = self
                    .sample(workload, n / 4, false, &self.file(false))
                    .and_then(|_| self.sample(workload, n, false, &self.file(false)));
                let started = Instant::now();
                detached.attach_again()?;
                let attach_ms = started.elapsed().as_secs_f64() * 1e3;
                self.sample(workload, n / 4, false, &self.file(false))?;
                self.record(round, workload, "detached", result?);
                emit(json!({"kind": "toggle", "detach_ms": detach_ms, "attach_ms": attach_ms}));
                Ok(())
            };
            let attached = || -> Result<()> {
                self.record(round, workload, "attached", self.sample(workload, n, false, &self.file(false))?);
                if workload.for_subjects() {
                    self.record(round, workload, "subject", self.sample(workload, n, true, &self.file(false))?);
                }
                if workload.uses_file() {
                    let ns = self.sample(workload, n, true, &self.file(true))?;
                    self.record(round, workload, "subject_protected", ns);
                }
                Ok(())
            };
            if (round as usize + index).is_multiple_of(2) {
                baseline()?;
                attached()?;
            } else {
                attached()?;
                baseline()?;
            }
        }
        Ok(())
    }

    /// Where a loop's time goes inside Warrant's programs: one more sample
    /// of each workload, not a subject and a subject, with the kernel's
    /// run-time statistics on. The kernel then reads its clock around every
    /// program run, which slows the loop: these samples are never compared
    /// with the others. Calls are per step of the loop, the unmeasured
    /// tenth and the process's own start included.
    fn program_costs(&self, iterations: &[(Workload, u64)]) -> Result<()> {
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("cannot turn on the kernel's BPF run-time statistics")?;
        for &(workload, n) in iterations {
            for (state, subject) in [("attached", false), ("subject", true)] {
                if subject && !workload.for_subjects() {
                    continue;
                }
                let before = run_statistics()?;
                let ns_per_op = self.sample_now(workload, n, subject, &self.file(false))?;
                let after = run_statistics()?;
                if subject {
                    self.settle()?;
                }
                let programs = programs_between(&before, &after, (n + n.div_ceil(10)) as f64);
                emit(json!({"kind": "program_cost", "workload": workload.name(), "state": state,
                            "ns_per_op": ns_per_op, "programs": programs}));
            }
        }
        Ok(())
    }

    fn record(&self, round: u32, workload: Workload, state: &str, ns_per_op: f64) {
        emit(
            json!({"kind": "sample", "workload": workload.name(), "state": state, "round": round, "ns_per_op": ns_per_op}),
        );
    }

    /// Waits until the daemon has written every record a subject's loop
    /// caused (the audit log has not grown for 300 ms), so that writing
    /// them does not fall into the next sample.
    fn settle(&self) -> Result<()> {
        let audit = self.dir.join("log/audit.jsonl");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut size = std::fs::metadata(&audit)?.len();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_millis(300) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = std::fs::metadata(&audit)?.len();
            if now != size {
                (size, quiet_since) = (now, Instant::now());
            }
        }
        Ok(())
    }

    /// One loop in a fresh process, as a subject of `bench` or not; after a
    /// subject's, waits for the daemon to settle.
    fn sample(&self, workload: Workload, iterations: u64, subject: bool, file: &Path) -> Result<f64> {
        let ns = self.sample_now(workload, iterations, subject, file)?;
        if subject {
            self.settle()?;
        }
        Ok(ns)
    }

    fn sample_now(&self, workload: Workload, iterations: u64, subject: bool, file: &Path) -> Result<f64> {
        let args: Vec<String> = vec![
            "loop".into(),
            workload.name(),
            "--iterations".into(),
            iterations.to_string(),
            "--file".into(),
            file.display().to_string(),
            "--socket".into(),
            self.dir.join("bench.sock").display().to_string(),
        ];
        let who = if subject { "subject" } else { "not a subject" };
        self.run_reading(subject, &args, "ns_per_op ", &format!("{} ({who})", workload.name()))
    }

    /// Runs `warrant-bench ARGS` (as a subject if `subject`) and reads the
    /// number it prints after `prefix`; `what` names the run in an error.
    fn run_reading(&self, subject: bool, args: &[String], prefix: &str, what: &str) -> Result<f64> {
        let output = self.maybe_subject(subject, args).output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        match text.trim().strip_prefix(prefix).and_then(|n| n.parse().ok()) {
            Some(n) if output.status.success() => Ok(n),
            _ => bail!("{what}: {}", String::from_utf8_lossy(&output.stderr).trim()),
        }
    }

    /// `warrant-bench ARGS`, through `warrant run --profile bench` if `subject`.
    fn maybe_subject(&self, subject: bool, args: &[String]) -> Command {
        if subject {
            let mut command = self.warrant();
            command.args(["run", "--profile", "bench", "--"]).arg(&self.me).args(args.iter());
            command
        } else {
            let mut command = Command::new(&self.me);
            command.args(args.iter());
            command
        }
    }
}

/// Field `name` (kB) of process `pid`'s /proc status.
fn status_kib(pid: u32, name: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {name} in process {pid}'s status"))
}
