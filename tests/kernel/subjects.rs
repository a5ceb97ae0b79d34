//! Kernel tier: who is a subject. Descendants through fork, exec and setsid;
//! processes matched by executable, cgroup or uid, at exec or when a policy
//! is applied to them running, every thread of them; and what a subject may
//! not do to its own confinement.

use crate::harness::{self, Daemon, daemon, nft_root, run_subject};

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn descendants_stay_subjects_through_fork_exec_and_setsid() {
    let d = daemon();
    let nested = run_subject(&["sh", "-c", "sh -c 'nft add chain inet filter nested'"]);
    assert!(nested.stderr.contains("Operation not permitted"), "{}", nested.stderr);
    let marker = d.dir.join("setsid.rc");
    let script = format!(
        "setsid sh -c '(nft add chain inet filter daemonised 2>/dev/null; echo $? > {m}) &' ; sleep 0",
        m = marker.display()
    );
    run_subject(&["sh", "-c", &script]);
    let rc = harness::wait_for_file(&marker);
    assert_ne!(rc.trim(), "0", "a double-forked setsid child escaped");
    let table = nft_root(&["list", "table", "inet", "filter"]);
    assert!(!table.contains("nested") && !table.contains("daemonised"));
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn non_subjects_are_unaffected() {
    let _d = daemon();
    nft_root(&["add", "chain", "inet", "filter", "rootchain"]);
    assert!(nft_root(&["list", "table", "inet", "filter"]).contains("rootchain"));
    nft_root(&["delete", "chain", "inet", "filter", "rootchain"]);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_subject_cannot_change_profile_or_use_the_control_socket() {
    let d = daemon();
    let bin = harness::warrant_bin();
    let config = d.config.to_str().unwrap();
    let mark = d.audit_len();
    let out = run_subject(&[bin.to_str().unwrap(), "--config", config, "run", "--profile", "agent", "--", "true"]);
    assert!(!out.status.success(), "a subject registered itself again");
    let revoke = run_subject(&[bin.to_str().unwrap(), "--config", config, "revoke", "w-anything"]);
    assert!(!revoke.status.success(), "a subject reached the control socket: {}", revoke.stderr);
    // The connect itself is refused in the kernel, so no check of the
    // caller's pid (which a child that connects and exits could race) is
    // left to trust.
    let socket = d.dir.join("run/warrant.sock");
    let connect = format!(
        "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({:?})\nexcept PermissionError:\n    sys.exit(1)\n",
        socket.to_str().unwrap()
    );
    let raw = run_subject(&["python3", "-c", &connect]);
    assert_eq!(raw.status.code(), Some(1), "a subject connected to the control socket: {}", raw.stderr);
    d.expect_record(mark, "self.files", "*", "denied");
    // Root, not a subject, still can.
    d.cli_ok(&["status"]);
}

/// Runs `args` as root with real and effective uid `uid`, keeping CAP_NET_ADMIN.
pub(crate) fn as_uid(uid: u32, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("setpriv");
    let id = uid.to_string();
    command
        .args([
            "--reuid",
            &id,
            "--regid",
            &id,
            "--clear-groups",
            "--inh-caps",
            "+net_admin",
            "--ambient-caps",
            "+net_admin",
            "--",
        ])
        .args(args);
    command
}

fn expect_profile_denied(d: &Daemon, mark: usize, chain: &str, profile: &str) -> serde_json::Value {
    let record = d.expect_record(mark, "nft.chain.add", &format!("inet filter {chain}"), "denied");
    assert_eq!(record["profile"], profile, "{record}");
    assert!(!nft_root(&["list", "table", "inet", "filter"]).contains(chain));
    record
}

fn root_sh(script: &str) -> std::process::Output {
    std::process::Command::new("sh").args(["-c", script]).output().unwrap()
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn processes_become_subjects_by_executable_cgroup_and_uid() {
    let d = daemon();
    // By executable: the agent's binary (a copy of sh), started by root.
    let mark = d.audit_len();
    let out = std::process::Command::new("/opt/agents/ai-agent")
        .args(["-c", "nft add chain inet filter by_exe"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the matched executable acted unconfined");
    expect_profile_denied(d, mark, "by_exe", "agent");
    let matched =
        d.expect_record_where(mark, "subject.matched by exe", |r| r["kind"] == "subject.matched" && r["by"] == "exe");
    assert_eq!(matched["profile"], "agent");
    // /bin/sh is another inode: not matched.
    let out = root_sh("nft add chain inet filter by_sh && nft delete chain inet filter by_sh");
    assert!(out.status.success(), "root's own sh was confined: {}", String::from_utf8_lossy(&out.stderr));

    // By uid, at exec.
    let mark = d.audit_len();
    let out = as_uid(4242, &["nft", "add", "chain", "inet", "filter", "by_uid"]).output().unwrap();
    assert!(!out.status.success());
    expect_profile_denied(d, mark, "by_uid", "ops-bot");

    // By cgroup: a root shell that moves itself into agents.slice is a subject from then on...
    let mark = d.audit_len();
    root_sh("echo $$ > /sys/fs/cgroup/agents.slice/cgroup.procs; nft add chain inet filter by_cgroup");
    expect_profile_denied(d, mark, "by_cgroup", "agent");
    // ...as is one in a cgroup made under it later...
    std::fs::create_dir_all("/sys/fs/cgroup/agents.slice/job-1").unwrap();
    let mark = d.audit_len();
    root_sh("echo $$ > /sys/fs/cgroup/agents.slice/job-1/cgroup.procs; nft add chain inet filter by_child_cgroup");
    expect_profile_denied(d, mark, "by_child_cgroup", "agent");
    // ...and moving back out does not end it.
    let mark = d.audit_len();
    root_sh(
        "echo $$ > /sys/fs/cgroup/agents.slice/cgroup.procs; echo $$ > /sys/fs/cgroup/cgroup.procs; nft add chain inet filter left",
    );
    expect_profile_denied(d, mark, "left", "agent");
    // The matched cgroup removed and made again (a systemd restart) is matched again.
    std::fs::remove_dir("/sys/fs/cgroup/agents.slice/job-1").unwrap();
    std::fs::remove_dir("/sys/fs/cgroup/agents.slice").unwrap();
    std::fs::create_dir("/sys/fs/cgroup/agents.slice").unwrap();
    let mark = d.audit_len();
    root_sh("echo $$ > /sys/fs/cgroup/agents.slice/cgroup.procs; nft add chain inet filter by_remade_cgroup");
    expect_profile_denied(d, mark, "by_remade_cgroup", "agent");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn running_processes_are_picked_up_when_a_policy_matches_them() {
    let d = daemon();
    let go = std::path::Path::new("/run/warrant-pickup-go");
    let _ = std::fs::remove_file(go);
    // Running before any policy names uid 4243; it acts once told to.
    let mut waiting = as_uid(
        4243,
        &["sh", "-c", "while [ ! -e /run/warrant-pickup-go ]; do sleep 0.2; done; nft add chain inet filter picked_up"],
    )
    .spawn()
    .unwrap();
    let pid = waiting.id();
    // The next policy gives ops-bot uid 4243 as well.
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let wider = text.replacen("uid = [4242]", "uid = [4242, 4243]", 1);
    assert_ne!(wider, text);
    let mark = d.audit_len();
    d.apply_next_policy(&wider);
    let picked =
        d.expect_record_where(mark, "subject.picked_up", |r| r["kind"] == "subject.picked_up" && r["pid"] == pid);
    assert_eq!(picked["profile"], "ops-bot");
    assert_eq!(picked["by"], "uid");
    std::fs::write(go, "").unwrap();
    assert!(!waiting.wait().unwrap().success(), "the picked-up process acted unconfined");
    expect_profile_denied(d, mark, "picked_up", "ops-bot");
    let _ = std::fs::remove_file(go);
}

/// A thread other than the leader is marked too, on every kernel (before 6.9
/// userspace cannot name one; the kernel's task iterator marks it).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn every_thread_of_a_picked_up_process_is_confined() {
    let d = daemon();
    let go = std::path::Path::new("/run/warrant-threads-go");
    let _ = std::fs::remove_file(go);
    // The leader waits in join(); the second thread acts once told to.
    let script = "import os, subprocess, sys, threading, time\n\
                  rc = []\n\
                  def work():\n    \
                      while not os.path.exists('/run/warrant-threads-go'): time.sleep(0.2)\n    \
                      rc.append(subprocess.call(['nft', 'add', 'chain', 'inet', 'filter', 'by_thread']))\n\
                  t = threading.Thread(target=work); t.start(); t.join(); sys.exit(rc[0])\n";
    let mut waiting = as_uid(4244, &["python3", "-c", script]).spawn().unwrap();
    let pid = waiting.id();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let wider = text.replacen("uid = [4242]", "uid = [4242, 4244]", 1);
    assert_ne!(wider, text);
    let mark = d.audit_len();
    d.apply_next_policy(&wider);
    let picked =
        d.expect_record_where(mark, "subject.picked_up", |r| r["kind"] == "subject.picked_up" && r["pid"] == pid);
    assert!(picked["threads"].as_u64().unwrap_or(0) >= 2, "only the leader was marked: {picked}");
    std::fs::write(go, "").unwrap();
    assert!(!waiting.wait().unwrap().success(), "the picked-up process's second thread acted unconfined");
    expect_profile_denied(d, mark, "by_thread", "ops-bot");
    let _ = std::fs::remove_file(go);
    d.apply_next_policy(&text);
}

/// systemd's spawn: PID 1 moves its fresh child into the unit's cgroup while
/// the child, still running systemd's code, writes itself there too. When
/// PID 1's move lands first, the child is a subject by then; its own write
/// must still succeed (it failed with 219/CGROUP before), and nothing more:
/// no other cgroup, nothing once it has exec'd, mapped an agent's file
/// executable or is 5 s old, nothing for a child that had exec'd before the
/// move, and no agent may attach to it meanwhile.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_child_moved_by_its_parent_may_write_itself_into_its_cgroup_until_it_execs() {
    let d = daemon();
    let agents = "/sys/fs/cgroup/agents.slice";
    let _ = std::fs::create_dir(agents);
    let mark = d.audit_len();
    // Yama would refuse the attach below before Warrant is asked.
    let _ = std::fs::write("/proc/sys/kernel/yama/ptrace_scope", "0");
    // A file an agent wrote, which the last child maps executable.
    let marked = "/tmp/warrant-moved-marked";
    assert!(run_subject(&["sh", "-c", &format!("echo code > {marked}")]).status.success());
    let warrant = harness::warrant_bin();
    let args = ["-c", MOVED_BY_PARENT, agents, warrant.to_str().unwrap(), d.config.to_str().unwrap(), marked];
    let out = std::process::Command::new("python3").args(args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code & 1, 0, "the moved child could not write itself into its own cgroup: {stderr}");
    assert_eq!(code & 2, 0, "the moved child moved itself into another cgroup");
    assert_eq!(code & 4, 0, "after exec, it still wrote its cgroup's cgroup.procs");
    assert_eq!(code & 8, 0, "the moved child acted unconfined");
    assert_eq!(code & 16, 0, "a child that had exec'd before the move wrote cgroup.procs");
    assert_eq!(code & 32, 0, "an agent attached to the moved child before its exec");
    assert_eq!(code & 64, 0, "the moved child still wrote cgroup.procs 5 s after its fork");
    assert_eq!(code & 128, 0, "the moved child still wrote cgroup.procs after mapping an agent's file executable");
    assert_eq!(code, 0, "{stderr}");
    expect_profile_denied(d, mark, "moved_child", "agent");
    d.expect_record(mark, "self.cgroup", "*", "denied");
    d.expect_record(mark, "self.ptrace", "*", "denied");
}

/// Root moves a child it forked into agents.slice (argv[1]), as PID 1 does,
/// then lets it go on; the exit code's bits say what the child could do.
/// One waits while an agent (argv[2] run, config argv[3]) tries to attach
/// to it; one waits past the 5 s; one maps argv[4] (an agent's) executable.
const MOVED_BY_PARENT: &str = r#"
import mmap, os, subprocess, sys, time
agents, warrant, config, marked = sys.argv[1:5]
ATTACH = 'import ctypes, sys; sys.exit(1 if ctypes.CDLL(None, use_errno=True).ptrace(16, int(sys.argv[1]), 0, 0) == 0 else 0)'

def attach(cgroup, pid):
    with open(cgroup + '/cgroup.procs', 'w') as f:
        f.write(str(pid))

def refused(cgroup, pid):
    try:
        attach(cgroup, pid)
    except PermissionError:
        return True
    return False

def moved(child, wait_ready=False, probe=False):
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child(go_r, ready_w)
        finally:
            os._exit(99)
    if wait_ready:
        os.read(ready_r, 6)
    attach(agents, pid)
    code = 0
    if probe:
        agent = [warrant, '--config', config, 'run', '--profile', 'agent', '--', 'python3', '-c', ATTACH, str(pid)]
        code = 32 if subprocess.call(agent) != 0 else 0
    os.write(go_w, b'x\n')
    return code | os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

def forked(go, ready):
    os.read(go, 1)
    code = 1 if refused(agents, os.getpid()) else 0
    code |= 0 if refused('/sys/fs/cgroup', os.getpid()) else 2
    script = 'echo $$ > %s/cgroup.procs && exit 4; nft add chain inet filter moved_child && exit 8; exit %d'
    os.execvp('sh', ['sh', '-c', script % (agents, code)])

def probed(go, ready):
    os.read(go, 1)
    os._exit(0)

def late(go, ready):
    os.read(go, 1)
    time.sleep(5.5)
    os._exit(0 if refused(agents, os.getpid()) else 64)

def mapped(go, ready):
    os.read(go, 1)
    with open(marked, 'rb') as f:
        mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)
    os._exit(0 if refused(agents, os.getpid()) else 128)

def execd(go, ready):
    os.dup2(go, 0)
    os.dup2(ready, 1)
    script = 'echo ready; read x; echo $$ > %s/cgroup.procs && exit 16; exit 0'
    os.execvp('sh', ['sh', '-c', script % agents])

codes = [moved(forked), moved(execd, wait_ready=True), moved(probed, probe=True), moved(late), moved(mapped)]
sys.exit(codes[0] | codes[1] | codes[2] | codes[3] | codes[4])
"#;

/// The cgroup tracepoints fire for cgroup v1 hierarchies too, whose ids are
/// numbered apart from v2's: a v1 cgroup at a matched path (a hybrid host's
/// name=systemd hierarchy mirrors the v2 paths) is no matched cgroup.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_cgroup_v1_hierarchy_is_not_matched_by_a_v2_path() {
    let _d = daemon();
    let v1 = "/run/warrant-cgroup-v1";
    std::fs::create_dir_all(v1).unwrap();
    let mounted = root_sh(&format!("mount -t cgroup -o none,name=warrant-v1 cgroup {v1}"));
    assert!(mounted.status.success(), "{}", String::from_utf8_lossy(&mounted.stderr));
    let _ = std::fs::create_dir(format!("{v1}/agents.slice"));
    let out = root_sh(&format!(
        "echo $$ > {v1}/agents.slice/cgroup.procs && nft add table inet v1_unmatched && nft delete table inet v1_unmatched"
    ));
    let _ = std::fs::remove_dir(format!("{v1}/agents.slice"));
    let _ = root_sh(&format!("umount {v1}"));
    assert!(
        out.status.success(),
        "a v1 cgroup at a matched path confined root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
