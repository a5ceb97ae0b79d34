//! `warrant-bench`: the guest side of `cargo xtask bench`. `run` starts a
//! daemon, applies policies/bench.toml and prints one JSON line per
//! measurement; `loop` and `time` are what it runs, as a subject or not.

mod native;
mod native_ring;
mod orchestrate;
mod policy_text;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use workloads::Workload;

#[derive(Parser)]
#[command(name = "warrant-bench", about = "Warrant's benchmark harness (run by `cargo xtask bench` in the VM)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a daemon, measure everything, print JSON lines (root, BPF-LSM).
    Run {
        /// The `warrant` binary.
        #[arg(long)]
        warrant: PathBuf,
        /// The repository (for policies/).
        #[arg(long)]
        repo: PathBuf,
        /// Interleaved rounds (each: one baseline and one measured sample per figure).
        #[arg(long, default_value_t = 9)]
        rounds: u32,
        /// Only these workloads (default: all).
        #[arg(long = "workload", value_enum)]
        workloads: Vec<Workload>,
        /// Only the syscall loops and where their time goes in the programs:
        /// no firewall, audit, apply or warrant figures (a quick local loop).
        #[arg(long)]
        loops_only: bool,
        /// Measure with PROTECTED full and a miss unsettled: files with no
        /// entry decided by their names (what an agent that fills it costs).
        #[arg(long)]
        protected_full: bool,
    },
    /// Time `iterations` of one syscall loop; prints `ns_per_op N`.
    Loop {
        #[arg(value_enum)]
        workload: Workload,
        #[arg(long)]
        iterations: u64,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        socket: PathBuf,
    },
    /// open(O_WRONLY) + close of `file` at `rate` a second (0: as fast as
    /// it goes) for `seconds`; prints `ops N`. As a subject on a protected
    /// file, each open is a decision and an audit record.
    Paced {
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        file: PathBuf,
    },
    /// A policy apply's verification and walk, without the kernel's maps,
    /// on this machine's own file systems and CPU (`cargo xtask bench` runs
    /// it on the host, not in the VM): one JSON line for each of 10, 100
    /// and 1000 rules, with the milliseconds of five runs of each part.
    Apply {
        /// The repository (for the demo signing key).
        #[arg(long)]
        repo: PathBuf,
    },
    /// The daemon's handling and recording of decision events on this
    /// machine's own CPU, kernel and disk (root: the state needs the maps):
    /// without the ring, one JSON line per action; then the whole pipeline
    /// through the kernel's ring, one line per offered rate.
    Records,
    /// Run a command and print its wall time as `ns N`; fails if it fails.
    Time {
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warrant-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { warrant, repo, rounds, workloads, loops_only, protected_full } => {
            let workloads = if workloads.is_empty() { Workload::ALL.to_vec() } else { workloads };
            orchestrate::run(&orchestrate::Setup { warrant, repo, rounds, workloads, loops_only, protected_full })
        }
        Command::Loop { workload, iterations, file, socket } => {
            let elapsed = workloads::run(workload, iterations, &file, &socket)
                .with_context(|| format!("{} on {}", workload.name(), file.display()))?;
            println!("ns_per_op {}", elapsed.as_nanos() as f64 / iterations as f64);
            Ok(())
        }
        Command::Paced { rate, seconds, file } => {
            let ops = workloads::paced_opens(&file, rate, std::time::Duration::from_secs_f64(seconds))
                .with_context(|| format!("opening {}", file.display()))?;
            println!("ops {ops}");
            Ok(())
        }
        Command::Apply { repo } => native::apply(&repo),
        Command::Records => native::records(),
        Command::Time { command } => {
            let start = Instant::now();
            let status = std::process::Command::new(&command[0])
                .args(&command[1..])
                .status()
                .with_context(|| format!("cannot run {}", command[0]))?;
            let elapsed = start.elapsed();
            if !status.success() {
                bail!("{command:?} failed ({status})");
            }
            println!("ns {}", elapsed.as_nanos());
            Ok(())
        }
    }
}
