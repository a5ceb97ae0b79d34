//! The test VM: one of the matrix's Debian kernels booted by virtme-ng under qemu (TCG).
//! The guest sees the host's root read-only over 9p; only --rwdir
//! directories come back to the host.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::kernels::Series;
use crate::process::{find_program, is_executable, shell_quote, stdout_of};

/// A hung guest must fail the run, not hang CI. Override with
/// WARRANT_VM_TIMEOUT_SECS.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// A file in the VM's writable directory that a guest script may append to
/// every few seconds (the kernel tier's does every 15 s) to say it is alive.
pub const HEARTBEAT: &str = "memory.log";
/// How long a heartbeat may go unwritten before the guest is taken for hung
/// (a TCG guest has livelocked at a trampoline's teardown; the heartbeat's
/// `sleep 15` runs late under load, never minutes late).
const HEARTBEAT_STALL: Duration = Duration::from_secs(180);

/// Script prelude that mounts what the guest leaves unmounted.
pub const GUEST_MOUNTS: &str = r#"
grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
grep -qs ' /sys/kernel/security securityfs ' /proc/mounts || mount -t securityfs securityfs /sys/kernel/security
"#;

/// How the guest's clock runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestClock {
    /// qemu's default: the emulated CPU's time follows the host's.
    Emulated,
    /// qemu's `-icount shift=0,sleep=off`: one nanosecond of guest time per
    /// instruction the guest executes, on either vCPU (they take turns on
    /// one host thread), and idle time skipped. A loop's time is then the
    /// instructions the whole VM ran while it ran: for a single-threaded
    /// loop repeatable to a few in ten thousand, and not bent by how
    /// slowly the emulator runs one instruction against another (a
    /// trampoline, a map lookup, a syscall).
    Instructions,
}

impl GuestClock {
    /// Its name on the command line (and in the bench's raw output).
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map(|v| v.get_name().to_owned()).unwrap_or_default()
    }
}

/// virtme-ng's `vng`: on PATH, or in pip's scripts directories (pip may
/// install there without that directory being on PATH).
pub fn find_vng() -> Option<PathBuf> {
    find_program("vng")
        .or_else(|| pip_script_dirs().into_iter().map(|dir| dir.join("vng")).find(|path| is_executable(path)))
}

