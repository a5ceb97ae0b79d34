//! `cargo xtask test`: the host tier (`cargo test`), then the kernel tier
//! (the `kernel` test binary's ignored tests) inside the VM, where BPF-LSM
//! programs can load. The kernel tier is never skipped: if it cannot run,
//! the whole run fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::kernels::{self, Series};
pub use crate::libtest::Counts;
use crate::libtest::{parse_test_results, slowest_tests};
use crate::paths::{fresh_dir, repo_root, target_dir};
use crate::process::{describe, run_tee, shell_quote};
use crate::{cargo, last_words, setup, vm};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    All,
    Host,
    Kernel,
    /// The .deb on a stock Debian host booted with systemd (tests/deploy).
    Deploy,
}

/// What one tier produced: its counts, if a step failed, why, and how
/// long it took (the summary says, so that a slower CI run shows where).
struct TierReport {
    counts: Counts,
    problem: Option<String>,
    elapsed: Duration,
}

impl TierReport {
    fn new(counts: Counts, problem: Option<String>) -> Self {
        TierReport { counts, problem, elapsed: Duration::ZERO }
    }

    fn failed_step(problem: impl Into<String>) -> Self {
        Self::new(Counts::default(), Some(problem.into()))
    }

    /// Runs `tier` and notes how long it took.
    fn timed(tier: impl FnOnce() -> Self) -> Self {
        let started = Instant::now();
        let report = tier();
        TierReport { elapsed: started.elapsed(), ..report }
    }
}

/// " (12 min 5 s)".
fn took(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!(" ({} min {} s)", seconds / 60, seconds % 60)
}

/// Runs the chosen tiers; Ok(true) only if every step ran and no test failed.
pub fn run(tier: Tier, filters: &[String], kernels: &[Series], only_without_bpf_lsm: bool) -> Result<bool> {
    let started = Instant::now();
    setup::run(setup::Mode::Install)?;

    let host = matches!(tier, Tier::All | Tier::Host).then(|| TierReport::timed(host_tier));
    let kernel_reports: Vec<(Boot, TierReport)> = if matches!(tier, Tier::All | Tier::Kernel) {
        kernel_tier(filters, kernels, only_without_bpf_lsm)
    } else {
        Vec::new()
    };
    let deploy = matches!(tier, Tier::All | Tier::Deploy).then(|| TierReport::timed(|| deploy_tier(filters)));

    println!();
    let mut total = Counts::default();
    let mut ok = true;
    if let Some(report) = &host {
        let c = report.counts;
        println!(
            "host tier: {} passed, {} failed, {} ignored (kernel tier){}",
            c.passed,
            c.failed,
            c.ignored,
            took(report.elapsed)
        );
        ok &= report_problem("host tier", report);
        total += c;
    }
    for (boot, report) in &kernel_reports {
        let c = report.counts;
        let kernel = boot.series.find().map(|p| p.display().to_string()).unwrap_or_else(|| "missing".into());
        println!(
            "kernel tier on {} ({kernel}): {} passed, {} failed{}",
            boot.label(),
            c.passed,
            c.failed,
            took(report.elapsed)
        );
        ok &= report_problem(&format!("kernel tier on {}", boot.label()), report);
        // A boot that broke off reported no count: it counts as one failure.
        let broke_off = report.problem.is_some() && c.failed == 0;
        total += Counts { ignored: 0, failed: c.failed + u64::from(broke_off), ..c };
    }
    if let Some(report) = &deploy {
        let c = report.counts;
        println!(
            "deployment tier (the .deb on Debian 12, the DaemonSet under podman on Debian 13; 6.12): {} passed, {} failed{}",
            c.passed,
            c.failed,
            took(report.elapsed)
        );
        ok &= report_problem("deployment tier", report);
        total += Counts { failed: c.failed + u64::from(report.problem.is_some() && c.failed == 0), ..c };
    }
    ok &= total.failed == 0;
    let mut which = match tier {
        Tier::All => String::new(),
        Tier::Host => " (host tier only)".into(),
        Tier::Kernel => " (kernel tier only)".into(),
        Tier::Deploy => " (deployment tier only)".into(),
    };
    if matches!(tier, Tier::All | Tier::Kernel) && kernels.len() < kernels::ALL.len() {
        let labels: Vec<&str> = kernels.iter().map(|s| s.label()).collect();
        which.push_str(&format!(" (kernels {} only)", labels.join(", ")));
    }
    if !filters.is_empty() && matches!(tier, Tier::All | Tier::Kernel) {
        which.push_str(&format!(" (kernel tests matching {})", filters.join(", ")));
    }
    let sections = crate::deploy::sections(filters);
    if !sections.is_empty() && matches!(tier, Tier::All | Tier::Deploy) {
        which.push_str(&format!(" (deployment sections {} only)", sections.join(", ")));
    }
    println!("{} passed, {} failed{which}{}", total.passed, total.failed, took(started.elapsed()));
    Ok(ok)
}

