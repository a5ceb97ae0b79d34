//! The firewall path and the daemon's figures of one bench run: `nft -f`
//! batches, a warranted rule end to end, the audit pipeline at offered
//! rates, policy applies.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{
    AUDIT_SECONDS, Bench, NFT_BATCHES, OFFERED_RATES, PICKUP_PROCESSES, emit, programs_between, run_statistics,
};
use crate::policy_text::apply_policy;

impl Bench<'_> {
    /// `nft -f` of NFT_BATCHES rules into a chain the bench profile may
    /// add to, timed by `warrant-bench time` (so `warrant run` is not in it).
    pub(super) fn nft_rounds(&self) -> Result<()> {
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
            std::fs::write(self.nft_file(batch), rules)?;
        }
        for round in 0..self.setup.rounds {
            eprintln!("warrant-bench: nft round {} of {}", round + 1, self.setup.rounds);
            for &batch in &NFT_BATCHES {
                let order = if round.is_multiple_of(2) { [false, true] } else { [true, false] };
                for subject in order {
                    nft(&["flush", "chain", "inet", "bench", "c"])?;
                    let args = self.timed_nft_args(batch);
                    let ns = self.run_reading(subject, &args, "ns ", &format!("nft -f {batch} rules"))?;
                    if subject {
                        self.settle()?;
                    }
                    let state = if subject { "subject" } else { "not_subject" };
                    emit(json!({"kind": "nft", "batch": batch, "state": state, "round": round, "ns": ns}));
                }
            }
        }
        self.nft_program_costs(&nft)?;
        nft(&["delete", "table", "inet", "bench"])
    }

    /// The file of `batch` rules [`Self::nft_rounds`] writes.
    fn nft_file(&self, batch: u32) -> std::path::PathBuf {
        self.dir.join(format!("rules-{batch}.nft"))
    }

    /// `nft -f` of that file, timed by `warrant-bench time`.
    fn timed_nft_args(&self, batch: u32) -> Vec<String> {
        let file = self.nft_file(batch).display().to_string();
        ["time", "--", "nft", "-f", &file].map(String::from).to_vec()
    }

    /// The firewall hooks' own time: one more `nft -f` of each batch size,
    /// not a subject and a subject, with the kernel's run-time statistics
    /// on, as `program_cost` lines whose step is one rule (`netlink_send`'s
    /// time per rule is its time per classified message).
    fn nft_program_costs(&self, nft: &dyn Fn(&[&str]) -> Result<()>) -> Result<()> {
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("cannot turn on the kernel's BPF run-time statistics")?;
        for &batch in &NFT_BATCHES {
            for (state, subject) in [("attached", false), ("subject", true)] {
                nft(&["flush", "chain", "inet", "bench", "c"])?;
                let args = self.timed_nft_args(batch);
                let before = run_statistics()?;
                let ns = self.run_reading(subject, &args, "ns ", &format!("nft -f {batch} rules"))?;
                let after = run_statistics()?;
                if subject {
                    self.settle()?;
                }
                let programs = programs_between(&before, &after, batch as f64);
                emit(json!({"kind": "program_cost", "workload": format!("nft -f {batch}"), "state": state,
                            "ns_per_op": ns / batch as f64, "programs": programs}));
            }
        }
        Ok(())
    }

    /// Offers the audit pipeline decisions at fixed rates: a subject opens
    /// the protected file for writing (allowed; each open is one decision
    /// and one fsynced, chained record). Reports how many records were
    /// written, how many the kernel lost (ring full), and when the last
    /// record landed, and the daemon's highest RSS meanwhile.
    pub(super) fn audit_rates(&self) -> Result<()> {
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
            let offered = || -> Result<(u64, u64, Duration)> {
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
                Ok((ops, written, landed))
            };
            let ((ops, written, landed), highest_rss) = self.highest_rss_during(offered)?;
            let lost = self.audit_counts()?.1 - lost_before;
            emit(json!({"kind": "audit", "offered_rate": rate, "seconds": AUDIT_SECONDS, "ops": ops,
                        "written": written, "lost": lost, "last_record_s": landed.as_secs_f64()}));
            let offered = if rate == 0 { "unpaced".to_owned() } else { format!("{rate}/s offered") };
            emit(json!({"kind": "rss", "when": format!("under load, {offered} (highest)"), "kib": highest_rss}));
        }
        Ok(())
    }

    /// Applies policies of 10, 100 and 1000 rules, then one protecting a
    /// tree of 10,000 files; the daemon times each apply itself (the CLI's
    /// start and the socket round trip are not in it).
    pub(super) fn policy_applies(&self) -> Result<()> {
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
            // The peak so far, after each case: the case that raises it holds the memory.
            let case = match (protect_many, running) {
                (true, _) => format!("{rules} rules, 10,000 files"),
                (_, 0) => format!("{rules} rules"),
                _ => format!("{rules} rules, {running} running"),
            };
            emit(json!({"kind": "rss", "when": format!("peak after applying {case}"),
                        "kib": self.daemon_status_kib("VmHWM")?}));
        }
        Ok(())
    }

    /// A rule that needs a warrant, end to end: the subject's `nft add rule`
    /// is refused and becomes a change request, alice approves it, the
    /// warrant is installed, and the subject's second try is allowed. The
    /// time is the whole story's, with each CLI's start in it.
    pub(super) fn warranted_rule(&self) -> Result<()> {
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
    pub(super) fn sign_and_apply(&self, policy: &Path) -> Result<(f64, serde_json::Value, u64)> {
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
