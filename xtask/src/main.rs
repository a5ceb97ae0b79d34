//! Developer tasks for Warrant: toolchain setup, the test VM, both test
//! tiers and the demo. Run as `cargo xtask <task>`.

mod bench;
mod bench_report;
mod cargo;
mod demo;
mod deploy;
mod kernels;
mod last_words;
mod libtest;
mod manifest;
mod matrix;
mod package;
mod paths;
mod process;
mod setup;
mod test;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", about = "Build, VM, test and demo tasks for Warrant")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the build, the tests and the VM need (idempotent).
    Setup {
        /// Only report what is missing; exit non-zero if anything is.
        #[arg(long)]
        check: bool,
    },
    /// Boot the test VM and run a shell command inside it as root.
    Vm {
        /// Guest kernel series.
        #[arg(long, value_enum, default_value = "6.12")]
        kernel: kernels::Series,
        /// Arguments added to the guest kernel's command line (e.g. an lsm= list).
        #[arg(long, value_name = "ARGS")]
        append: Option<String>,
        /// Host directory the guest may write to (default: target/vm-run, emptied first).
        #[arg(long, value_name = "DIR")]
        rwdir: Option<PathBuf>,
        /// The guest's clock: `instructions` makes a guest nanosecond one
        /// instruction executed (qemu's icount).
        #[arg(long, value_enum, default_value = "emulated")]
        clock: vm::GuestClock,
        /// Shell command to run in the guest (words are joined with spaces).
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Run the host tier, the kernel tier inside the VM, then the deployment tier.
    Test {
        #[arg(long, value_enum, default_value_t = test::Tier::All)]
        tier: test::Tier,
        /// Run only the kernel-tier tests whose names contain one of these
        /// (libtest filters), and only the deployment tier's sections named
        /// (`package`, `daemonset`), for quick local loops; CI runs them all.
        #[arg(long = "filter", value_name = "NAME")]
        filters: Vec<String>,
        /// Run the kernel tier on these kernels only (default: all of 6.1, 6.12, dev).
        #[arg(long = "kernel", value_enum, value_name = "SERIES")]
        kernels: Vec<kernels::Series>,
        /// Only the boots without bpf in lsm= (Warrant's fmod_ret mode).
        #[arg(long)]
        only_without_bpf_lsm: bool,
    },
    /// Measure Warrant's overhead in one VM boot: ratios against a baseline
    /// with the programs detached, over interleaved rounds (not part of `test`).
    Bench {
        /// Guest kernel series.
        #[arg(long, value_enum, default_value = "6.12")]
        kernel: kernels::Series,
        /// Interleaved rounds (pairs of baseline and measurement per figure).
        #[arg(long, default_value_t = 9)]
        rounds: u32,
        /// Only these syscall loops (warrant-bench's names, e.g. open-close-read).
        #[arg(long = "workload", value_name = "NAME")]
        workloads: Vec<String>,
        /// Also write the figures as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Report on a recorded raw.jsonl (target/bench/raw.jsonl) instead of
        /// running (its clock is the one it was recorded with).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["clock", "loops_only"])]
        from: Option<PathBuf>,
        /// The guest's clock: `instructions` times every loop in
        /// instructions the whole VM executed (qemu's icount).
        #[arg(long, value_enum, default_value = "emulated")]
        clock: vm::GuestClock,
        /// Only the syscall loops (and where their time goes in the
        /// programs): no firewall, audit, apply, warrant or host figures
        /// (the bench policy's own apply is still printed).
        #[arg(long)]
        loops_only: bool,
        /// Measure with PROTECTED full and a miss unsettled, so that files
        /// with no entry are decided by their names (the cost an agent that
        /// fills the map puts on every subject and every create). With
        /// --loops-only: the later applies would need room.
        #[arg(long, requires = "loops_only")]
        protected_full: bool,
    },
    /// Run xtask/demo.sh: on the host if BPF-LSM works here, else in the VM.
    Demo {
        /// Guest kernel series, when the demo runs in the VM.
        #[arg(long, value_enum, default_value = "6.12")]
        kernel: kernels::Series,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.task {
        Task::Setup { check } => {
            setup::run(if check { setup::Mode::Check } else { setup::Mode::Install })?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Vm { kernel, append, rwdir, clock, command } => {
            let rwdir = match rwdir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    std::path::absolute(&dir)?
                }
                None => paths::fresh_dir(&paths::target_dir().join("vm-run"))?,
            };
            let status = vm::run_in_vm_with(&command.join(" "), &rwdir, kernel, append.as_deref(), clock)?;
            Ok(process::exit_code(status))
        }
        Task::Test { tier, filters, kernels, only_without_bpf_lsm } => {
            let kernels = if kernels.is_empty() { kernels::ALL.to_vec() } else { kernels };
            let all_passed = test::run(tier, &filters, &kernels, only_without_bpf_lsm)?;
            Ok(if all_passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Task::Bench { kernel, rounds, workloads, json, from, clock, loops_only, protected_full } => {
            bench::run(&bench::Options { kernel, rounds, workloads, json, from, clock, loops_only, protected_full })?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Demo { kernel } => demo::run(kernel).map(process::exit_code),
    }
}