fn report_problem(tier: &str, report: &TierReport) -> bool {
    match &report.problem {
        Some(problem) => {
            println!("{tier} FAILED: {problem}");
            false
        }
        None => true,
    }
}

fn host_tier() -> TierReport {
    println!("== host tier: cargo test");
    // warrant-ebpf only builds for bpfel-unknown-none (through agent/build.rs),
    // so it has no host tests; the kernel tier exercises it.
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--exclude", "warrant-ebpf", "--no-fail-fast"]).current_dir(repo_root());
    let (status, output) = match run_tee(&mut cmd) {
        Ok(result) => result,
        Err(err) => return TierReport::failed_step(format!("{err:#}")),
    };
    let Some(counts) = parse_test_results(&output) else {
        return TierReport::failed_step(format!("`{}` printed no test results ({status})", describe(&cmd)));
    };
    let mut problem = (!status.success() && counts.failed == 0)
        .then(|| format!("`{}` failed ({status}) although no test failed; see its output above", describe(&cmd)));
    let mut counts = counts;
    for (what, args) in [
        ("formatting (cargo fmt --all --check)", &["fmt", "--all", "--check"][..]),
        ("lints (cargo clippy --all-targets -- -D warnings)", &["clippy", "--all-targets", "--", "-D", "warnings"]),
    ] {
        println!("== host tier: {what}");
        let ok = Command::new("cargo").args(args).current_dir(repo_root()).status().is_ok_and(|s| s.success());
        if ok {
            counts.passed += 1;
        } else {
            println!("{what}: FAILED");
            counts.failed += 1;
            problem.get_or_insert_with(|| format!("{what} failed"));
        }
    }
    println!("== host tier: the Kubernetes manifests against the API schema (kubernetes-validate --strict)");
    match crate::manifest::check() {
        Ok(files) => {
            println!("manifests: {} valid", files.join(", "));
            counts.passed += 1;
        }
        Err(err) => {
            println!("manifests: FAILED: {err:#}");
            counts.failed += 1;
            problem.get_or_insert_with(|| format!("the manifests: {err:#}"));
        }
    }
    println!("== host tier: the .deb (cargo deb, then dpkg-deb)");
    match crate::package::build_and_check_deb() {
        Ok(deb) => {
            println!("package: {deb} holds the binary, the unit and the configuration (a conffile)");
            counts.passed += 1;
        }
        Err(err) => {
            println!("package: FAILED: {err:#}");
            counts.failed += 1;
            problem.get_or_insert_with(|| format!("the .deb: {err:#}"));
        }
    }
    TierReport::new(counts, problem)
}

fn deploy_tier(sections: &[String]) -> TierReport {
    println!("== deployment tier: the .deb on a stock Debian 12 host, the DaemonSet under podman on Debian 13");
    match crate::deploy::run(sections) {
        Ok(counts) => {
            let problem = (counts.passed + counts.failed == 0).then(|| "the scenario ran no check".to_owned());
            TierReport::new(counts, problem)
        }
        Err(err) => TierReport::failed_step(format!("{err:#}")),
    }
}

