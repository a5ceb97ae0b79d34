//! One bench run in one boot: a daemon under policies/bench.toml, then
//! interleaved rounds. Each round measures every workload with the programs
//! detached (the baseline) and attached, as a non-subject, as a subject and,
//! for file workloads, as a subject on a protected file it may write; the
//! order of the baseline and the rest alternates. Then the firewall path:
//! `nft -f` of 1..200 rules, as a subject and not.
//!
//! Output: one JSON object per line on stdout (xtask turns them into the
//! table); progress on stderr.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
}

const DIR: &str = "/run/warrant-bench";
/// What one measured loop should last under the emulated CPU.
const LOOP_TARGET: Duration = Duration::from_millis(300);
/// Rule counts per `nft -f`. The kernel side decides batches of up to 255
/// actions and refuses longer ones whole (README, limits), hence 200.
const NFT_BATCHES: [u32; 4] = [1, 10, 100, 200];
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
    for (program, info) in links::pinned_programs()? {
        emit(json!({"kind": "verifier", "program": program, "instructions": info.verified_instruction_count()}));
    }
    emit(json!({"kind": "rss", "when": "idle", "kib": bench.daemon_rss_kib()?}));

    let iterations = bench.calibrate()?;
    for round in 0..setup.rounds {
        eprintln!("warrant-bench: round {} of {}", round + 1, setup.rounds);
        bench.workload_round(round, &iterations)?;
    }
    bench.program_costs(&iterations)?;
    bench.nft_rounds()?;
    bench.audit_rates()?;
    bench.policy_applies()?;
    bench.warranted_rule()?;
    emit(json!({"kind": "rss", "when": "after load", "kib": bench.daemon_rss_kib()?}));
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

    fn daemon_rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.daemon.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .context("no VmRSS in the daemon's status")
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
                self.record(round, workload, "subject", self.sample(workload, n, true, &self.file(false))?);
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
                let before = run_statistics()?;
                let ns_per_op = self.sample_now(workload, n, subject, &self.file(false))?;
                let after = run_statistics()?;
                if subject {
                    self.settle()?;
                }
                let steps = (n + n.div_ceil(10)) as f64;
                let programs: serde_json::Map<String, serde_json::Value> = after
                    .iter()
                    .filter_map(|(program, &(calls, ns))| {
                        let (calls_before, ns_before) = before.get(program).copied().unwrap_or_default();
                        let calls = calls.checked_sub(calls_before).filter(|c| *c > 0)?;
                        let ns = ns.saturating_sub(ns_before);
                        let cost =
                            json!({"calls_per_op": calls as f64 / steps, "ns_per_call": ns as f64 / calls as f64});
                        Some((program.clone(), cost))
                    })
                    .collect();
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

    /// `nft -f` of NFT_BATCHES rules into a chain the bench profile may
    /// add to, timed by `warrant-bench time` (so `warrant run` is not in it).
    fn nft_rounds(&self) -> Result<()> {
        let nft = |args: &[&str]| -> Result<()> {
            let out = Command::new("nft").args(args).output().context("nft is installed")?;
            if !out.status.success() {
                bail!("nft {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            Ok(())
        };
        let _ = Command::new("nft").args(["delete", "table", "inet", "bench"]).output();
        nft(&["add", "table", "inet", "bench"])?;
        nft(&["add", "chain", "inet", "bench", "c"])?;
        for &batch in &NFT_BATCHES {
            let rules: String = (0..batch)
                .map(|i| {
                    format!("add rule inet bench c ip saddr 10.{}.{}.{} counter\n", i >> 16, (i >> 8) & 255, i & 255)
                })
                .collect();
            std::fs::write(self.dir.join(format!("rules-{batch}.nft")), rules)?;
        }
        for round in 0..self.setup.rounds {
            eprintln!("warrant-bench: nft round {} of {}", round + 1, self.setup.rounds);
            for &batch in &NFT_BATCHES {
                let file = self.dir.join(format!("rules-{batch}.nft")).display().to_string();
                let order = if round.is_multiple_of(2) { [false, true] } else { [true, false] };
                for subject in order {
                    nft(&["flush", "chain", "inet", "bench", "c"])?;
                    let args: Vec<String> = vec!["time".into(), "--".into(), "nft".into(), "-f".into(), file.clone()];
                    let ns = self.run_reading(subject, &args, "ns ", &format!("nft -f {batch} rules"))?;
                    if subject {
                        self.settle()?;
                    }
                    let state = if subject { "subject" } else { "not_subject" };
                    emit(json!({"kind": "nft", "batch": batch, "state": state, "round": round, "ns": ns}));
                }
            }
        }
        nft(&["delete", "table", "inet", "bench"])
    }

    /// Offers the audit pipeline decisions at fixed rates: a subject opens
    /// the protected file for writing (allowed; each open is one decision
    /// and one fsynced, chained record). Reports how many records were
    /// written, how many the kernel lost (ring full), and when the last
    /// record landed.
    fn audit_rates(&self) -> Result<()> {
        let protected = self.file(true).display().to_string();
        for rate in OFFERED_RATES {
            self.settle()?;
            let (written_before, lost_before) = self.audit_counts()?;
            let started = Instant::now();
            let args: Vec<String> = vec![
                "paced".into(),
                "--rate".into(),
                rate.to_string(),
                "--seconds".into(),
                AUDIT_SECONDS.to_string(),
                "--file".into(),
                protected.clone(),
            ];
            let ops = self.run_reading(true, &args, "ops ", &format!("paced opens at {rate}/s"))? as u64;
            let (mut written, mut landed) = (0, started.elapsed());
            let mut unchanged_since = Instant::now();
            while written < ops && unchanged_since.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(100));
                let now = self.audit_counts()?.0 - written_before;
                if now != written {
                    (written, landed, unchanged_since) = (now, started.elapsed(), Instant::now());
                }
            }
            let lost = self.audit_counts()?.1 - lost_before;
            emit(json!({"kind": "audit", "offered_rate": rate, "seconds": AUDIT_SECONDS, "ops": ops,
                        "written": written, "lost": lost, "last_record_s": landed.as_secs_f64()}));
        }
        Ok(())
    }

    /// Applies policies of 10, 100 and 1000 rules, then one protecting a
    /// tree of 10,000 files; the daemon times each apply itself (the CLI's
    /// start and the socket round trip are not in it).
    fn policy_applies(&self) -> Result<()> {
        let many = self.dir.join("many");
        std::fs::create_dir_all(&many)?;
        for i in 0..10_000 {
            std::fs::write(many.join(i.to_string()), b"")?;
        }
        // The running processes the last case picks up: a copy of sleep
        // the profile matches by executable.
        let sleeper = self.dir.join("agent-sleep");
        std::fs::copy("/bin/sleep", &sleeper)?;
        let cases = [(10, false, 0), (100, false, 0), (1000, false, 0), (10, true, 0), (10, false, PICKUP_PROCESSES)];
        for (version, (rules, protect_many, running)) in (2u64..).zip(cases) {
            let mut sleepers = Vec::new();
            for _ in 0..running {
                sleepers.push(Command::new(&sleeper).arg("600").spawn()?);
            }
            let protected = self.dir.join("protected");
            let protect: Vec<&Path> =
                if protect_many { vec![&protected, many.as_path()] } else { vec![protected.as_path()] };
            let text = apply_policy(version, rules, &protect, (running > 0).then_some(sleeper.as_path()));
            let file = self.dir.join(format!("apply-{version}.toml"));
            std::fs::write(&file, text)?;
            let applied = self.sign_and_apply(&file);
            for mut sleeper in sleepers {
                let _ = sleeper.kill();
                let _ = sleeper.wait();
            }
            let (ms, phases, inodes) = applied?;
            emit(json!({"kind": "policy_apply", "rules": rules, "protected_inodes": inodes,
                        "running_matched": running, "ms": ms, "phases_ms": phases}));
        }
        Ok(())
    }

    /// A rule that needs a warrant, end to end: the subject's `nft add rule`
    /// is refused and becomes a change request, alice approves it, the
    /// warrant is installed, and the subject's second try is allowed. The
    /// time is the whole story's, with each CLI's start in it.
    fn warranted_rule(&self) -> Result<()> {
        let _ = Command::new("nft").args(["delete", "table", "inet", "bench"]).output();
        for args in [&["add", "table", "inet", "bench"][..], &["add", "chain", "inet", "bench", "w"]] {
            if !Command::new("nft").args(args).status()?.success() {
                bail!("nft {args:?} failed");
            }
        }
        let text = "version = 100\nexpires = \"2030-01-01T00:00:00Z\"\ndescription = \"bench warrant\"\n\n\
             [[responsible]]\nname = \"alice\"\nrole = \"network on-call\"\n\
             key = \"Gmcg/22qW4+3GZZrQ2ujeOIdwVHI3sTkXx3T/HSQ/xQ=\"\nmay_approve = [\"nft.rule.*\"]\n\n\
             [[profile]]\nname = \"bench\"\nmode = \"enforce\"\n\n\
             [[profile.rule]]\naction = \"nft.rule.add\"\ntarget = \"inet bench w\"\ntier = \"approve\"\n";
        let file = self.dir.join("warrant-policy.toml");
        std::fs::write(&file, text)?;
        self.sign_and_apply(&file)?;
        // Through `warrant-bench time`: maybe_subject runs warrant-bench.
        let rule = ["time", "--", "nft", "add", "rule", "inet", "bench", "w", "counter"].map(String::from);
        let started = Instant::now();
        if self.maybe_subject(true, &rule).output()?.status.success() {
            bail!("the subject's rule went in without a warrant");
        }
        let request = self.wait_for_request("inet bench w")?;
        let key = self.setup.repo.join("policies/demo-keys/alice.key");
        let warrant = self.dir.join("bench.warrant");
        let path = |p: &Path| p.to_str().unwrap_or_default().to_owned();
        self.warrant_ok(&[
            "approve",
            "--yes",
            &request,
            "--key",
            &path(&key),
            "--ttl",
            "10m",
            "--uses",
            "1",
            "--reason",
            "bench",
            "--out",
            &path(&warrant),
        ])?;
        self.warrant_ok(&["install", &path(&warrant)])?;
        let retry = self.maybe_subject(true, &rule).output()?;
        if !retry.status.success() {
            bail!("the warranted rule was refused: {}", String::from_utf8_lossy(&retry.stderr).trim());
        }
        emit(json!({"kind": "warranted_rule", "ms": started.elapsed().as_secs_f64() * 1e3}));
        Ok(())
    }

    /// The id of the change request for `target`, once the daemon has it.
    fn wait_for_request(&self, target: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.warrant().args(["requests", "--json"]).output()?;
            let requests: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let found = requests.as_array().into_iter().flatten().find(|r| r["target"] == target);
            if let Some(id) = found.and_then(|r| r["id"].as_str()) {
                return Ok(id.to_owned());
            }
            if Instant::now() > deadline {
                bail!("no change request for {target} within a minute");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Signs `policy` with the demo security-team key and applies it;
    /// returns the apply's ms, its phases and the inodes protected under
    /// it, as the daemon reports them.
    fn sign_and_apply(&self, policy: &Path) -> Result<(f64, serde_json::Value, u64)> {
        let key = self.setup.repo.join("policies/demo-keys/security-team.key");
        let stem = policy.file_stem().unwrap_or_default().to_string_lossy();
        let bundle = self.dir.join(format!("{stem}.bundle"));
        let path = |p: &Path| p.to_str().unwrap_or_default().to_owned();
        self.warrant_ok(&["policy", "sign", &path(policy), "--key", &path(&key), "--out", &path(&bundle)])?;
        let out = self.warrant().args(["policy", "apply", &path(&bundle)]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // `policy vN in force (applied in T ms: phase T, phase T, ...)`,
        // then `N inodes protected`.
        let mut lines = text.lines();
        let after = lines.next().unwrap_or_default().split("(applied in ").nth(1).unwrap_or_default();
        let inodes = lines.next().and_then(|l| l.split(' ').next()?.parse::<u64>().ok());
        let ms = after.split(" ms").next().and_then(|t| t.parse::<f64>().ok());
        let phases: serde_json::Map<String, serde_json::Value> = after
            .split(": ")
            .nth(1)
            .unwrap_or_default()
            .trim_end()
            .trim_end_matches(')')
            .split(", ")
            .filter_map(|phase| {
                let (name, ms) = phase.rsplit_once(' ')?;
                Some((name.to_owned(), json!(ms.parse::<f64>().ok()?)))
            })
            .collect();
        match (ms, inodes) {
            (Some(ms), Some(inodes)) if out.status.success() => Ok((ms, phases.into(), inodes)),
            _ => bail!("applying {}: {}{}", policy.display(), text.trim(), String::from_utf8_lossy(&out.stderr).trim()),
        }
    }

    /// Decisions the daemon has recorded (all verdicts; counted as each
    /// record is written) and events the kernel lost, from `status --json`.
    fn audit_counts(&self) -> Result<(u64, u64)> {
        let out = self.warrant().args(["status", "--json"]).output()?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).context("status --json")?;
        let decisions = status["decisions"].as_object().map(|d| d.values().filter_map(|n| n.as_u64()).sum());
        Ok((decisions.unwrap_or(0), status["lost_events"].as_u64().unwrap_or(0)))
    }
}

/// The policies the apply figures time: version `version`, `rules` allow
/// rules in one profile, protecting `protect`, matching processes that run
/// `exe` if given.
pub fn apply_policy(version: u64, rules: u64, protect: &[&Path], exe: Option<&Path>) -> String {
    let protect: Vec<String> = protect.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    let mut text = format!(
        "version = {version}\nexpires = \"2030-01-01T00:00:00Z\"\ndescription = \"bench apply\"\nprotect = [{}]\n\n\
         [[profile]]\nname = \"bench\"\nmode = \"enforce\"\n",
        protect.join(", ")
    );
    if let Some(exe) = exe {
        text.push_str(&format!("\n[profile.match]\nexe = [{:?}]\n", exe.display().to_string()));
    }
    for rule in 0..rules {
        text.push_str(&format!(
            "\n[[profile.rule]]\naction = \"nft.rule.add\"\ntarget = \"inet bench c{rule}\"\ntier = \"allow\"\n"
        ));
    }
    text
}