/// The system and user scripts directories of python3.
pub fn pip_script_dirs() -> Vec<PathBuf> {
    let query = "import os, sysconfig; \
                 print(sysconfig.get_path('scripts')); \
                 print(sysconfig.get_path('scripts', os.name + '_user'))";
    stdout_of(Command::new("python3").args(["-c", query]))
        .map(|out| out.lines().map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// Boots the VM and runs `script` (bash) inside as root. `rwdir` is shared
/// read-write at the same path. The returned status is the script's own exit
/// code, read from `rwdir/rc` because vng's exit code does not reliably carry
/// it; an error means the VM did not boot, hung, or never wrote rc.
///
/// A guest that never reached its first command (qemu under TCG now and
/// then exits at once) is booted once more; a guest that ran and then
/// failed is not retried.
pub fn run_in_vm(script: &str, rwdir: &Path, series: Series) -> Result<ExitStatus> {
    run_in_vm_with(script, rwdir, series, None, GuestClock::Emulated)
}

/// [`run_in_vm`] with `kernel_args` added to the guest's command line and
/// the guest's clock chosen.
pub fn run_in_vm_with(
    script: &str,
    rwdir: &Path,
    series: Series,
    kernel_args: Option<&str>,
    clock: GuestClock,
) -> Result<ExitStatus> {
    let kernel = series
        .find()
        .with_context(|| format!("no {} kernel in /boot for the VM; run `cargo xtask setup`", series.label()))?;
    let booted = std::path::absolute(rwdir)?.join("booted");
    let _ = std::fs::remove_file(&booted);
    match boot_and_run(script, rwdir, &kernel, kernel_args, clock) {
        Err(e) if !booted.exists() => {
            eprintln!("vm: {e:#}\nvm: the guest never started its command; booting it once more");
            boot_and_run(script, rwdir, &kernel, kernel_args, clock)
        }
        other => other,
    }
}

fn boot_and_run(
    script: &str,
    rwdir: &Path,
    kernel: &Path,
    kernel_args: Option<&str>,
    clock: GuestClock,
) -> Result<ExitStatus> {
    let vng = find_vng().context("virtme-ng (vng) is not installed; run `cargo xtask setup`")?;
    let rwdir = std::path::absolute(rwdir)?;
    let script_path = rwdir.join("vm-script.sh");
    let rc_path = rwdir.join("rc");
    std::fs::write(&script_path, format!("#!/bin/bash\n{script}\n"))
        .with_context(|| format!("cannot write {}", script_path.display()))?;
    // A heartbeat left from an earlier boot would read as this one's, stalled.
    let _ = std::fs::remove_file(rwdir.join(HEARTBEAT));
    match std::fs::remove_file(&rc_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove stale {}", rc_path.display()));
        }
        _ => {}
    }

    // Write rc via a temporary name and sync so the host never reads a
    // half-written file from the 9p share.
    let guest_command = format!(
        "touch {booted}; bash {script}; echo $? > {rc}.tmp && mv {rc}.tmp {rc}; sync",
        booted = shell_quote(&rwdir.join("booted").to_string_lossy()),
        script = shell_quote(&script_path.to_string_lossy()),
        rc = shell_quote(&rc_path.to_string_lossy()),
    );
    let mut vng_cmd = Command::new(&vng);
    vng_cmd
        .args(["--disable-kvm", "--force-9p", "--run"])
        .arg(kernel)
        .args(["--user", "root", "--cpus", "2", "--memory", "2G"])
        .args(kernel_args.map(|args| format!("--append={args}")))
        .args((clock == GuestClock::Instructions).then_some("--qemu-opts=-icount shift=0,sleep=off"))
        .arg(format!("--rwdir={}", rwdir.display()))
        .arg("--exec")
        .arg(&guest_command)
        .current_dir(crate::paths::repo_root())
        // A terminal on stdin makes qemu grab it; the guest needs no input.
        .stdin(Stdio::null())
        // qemu reopens /proc/self/fd/1 and 2 with O_TRUNC: handed a log file
        // directly, it would erase everything printed before the VM.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let timeout = timeout();
    eprintln!(
        "vm: booting {} under qemu TCG{} (boot takes ~12 s, timeout {})",
        kernel.display(),
        if clock == GuestClock::Instructions { ", its clock counting instructions" } else { "" },
        describe_duration(timeout)
    );
    let mut child = vng_cmd.spawn().with_context(|| format!("cannot start {}", vng.display()))?;
    let forwarders = forward_output(&mut child);
    let vng_status = wait_with_timeout(child, timeout, &rwdir.join(HEARTBEAT), &rc_path);
    for forwarder in forwarders {
        let _ = forwarder.join();
    }
    let vng_status = vng_status?;

    let rc_text = std::fs::read_to_string(&rc_path).map_err(|_| {
        anyhow::anyhow!(
            "the VM wrote no exit code to {} (vng: {vng_status}); it did not boot or the guest crashed, see the output above",
            rc_path.display()
        )
    })?;
    let code: i32 = rc_text
        .trim()
        .parse()
        .with_context(|| format!("unreadable exit code {:?} in {}", rc_text.trim(), rc_path.display()))?;
    Ok(ExitStatus::from_raw((code & 0xff) << 8))
}

/// Copies the child's stdout and stderr to ours as they arrive.
fn forward_output(child: &mut Child) -> Vec<JoinHandle<()>> {
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    vec![
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut { stdout }, &mut std::io::stdout());
        }),
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut { stderr }, &mut std::io::stderr());
        }),
    ]
}

fn timeout() -> Duration {
    std::env::var("WARRANT_VM_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Waits for vng; past the deadline, or once the guest's `heartbeat` file
/// (if it writes one) has gone unwritten for [`HEARTBEAT_STALL`] before
/// its script wrote `rc`, kills it and the qemu it forked.
fn wait_with_timeout(mut child: Child, timeout: Duration, heartbeat: &Path, rc: &Path) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for vng")? {
            return Ok(status);
        }
        let stalled = std::fs::metadata(heartbeat)
            .and_then(|meta| meta.modified())
            .is_ok_and(|written| written.elapsed().is_ok_and(|age| age > HEARTBEAT_STALL))
            && !rc.exists();
        if Instant::now() >= deadline || stalled {
            // vng runs sh -> virtme-run -> qemu. Kill qemu (the leaf) so each
            // parent reaps its child and exits; force the rest only if not.
            kill(&descendants(child.id()).leaves);
            let grace = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(100));
            }
            kill(&descendants(child.id()).all);
            let _ = child.kill();
            let _ = child.wait();
            if stalled {
                bail!(
                    "the guest wrote no heartbeat ({}) for {}: hung; killed it",
                    heartbeat.display(),
                    describe_duration(HEARTBEAT_STALL)
                );
            }
            bail!("the VM did not finish within {}; killed it", describe_duration(timeout));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Descendants {
    all: Vec<u32>,
    /// Those with no children of their own.
    leaves: Vec<u32>,
}

fn descendants(pid: u32) -> Descendants {
    let mut all = Vec::new();
    let mut leaves = Vec::new();
    let mut queue = children_of(pid);
    while let Some(next) = queue.pop() {
        let children = children_of(next);
        if children.is_empty() {
            leaves.push(next);
        }
        queue.extend(children);
        all.push(next);
    }
    Descendants { all, leaves }
}

fn kill(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
}

fn describe_duration(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it are fixed.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}