/// One VM boot of the kernel tier: a kernel, and how Warrant attaches there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    pub series: Series,
    /// Booted with an `lsm=` list that lacks bpf: Warrant's fmod_ret mode.
    pub without_bpf_lsm: bool,
}

/// The `lsm=` of the boot without bpf.
const LSM_WITHOUT_BPF: &str = "lsm=lockdown,capability,landlock";

impl Boot {
    pub fn label(&self) -> String {
        if self.without_bpf_lsm {
            format!("{} without bpf in lsm= (fmod_ret)", self.series.label())
        } else {
            self.series.label().into()
        }
    }

    fn results_name(&self) -> String {
        if self.without_bpf_lsm { format!("{}-fmod_ret", self.series.label()) } else { self.series.label().into() }
    }
}

/// Builds once, then runs the kernel tier in one VM boot per kernel, and
/// once more on 6.12 booted without bpf in `lsm=` (the fmod_ret mode).
fn kernel_tier(filters: &[String], kernels: &[Series], only_without_bpf_lsm: bool) -> Vec<(Boot, TierReport)> {
    println!("== kernel tier: building");
    // The daemon under test is the release build the .deb ships (already
    // built by the host tier's cargo deb): under the emulated CPU a debug
    // daemon took ~18 s to start, this one ~10 s, and the tier starts dozens.
    let built = cargo::build_release("warrant", "warrant")
        .map_err(|err| format!("building warrant: {err:#}"))
        .and_then(|bin| {
            cargo::build_kernel_tests()
                .map(|exe| (bin, exe))
                .map_err(|err| format!("building the kernel test binary: {err:#}"))
        });
    let mut boots: Vec<Boot> = kernels
        .iter()
        .filter(|_| !only_without_bpf_lsm)
        .map(|&series| Boot { series, without_bpf_lsm: false })
        .collect();
    if kernels.contains(&Series::V6_12) {
        boots.push(Boot { series: Series::V6_12, without_bpf_lsm: true });
    }
    boots
        .into_iter()
        .map(|boot| {
            let report = match &built {
                Ok((warrant_bin, test_exe)) => {
                    TierReport::timed(|| kernel_tier_on(boot, warrant_bin, test_exe, filters))
                }
                Err(problem) => TierReport::failed_step(problem.clone()),
            };
            (boot, report)
        })
        .collect()
}

