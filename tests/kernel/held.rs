//! Kernel tier: what a process held before it became a subject. A
//! connection to a root deputy is decided at its first send; a process
//! picked up while holding what no hook sees again (a shared writable
//! mapping of a protected file, a ring another process polls) is stopped;
//! an exec that would make a subject of a process holding a ring is refused.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::{deputies::start_deputy, harness, harness::daemon, subjects::as_uid};

const AGENTS_CGROUP_PROCS: &str = "/sys/fs/cgroup/agents.slice/cgroup.procs";
const PROTECTED_FILE: &str = "/etc/sysctl.d/90-agent.conf";
/// A cgroup control file a process opens before it becomes a subject.
const FREEZE: &str = "/sys/fs/cgroup/warrant-held/cgroup.freeze";

fn sideways_root(args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command.arg(harness::helper("sideways.py")).args(args);
    command
}

/// Starts `command` with its stdout read line by line.
fn spawn_reading(mut command: Command) -> (Child, BufReader<ChildStdout>) {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// The pid in a helper's "moving PID" line.
fn moving_pid(out: &mut BufReader<ChildStdout>) -> u32 {
    let line = next_line(out);
    line.strip_prefix("moving ").and_then(|pid| pid.parse().ok()).unwrap_or_else(|| panic!("helper said {line:?}"))
}

fn no_record_of(d: &harness::Daemon, mark: usize, kind: &str, pid: u32) {
    let found = d.records_since(mark).into_iter().find(|r| r["kind"] == kind && r["pid"] == pid);
    assert!(found.is_none(), "unexpected {kind}: {found:?}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_connection_made_before_pickup_is_decided_at_its_first_send() {
    let d = daemon();
    let go = "/run/warrant-held-go";
    let marker = |kind: &str| format!("/run/deputy-ran-held.{kind}");
    let _ = std::fs::remove_file(go);
    std::fs::create_dir_all("/run/systemd/journal").unwrap();
    let journal = start_deputy("/run/systemd/journal/stdout", "stream");
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    // One holder per socket kind, each of its own uid, connected while the
    // uid is in no policy: nothing decided the connects. One apply picks up both.
    let held: Vec<_> = [(4245, "stream"), (4246, "seqpacket")]
        .into_iter()
        .map(|(uid, kind)| {
            let _ = std::fs::remove_file(marker(kind));
            let name = format!("/run/warrant-held.{kind}");
            let deputy = start_deputy(&name, kind);
            let script = harness::helper("sideways.py");
            let command = format!("touch {}; nft flush ruleset", marker(kind));
            let (holder, mut out) = spawn_reading(as_uid(
                uid,
                &["python3", &script, "held-ask", go, &name, kind, &command, "/run/systemd/journal/stdout"],
            ));
            assert_eq!(next_line(&mut out), "connected", "{kind}");
            (kind, name, deputy, holder, out)
        })
        .collect();
    let wider = text.replacen("uid = [4242]", "uid = [4242, 4245, 4246]", 1);
    assert_ne!(wider, text);
    let mark = d.audit_len();
    d.apply_next_policy(&wider);
    for (_, _, _, holder, _) in &held {
        let pid = holder.id();
        d.expect_record_where(mark, "subject.picked_up", |r| r["kind"] == "subject.picked_up" && r["pid"] == pid);
    }
    std::fs::write(go, "").unwrap();
    for (kind, name, deputy, mut holder, mut out) in held {
        // The journal's socket is allowed to every profile; the deputy is not,
        // whether the send names an address (of length 0) or none.
        assert_eq!(next_line(&mut out), "allowed=0 deputy=1,1", "{kind}");
        assert!(holder.wait().unwrap().success());
        let refused = d.expect_record(mark, "ipc.connect", &name, "denied");
        assert_eq!(refused["profile"], "ops-bot", "{refused}");
        no_record_of(d, mark, "subject.stopped", holder.id());
        assert!(
            !Path::new(&marker(kind)).exists(),
            "the deputy ran what the subject sent on its old {kind} connection"
        );
        drop(deputy);
    }
    d.expect_record(mark, "ipc.connect", "/run/systemd/journal/stdout", "allowed");
    d.apply_next_policy(&text);
    drop(journal);
    let _ = std::fs::remove_file(go);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_exec_that_would_carry_a_ring_or_another_process_s_memory_into_a_subject_is_refused() {
    let d = daemon();
    // Root makes a ring, keeps it across exec, and becomes uid 4242 (ops-bot).
    let mark = d.audit_len();
    let out = sideways_root(&["carry-ring", "4242", "keep", "/usr/bin/true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "the exec went on with the ring: {out:?}");
    d.expect_record_where(mark, "self.io_uring denied", |r| {
        r["action"] == "self.io_uring" && r["verdict"] == "denied" && r["profile"] == "ops-bot"
    });
    // A ring left close-on-exec (as rings are made) is gone by then.
    let mark = d.audit_len();
    let out = sideways_root(&["carry-ring", "4242", "cloexec", "/usr/bin/true"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    d.expect_record_where(mark, "subject.matched by uid", |r| r["kind"] == "subject.matched" && r["by"] == "uid");
    // Another process's memory open for writing: its writes would run code
    // there, unconfined. Open for reading, it writes nothing.
    let mark = d.audit_len();
    let out = sideways_root(&["carry-memory", "4242", "rw", "/usr/bin/true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "the exec went on with a writable mem fd: {out:?}");
    d.expect_record_where(mark, "self.ptrace denied", |r| {
        r["action"] == "self.ptrace" && r["verdict"] == "denied" && r["profile"] == "ops-bot"
    });
    let out = sideways_root(&["carry-memory", "4242", "ro", "/usr/bin/true"]).output().unwrap();
    assert!(out.status.success(), "a read-only mem fd: {out:?}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn warrant_run_hands_no_ring_to_its_subject() {
    let d = daemon();
    let bin = harness::warrant_bin();
    let config = d.config.to_str().unwrap().to_owned();
    let run = |how: &str, keep: &[&str]| {
        let mut args = vec!["carry-ring", "0", how, bin.to_str().unwrap(), "--config", &config, "run"];
        args.extend_from_slice(&["--profile", "agent"]);
        args.extend_from_slice(keep);
        // The command fails if fd 7 reached it.
        args.extend_from_slice(&["--", "sh", "-c", "! readlink /proc/self/fd/7"]);
        sideways_root(&args).output().unwrap()
    };
    // Passed on by name: refused before anything runs as a subject.
    let out = run("keep", &["--keep-fd", "7"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("fd 7 is an io_uring ring"), "{out:?}");
    // Inherited but not named: closed at the exec, and the command runs without it.
    let out = run("keep", &[]);
    assert!(out.status.success(), "{out:?}");
    // The check above is the starter's, in user space, which a task sharing
    // its fd table could race: the kernel checks the exec that follows the
    // daemon's Register too. Here a starter without the user-space check.
    let socket = d.config.parent().unwrap().join("run/warrant.sock");
    let register = |how: &str| {
        let args = ["register-ring", socket.to_str().unwrap(), "agent", how, "/bin/true"];
        sideways_root(&args).output().unwrap()
    };
    let mark = d.audit_len();
    let out = register("ring");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "exec=1", "{out:?}");
    d.expect_record_where(mark, "self.io_uring denied", |r| {
        r["action"] == "self.io_uring" && r["verdict"] == "denied" && r["profile"] == "agent"
    });
    let out = register("none");
    assert!(out.status.success(), "without a ring, the registered exec failed: {out:?}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_subject_receives_no_ring() {
    let d = daemon();
    // Root (no subject) passes an SQPOLL ring to its child, an ops-bot
    // subject: refused by the kernel itself since 6.7 (and in stable
    // backports), by `file_receive` where it is not.
    let mark = d.audit_len();
    let out = sideways_root(&["pass-ring", "4242"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{out:?}");
    if !text.contains("sent=22") {
        assert!(text.contains("sent=0") && text.contains("received=0"), "the subject got the ring: {text}");
        d.expect_record_where(mark, "self.io_uring denied", |r| {
            r["action"] == "self.io_uring" && r["verdict"] == "denied" && r["profile"] == "ops-bot"
        });
    }
    // pidfd_getfd reaches only the subject's own profile (ptrace), and no ring there either.
    let mark = d.audit_len();
    let script = harness::helper("sideways.py");
    let out = crate::harness::run_subject(&["python3", &script, "getfd-ring"]);
    assert_eq!(out.status.code(), Some(1), "a subject took a ring with pidfd_getfd: {}", out.stderr);
    d.expect_record_where(mark, "self.io_uring denied", |r| {
        r["action"] == "self.io_uring" && r["verdict"] == "denied" && r["profile"] == "agent"
    });
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_process_picked_up_with_another_process_s_sqpoll_ring_is_stopped() {
    let d = daemon();
    let go = "/run/warrant-sqpoll-go";
    let _ = std::fs::remove_file(go);
    let mark = d.audit_len();
    // The parent (root, no subject) polls the ring its child moves into agents.slice with.
    let (mut parent, mut out) = spawn_reading(sideways_root(&["sqpoll-held", AGENTS_CGROUP_PROCS, go]));
    let pid = moving_pid(&mut out);
    let stopped = d.expect_record_where(mark, "subject.stopped", |r| r["kind"] == "subject.stopped" && r["pid"] == pid);
    assert_eq!(stopped["profile"], "agent", "{stopped}");
    assert_eq!(stopped["stopped"], true, "{stopped}");
    assert!(stopped["held"][0].as_str().unwrap_or("").starts_with("io_uring fd"), "{stopped}");
    std::fs::write(go, "").unwrap();
    assert_eq!(next_line(&mut out), "status=-9", "the child was not stopped");
    assert!(parent.wait().unwrap().success());
    let _ = std::fs::remove_file(go);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_process_picked_up_with_a_shared_writable_mapping_of_a_protected_file_is_stopped() {
    let d = daemon();
    let go = "/run/warrant-map-go";
    std::fs::create_dir_all("/sys/fs/cgroup/warrant-held").unwrap();
    let before = std::fs::read(PROTECTED_FILE).unwrap();
    assert!(!before.is_empty() && before[0] != b'X');
    for kind in ["private", "shared"] {
        let _ = std::fs::remove_file(go);
        let mark = d.audit_len();
        let (mut holder, mut out) =
            spawn_reading(sideways_root(&["map-held", PROTECTED_FILE, kind, AGENTS_CGROUP_PROCS, go, FREEZE]));
        let pid = moving_pid(&mut out);
        assert_eq!(pid, holder.id());
        // "child=PID", unless the holder was stopped before it forked.
        let child: Option<u32> = next_line(&mut out).strip_prefix("child=").and_then(|c| c.parse().ok());
        d.expect_record_where(mark, "subject.matched", |r| r["kind"] == "subject.matched" && r["pid"] == pid);
        if kind == "shared" {
            let stopped =
                d.expect_record_where(mark, "subject.stopped", |r| r["kind"] == "subject.stopped" && r["pid"] == pid);
            let held = stopped["held"][0].as_str().unwrap_or("");
            assert!(held.contains("shared writable mapping") && held.contains(PROTECTED_FILE), "{stopped}");
            // A child made before the daemon looked keeps the mapping: stopped too.
            if let Some(child) = child {
                d.expect_record_where(mark, "subject.stopped child", |r| {
                    r["kind"] == "subject.stopped" && r["pid"] == child && r["profile"] == "agent"
                });
            }
        } else {
            assert!(child.is_some(), "the private mapping's holder made no child");
            // Time for the daemon to have looked: a private mapping writes nowhere.
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        std::fs::write(go, "").unwrap();
        if kind == "private" {
            // A cgroup control file opened before: its write is refused all the same.
            assert_eq!(next_line(&mut out), "freeze=1");
            d.expect_record(mark, "self.cgroup", "*", "denied");
        }
        let status = holder.wait().unwrap();
        if kind == "shared" {
            assert_eq!(status.signal(), Some(9), "the holder of a shared mapping ran on: {status:?}");
        } else {
            assert!(status.success(), "the holder of a private mapping was stopped: {status:?}");
            no_record_of(d, mark, "subject.stopped", pid);
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(std::fs::read(PROTECTED_FILE).unwrap(), before, "the protected file changed");
    let frozen = std::fs::read_to_string("/sys/fs/cgroup/warrant-held/cgroup.freeze").unwrap();
    assert_eq!(frozen.trim(), "0", "the held cgroup.freeze fd froze the cgroup");
    let _ = std::fs::remove_dir("/sys/fs/cgroup/warrant-held");
    let _ = std::fs::remove_file(go);
}

/// A pickup the daemon never heard of (here: it was down) notes new
/// processes until its deadline, for that process only: one that takes its
/// tgid meanwhile is no pickup's, and its children are not made subjects.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_process_that_reuses_a_picked_up_tgid_is_not_picked_up() {
    let d = daemon();
    let _ = std::fs::create_dir("/sys/fs/cgroup/agents.slice");
    d.kill();
    let out = Command::new("python3").args(["-c", REUSED_TGID, AGENTS_CGROUP_PROCS]).output().unwrap();
    d.restart();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(3), "the tgid could not be reused: {stderr}");
    assert!(out.status.success(), "the child of a process that reused a picked-up tgid was confined: {stderr}");
}

/// Moves a sleeping child into agents.slice (argv[1]) and kills it; a new
/// process takes its pid (ns_last_pid) and forks a child that changes the
/// ruleset. Exit 3: the pid could not be had.
const REUSED_TGID: &str = r#"
import os, signal, subprocess, sys
r, w = os.pipe()
picked = os.fork()
if picked == 0:
    os.read(r, 1)
    os._exit(0)
with open(sys.argv[1], 'w') as f:
    f.write(str(picked))
os.kill(picked, signal.SIGKILL)
os.waitpid(picked, 0)
for _ in range(20):
    with open('/proc/sys/kernel/ns_last_pid', 'w') as f:
        f.write(str(picked - 1))
    again = os.fork()
    if again == 0:
        if os.getpid() != picked:
            os._exit(3)
        script = 'nft add table inet reused_tgid && nft delete table inet reused_tgid'
        os._exit(subprocess.call(['sh', '-c', script]))
    code = os.waitstatus_to_exitcode(os.waitpid(again, 0)[1])
    if code != 3:
        sys.exit(code)
sys.exit(3)
"#;

/// A ptrace attachment made before the pickup: PTRACE_POKE* on it pass no
/// hook, so a process picked up while it traces one outside its profile is
/// stopped, and an exec that would make a subject of a tracer is refused.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_tracer_becomes_no_subject_while_it_holds_its_attachment() {
    let d = daemon();
    let go = "/run/warrant-trace-go";
    let _ = std::fs::remove_file(go);
    let mark = d.audit_len();
    let (mut tracer, mut out) = spawn_reading(sideways_root(&["trace-held", AGENTS_CGROUP_PROCS, go]));
    let victim = next_line(&mut out);
    let victim = victim.strip_prefix("victim=").unwrap_or_else(|| panic!("no victim: {victim}")).to_owned();
    let pid = moving_pid(&mut out);
    let stopped = d.expect_record_where(mark, "subject.stopped", |r| r["kind"] == "subject.stopped" && r["pid"] == pid);
    let held = stopped["held"][0].as_str().unwrap_or("");
    assert!(held.contains(&format!("ptrace attachment to thread {victim}")), "{stopped}");
    std::fs::write(go, "").unwrap();
    assert_eq!(tracer.wait().unwrap().signal(), Some(9), "the tracer ran on");
    let _ = Command::new("kill").args(["-9", &victim]).status();
    let _ = std::fs::remove_file(go);
    // A child made before its parent's pickup, not a subject, cannot make
    // that subject its tracer.
    let mark = d.audit_len();
    let (mut parent, mut out) = spawn_reading(sideways_root(&["traceme-held", AGENTS_CGROUP_PROCS, go]));
    let pid = moving_pid(&mut out);
    d.expect_record_where(mark, "subject.matched", |r| r["kind"] == "subject.matched" && r["pid"] == pid);
    std::fs::write(go, "").unwrap();
    assert_eq!(next_line(&mut out), "traceme=1", "PTRACE_TRACEME made a subject the tracer");
    d.expect_record_where(mark, "self.ptrace denied", |r| {
        r["action"] == "self.ptrace" && r["verdict"] == "denied" && r["profile"] == "agent"
    });
    assert!(parent.wait().unwrap().success());
    let _ = std::fs::remove_file(go);
    // Root attaches to a child, keeps the attachment and becomes uid 4242 (ops-bot).
    let mark = d.audit_len();
    let out = sideways_root(&["trace-exec", "4242", "/usr/bin/true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "the exec went on with the attachment: {out:?}");
    d.expect_record_where(mark, "self.ptrace denied", |r| {
        r["action"] == "self.ptrace" && r["verdict"] == "denied" && r["profile"] == "ops-bot"
    });
}
