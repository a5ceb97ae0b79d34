//! `cargo xtask bench`: builds release binaries, runs warrant-bench in one
//! VM boot, and prints the ratios (bench_report). Not part of `xtask test`:
//! figures are read by people, never asserted on.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::bench_report;
use crate::kernels::Series;
use crate::paths::{fresh_dir, repo_root, target_dir};
use crate::process::shell_quote;
use crate::{cargo, setup, vm};

pub struct Options {
    pub kernel: Series,
    pub rounds: u32,
    pub workloads: Vec<String>,
    pub json: Option<PathBuf>,
    /// Report on a recorded raw.jsonl instead of running.
    pub from: Option<PathBuf>,
    pub clock: vm::GuestClock,
    /// Only the syscall loops: no firewall, audit, apply or host figures.
    pub loops_only: bool,
    /// Measure with PROTECTED full (files with no entry decided by names).
    pub protected_full: bool,
}

pub fn run(options: &Options) -> Result<()> {
    let raw_text = match &options.from {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?,
        None => run_in_vm(options)?,
    };
    let raw = bench_report::parse(&raw_text)?;
    let report = bench_report::report(&raw);
    println!("\n{}", report.table);
    println!("bench: {} figures miss their targets (figures are read, not asserted)", report.misses.len());
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&report.json)?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        println!("bench: wrote {}", path.display());
    }
    Ok(())
}

fn run_in_vm(options: &Options) -> Result<String> {
    setup::run(setup::Mode::Install)?;
    let warrant = cargo::build_release("warrant", "warrant")?;
    let bench = cargo::build_release("warrant-bench", "warrant-bench")?;
    let rwdir = fresh_dir(&target_dir().join("bench"))?;
    let q = |p: &std::path::Path| shell_quote(&p.to_string_lossy());
    let mut flags: String = options.workloads.iter().map(|w| format!(" --workload {}", shell_quote(w))).collect();
    if options.loops_only {
        flags.push_str(" --loops-only");
    }
    if options.protected_full {
        flags.push_str(" --protected-full");
    }
    let script = format!(
        "{mounts}\nuname -r > {rw}/kernel\n{bench} run --warrant {warrant} --repo {repo} --rounds {rounds}{flags} > {rw}/raw.jsonl\n\
         status=$?\ncp /run/warrant-bench/daemon.log /run/warrant-bench/daemon.err {rw}/ 2>/dev/null\nexit $status\n",
        mounts = vm::GUEST_MOUNTS,
        rw = q(&rwdir),
        bench = q(&bench),
        warrant = q(&warrant),
        repo = q(&repo_root()),
        rounds = options.rounds,
    );
    let native_lines = if options.loops_only { String::new() } else { run_on_host(&bench)? };
    let status = vm::run_in_vm_with(&script, &rwdir, options.kernel, None, options.clock)?;
    if !status.success() {
        bail!(
            "warrant-bench failed in the VM ({status}); its output is above, its daemon's log in {}",
            rwdir.display()
        );
    }
    let kernel = std::fs::read_to_string(rwdir.join("kernel")).unwrap_or_default();
    println!(
        "bench: kernel {} (emulated CPU, qemu TCG, 2 vCPUs, clock: {}); raw output in {}",
        kernel.trim(),
        options.clock.name(),
        rwdir.join("raw.jsonl").display()
    );
    let raw = rwdir.join("raw.jsonl");
    let mut text = std::fs::read_to_string(&raw).context("the bench wrote no raw.jsonl")?;
    // The clock says what the VM's figures count (a report from raw.jsonl
    // alone must know).
    text.push_str(&format!("{}\n{native_lines}", serde_json::json!({"kind": "clock", "clock": options.clock.name()})));
    if let Err(e) = std::fs::write(&raw, &text) {
        eprintln!("bench: cannot add the clock and the host's figures to {}: {e}", raw.display());
    }
    Ok(text)
}

/// The figures taken on this host rather than in the VM: an apply's
/// verification, walk and commit, and the daemon's record path, on the
/// host's own file systems, CPU and disk (the VM's root is 9p under an
/// emulated CPU). What either printed before a failure stands.
fn run_on_host(bench: &std::path::Path) -> Result<String> {
    // (Not as root, the walk skips what it may not read.)
    let apply = std::process::Command::new(bench)
        .args(["apply", "--repo"])
        .arg(repo_root())
        .output()
        .context("running warrant-bench apply")?;
    let mut lines = String::from_utf8_lossy(&apply.stdout).into_owned();
    if !apply.status.success() {
        eprintln!("bench: warrant-bench apply failed: {}", String::from_utf8_lossy(&apply.stderr).trim());
    }
    let records = std::process::Command::new(bench).arg("records").output().context("running warrant-bench records")?;
    lines.push_str(&String::from_utf8_lossy(&records.stdout));
    if !records.status.success() {
        eprintln!("bench: warrant-bench records failed: {}", String::from_utf8_lossy(&records.stderr).trim());
    }
    Ok(lines)
}