fn kernel_tier_on(boot: Boot, warrant_bin: &Path, test_exe: &Path, filters: &[String]) -> TierReport {
    let series = boot.series;
    let results = match fresh_dir(&target_dir().join("vm-results").join(boot.results_name())) {
        Ok(dir) => dir,
        Err(err) => return TierReport::failed_step(format!("{err:#}")),
    };

    println!("== kernel tier on {}: {} --ignored in the VM", boot.label(), test_exe.display());
    let mut filters = filters.to_vec();
    // The route fmod_ret cannot decide (a shared writable mmap) is left out
    // inside its test, which checks that the daemon names the loss.
    let left_out = crate::matrix::left_out(boot);
    if !left_out.is_empty() {
        println!(
            "kernel tier on {}: leaves out {} tests that run on 6.12 with bpf-lsm (xtask/src/matrix.rs says which and why)",
            boot.label(),
            left_out.len()
        );
    }
    filters.extend(left_out.iter().map(|test| format!("--skip={test}")));
    let script = kernel_tier_script(&results, warrant_bin, test_exe, &filters, boot.without_bpf_lsm);
    let kernel_args = boot.without_bpf_lsm.then_some(LSM_WITHOUT_BPF);
    let mut dead = None;
    let status = match vm::run_in_vm_with(&script, &results, series, kernel_args, vm::GuestClock::Emulated) {
        Ok(status) => status,
        // A guest that died mid-run (seen on 6.1, 6.12 and 7.2 under TCG,
        // never twice here, cause not yet known) is booted once more,
        // loudly, its logs kept, for the tests that had not ended: the one
        // it died in runs again.
        Err(err) if results.join("booted").exists() => {
            let first = last_words::after_death(&results, test_exe);
            println!(
                "kernel tier on {}: THE GUEST DIED MID-RUN ({err:#}); {}\nbooting it once more for the rest ({} tests that ended there left out)",
                boot.label(),
                first.said,
                first.left_out.len()
            );
            filters.extend(first.left_out.iter().map(|test| format!("--skip={test}")));
            let script = kernel_tier_script(&results, warrant_bin, test_exe, &filters, boot.without_bpf_lsm);
            let again = vm::run_in_vm_with(&script, &results, series, kernel_args, vm::GuestClock::Emulated);
            let said = first.said.clone();
            dead = Some(first);
            match again {
                Ok(status) => status,
                Err(err) if results.join("booted").exists() => {
                    let second = last_words::summary(&results, "");
                    return TierReport::failed_step(format!(
                        "the guest died twice: {err:#}\n  first boot: {said}\n  second boot: {second}"
                    ));
                }
                Err(err) => {
                    return TierReport::failed_step(format!(
                        "the guest died, then did not boot again: {err:#}\n  first boot: {said}"
                    ));
                }
            }
        }
        Err(err) => return TierReport::failed_step(format!("{err:#}")),
    };

    if let Ok(reason) = std::fs::read_to_string(results.join("lsm-inactive")) {
        return TierReport::failed_step(reason.trim().to_string());
    }
    let log_path = results.join("kernel.log");
    let Ok(log) = std::fs::read_to_string(&log_path) else {
        return TierReport::failed_step(format!(
            "the kernel test binary did not run in the VM (no {}; script exit code {:?})",
            log_path.display(),
            status.code()
        ));
    };
    let Some(mut counts) = parse_test_results(&log) else {
        return TierReport::failed_step(format!(
            "the kernel test binary printed no `test result:` line (crashed? exit code {:?}); see {}",
            status.code(),
            log_path.display()
        ));
    };
    if let Some(dead) = &dead {
        println!(
            "kernel tier on {}: on the boot that died, {} left-out tests passed and {} failed{}; {} passed on the next",
            boot.label(),
            dead.passed,
            dead.failed.len(),
            if dead.failed.is_empty() { String::new() } else { format!(" ({})", dead.failed.join(", ")) },
            counts.passed
        );
        counts.passed += dead.passed;
        counts.failed += dead.failed.len() as u64;
    }
    if let Ok(timed) = std::fs::read_to_string(results.join("timed.log")) {
        let slowest: Vec<String> =
            slowest_tests(&timed, 5).iter().map(|(name, secs)| format!("{name} {secs} s")).collect();
        println!("kernel tier on {}: slowest: {}", boot.label(), slowest.join(", "));
    }
    // Written by the harness at each daemon start (tests/kernel/harness.rs).
    if let Ok(starts) = std::fs::read_to_string(results.join("daemon-starts.txt")) {
        let secs: Vec<String> = starts
            .lines()
            .filter_map(|ms| ms.parse::<u64>().ok())
            .map(|ms| format!("{:.1}", ms as f64 / 1000.0))
            .collect();
        println!("kernel tier on {}: daemon starts, seconds to answer: {}", boot.label(), secs.join(", "));
    }
    // Written by programs::every_program_keeps_half_the_verifier_budget_free.
    if let Ok(verified) = std::fs::read_to_string(results.join("verified-instructions.txt")) {
        let mut counts: Vec<(u64, &str)> = verified
            .lines()
            .filter_map(|line| line.split_once(' ').and_then(|(p, c)| Some((c.parse().ok()?, p))))
            .collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let heaviest: Vec<String> =
            counts.iter().take(4).map(|(count, program)| format!("{program} {count}")).collect();
        println!(
            "kernel tier on {}: verifier, processed instructions of the 1M budget (heaviest of {}): {}",
            boot.label(),
            counts.len(),
            heaviest.join(", ")
        );
    }
    let problem = if counts.passed + counts.failed == 0 {
        Some("the kernel test binary ran zero tests (kernel-tier tests must be #[ignore = \"kernel tier ...\"])".into())
    } else if !status.success() && counts.failed == 0 {
        Some(format!("the kernel test binary exited with {:?} although no test failed", status.code()))
    } else {
        None
    };
    TierReport::new(counts, problem)
}

