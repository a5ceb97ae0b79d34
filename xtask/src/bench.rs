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
    let workloads: String = options.workloads.iter().map(|w| format!(" --workload {}", shell_quote(w))).collect();
    let script = format!(
        "{mounts}\nuname -r > {rw}/kernel\n{bench} run --warrant {warrant} --repo {repo} --rounds {rounds}{workloads} > {rw}/raw.jsonl\n\
         status=$?\ncp /run/warrant-bench/daemon.log /run/warrant-bench/daemon.err {rw}/ 2>/dev/null\nexit $status\n",
        mounts = vm::GUEST_MOUNTS,
        rw = q(&rwdir),
        bench = q(&bench),
        warrant = q(&warrant),
        repo = q(&repo_root()),
        rounds = options.rounds,
    );
    // An apply's verification and walk, on this host's file systems and
    // CPU: the VM's root is 9p under an emulated CPU. (Not as root, the
    // walk skips what it may not read; a failure costs only these lines.)
    let native = std::process::Command::new(&bench)
        .args(["apply", "--repo"])
        .arg(repo_root())
        .output()
        .context("running warrant-bench apply")?;
    let mut native_lines = match native.status.success() {
        true => String::from_utf8_lossy(&native.stdout).into_owned(),
        false => {
            eprintln!("bench: warrant-bench apply failed: {}", String::from_utf8_lossy(&native.stderr).trim());
            String::new()
        }
    };
    // The daemon's record path on this host's CPU and disk (the maps it
    // needs are made here, as for the apply's commit).
    let records =
        std::process::Command::new(&bench).arg("records").output().context("running warrant-bench records")?;
    // What it printed before a failure stands.
    native_lines.push_str(&String::from_utf8_lossy(&records.stdout));
    if !records.status.success() {
        eprintln!("bench: warrant-bench records failed: {}", String::from_utf8_lossy(&records.stderr).trim());
    }
    let status = vm::run_in_vm(&script, &rwdir, options.kernel)?;
    if !status.success() {
        bail!(
            "warrant-bench failed in the VM ({status}); its output is above, its daemon's log in {}",
            rwdir.display()
        );
    }
    let kernel = std::fs::read_to_string(rwdir.join("kernel")).unwrap_or_default();
    println!(
        "bench: kernel {} (emulated CPU, qemu TCG, 2 vCPUs); raw output in {}",
        kernel.trim(),
        rwdir.join("raw.jsonl").display()
    );
    let raw = rwdir.join("raw.jsonl");
    let mut text = std::fs::read_to_string(&raw).context("the bench wrote no raw.jsonl")?;
    text.push_str(&native_lines);
    if let Err(e) = std::fs::write(&raw, &text) {
        eprintln!("bench: cannot add the host's apply and record figures to {}: {e}", raw.display());
    }
    Ok(text)
}