/// The guest side of the kernel tier. Writes `lsm-inactive` with a reason if
/// BPF-LSM is not active, and tees the test output to kernel.log.
fn kernel_tier_script(
    results: &Path,
    warrant_bin: &Path,
    test_exe: &Path,
    filters: &[String],
    without_bpf_lsm: bool,
) -> String {
    let q = |p: &Path| shell_quote(&p.to_string_lossy());
    let filters: Vec<String> = filters.iter().map(|f| shell_quote(f)).collect();
    // The boot without bpf must really lack it; every other boot must have it.
    let refuse = |why: &str| format!("echo \"{why}\" | tee {results}/lsm-inactive >&2; exit 1", results = q(results));
    let (with_bpf, without_bpf, mode) = if without_bpf_lsm {
        (
            refuse("bpf is still among the VM kernel's active LSMs ($lsm)"),
            "echo \"kernel tier: active LSMs: $lsm (no bpf: fmod_ret mode)\"".to_owned(),
            "fmod_ret",
        )
    } else {
        (
            "echo \"kernel tier: active LSMs: $lsm\"".to_owned(),
            refuse("bpf is not among the VM kernel's active LSMs (/sys/kernel/security/lsm: '${lsm:-unreadable}')"),
            "bpf-lsm",
        )
    };
    let lsm_check = format!("case \",$lsm,\" in\n  *,bpf,*) {with_bpf} ;;\n  *) {without_bpf} ;;\nesac");
    format!(
        r#"set -u
{mounts}
lsm=$(cat /sys/kernel/security/lsm 2>/dev/null || true)
{lsm_check}
# The kernel's log comes back to the host: a guest that dies leaves its last words.
dmesg -w > {results}/dmesg.log 2>&1 &
# And its memory every 15 s (the guest's /tmp, /etc and /var are in RAM),
# which is also its heartbeat: the host kills a guest that stops writing it.
while :; do sleep 15; echo "$(date +%s) $(grep -hE '^(MemAvailable|Shmem|Slab):' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"; done > {results}/{heartbeat} 2>&1 &
export WARRANT_BIN={warrant_bin} WARRANT_KERNEL_TIER=1 WARRANT_EXPECT_MODE={mode} WARRANT_RESULTS_DIR={results} RUST_BACKTRACE=1
cd {repo}
set -o pipefail
# Each line stamped with the second it arrived: a test's line arrives when it ends.
{test_exe} --ignored --test-threads=1 {filters} 2>&1 | tee {results}/kernel.log |
  {{ while IFS= read -r line; do printf '%(%s)T %s\n' -1 "$line" >&3; printf '%s\n' "$line"; done; }} 3> {results}/timed.log
rc=$?
# The daemon's own log (the harness's, on the guest's tmpfs) comes back too.
cp /run/warrant-kernel-tier-*/daemon.log {results}/ 2>/dev/null
exit $rc
"#,
        mounts = vm::GUEST_MOUNTS,
        heartbeat = vm::HEARTBEAT,
        results = q(results),
        warrant_bin = q(warrant_bin),
        repo = q(&repo_root()),
        test_exe = q(test_exe),
        filters = filters.join(" "),
    )
}
