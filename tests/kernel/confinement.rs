//! Kernel tier: routes around the firewall that go through something else
//! the kernel does for the subject: signals by the SIGIO route, typing into
//! a terminal, and setting the clock that warrants are checked against.

use std::process::Command;

use crate::harness::{self, daemon, run_subject};

pub(crate) fn sideways(args: &[&str]) -> harness::Ran {
    let script = harness::helper("sideways.py");
    let mut command = vec!["python3", script.as_str()];
    command.extend_from_slice(args);
    run_subject(&command)
}

/// The state letter of process `pid` (`R`, `S`, `T` for stopped, ...).
fn process_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(") ").next().unwrap_or_default().chars().take(1).collect()
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn the_daemon_gets_no_signal_by_sigio_a_resource_limit_or_sysrq() {
    let d = daemon();
    // The route is real: root stops an ordinary process with it.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let script = harness::helper("sideways.py");
    let root = Command::new("python3").args([&script, "sigio", &sleeper.id().to_string(), "19"]).status().unwrap();
    assert!(root.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(process_state(sleeper.id()), "T", "SIGSTOP by the SIGIO route did not arrive");
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    let mark = d.audit_len();
    let out = sideways(&["sigio", &d.pid().to_string(), "19"]);
    assert!(out.status.success(), "{}", out.stderr);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_ne!(process_state(d.pid()), "T", "a subject stopped the daemon through F_SETOWN/F_SETSIG");
    d.cli_ok(&["status"]);
    d.expect_record(mark, "self.signal", "*", "denied");
    // Nor SIGKILL.
    let mark = d.audit_len();
    let out = sideways(&["sigio", &d.pid().to_string(), "9"]);
    assert!(out.status.success(), "{}", out.stderr);
    std::thread::sleep(std::time::Duration::from_millis(500));
    d.cli_ok(&["status"]);
    d.expect_record(mark, "self.signal", "*", "denied");
    // Nor a resource limit, which the kernel enforces with its own signals.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let root = Command::new("prlimit").args(["--pid", &sleeper.id().to_string(), "--cpu=unlimited"]).status();
    assert!(root.unwrap().success(), "root's prlimit on another process");
    let mark = d.audit_len();
    let out = run_subject(&["prlimit", "--pid", &d.pid().to_string(), "--cpu=unlimited"]);
    assert!(out.stderr.contains("Operation not permitted"), "a subject's prlimit on the daemon: {}", out.stderr);
    d.expect_record(mark, "self.signal", "*", "denied");
    let out = run_subject(&["prlimit", "--pid", &sleeper.id().to_string(), "--cpu=unlimited"]);
    assert!(out.status.success(), "a subject's prlimit on another process: {}", out.stderr);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // Nor its /proc files: oom_score_adj would make it the OOM killer's
    // first pick. By the process and by each thread; the agent's own work.
    let daemon_proc = format!("/proc/{}", d.pid());
    let before = std::fs::read_to_string(format!("{daemon_proc}/oom_score_adj")).unwrap();
    let threads: Vec<String> = std::fs::read_dir(format!("{daemon_proc}/task"))
        .unwrap()
        .map(|entry| format!("{daemon_proc}/task/{}", entry.unwrap().file_name().to_string_lossy()))
        .collect();
    let mut refused = 0;
    for dir in std::iter::once(&daemon_proc).chain(&threads) {
        let mark = d.audit_len();
        let out = run_subject(&["sh", "-c", &format!("echo 1000 > {dir}/oom_score_adj")]);
        if out.stderr.contains("nonexistent") {
            continue; // a worker thread that ended meanwhile
        }
        assert!(out.stderr.contains("Operation not permitted"), "{dir}/oom_score_adj: {}", out.stderr);
        d.expect_record(mark, "self.ptrace", "*", "denied");
        refused += 1;
    }
    assert!(refused >= 3, "the process and at least two of its threads: {refused}");
    assert_eq!(std::fs::read_to_string(format!("{daemon_proc}/oom_score_adj")).unwrap(), before);
    let out = run_subject(&["sh", "-c", "echo 500 > /proc/self/oom_score_adj"]);
    assert!(out.status.success(), "a subject's own oom_score_adj: {}", out.stderr);
    // Nor its scheduling, which would starve its audit writes.
    let pid = d.pid().to_string();
    for command in
        [&["renice", "-n", "19", "-p", &pid][..], &["chrt", "-i", "-p", "0", &pid], &["ionice", "-c", "3", "-p", &pid]]
    {
        let mark = d.audit_len();
        let out = run_subject(command);
        assert!(!out.status.success(), "{command:?} as a subject: {}", out.stderr);
        d.expect_record(mark, "self.ptrace", "*", "denied");
    }
    let out = run_subject(&["nice", "-n", "5", "true"]);
    assert!(out.status.success(), "a subject's own nice: {}", out.stderr);
    // Nor the kernel's own keys (`h` prints their help).
    let mark = d.audit_len();
    let out = run_subject(&["sh", "-c", "echo h > /proc/sysrq-trigger"]);
    assert!(out.stderr.contains("Operation not permitted"), "sysrq-trigger: {}", out.stderr);
    d.expect_record(mark, "file.write", "/proc/sysrq-trigger", "denied");
    std::fs::write("/proc/sysrq-trigger", "h").expect("root's sysrq");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_type_into_a_terminal_or_by_a_keyboard() {
    let d = daemon();
    let script = harness::helper("sideways.py");
    let root = Command::new("python3").args([&script, "tiocsti"]).output().unwrap();
    assert!(root.status.success(), "root's TIOCSTI: {}", String::from_utf8_lossy(&root.stderr));
    let mark = d.audit_len();
    let out = sideways(&["tiocsti"]);
    assert_eq!(out.status.code(), Some(1), "TIOCSTI as a subject: {}", out.stderr);
    d.expect_record(mark, "self.tty", "*", "denied");
    // TIOCLINUX (a console's selection pasted as input) is refused before
    // the driver looks: root's call reaches it (a pty is no console).
    let root = Command::new("python3").args([&script, "tioclinux"]).output().unwrap();
    assert!(![0, 1].contains(&root.status.code().unwrap_or(0)), "root's TIOCLINUX on a pty: {root:?}");
    let mark = d.audit_len();
    let out = sideways(&["tioclinux"]);
    assert_eq!(out.status.code(), Some(1), "TIOCLINUX as a subject: {}", out.stderr);
    d.expect_record(mark, "self.tty", "*", "denied");
    // Nor type by a keyboard: a made one (uinput) or a real one's events.
    let _ = Command::new("modprobe").arg("uinput").status();
    let _ = std::fs::remove_file("/run/warrant-event0");
    assert!(Command::new("mknod").args(["/run/warrant-event0", "c", "13", "64"]).status().unwrap().success());
    for device in ["/dev/uinput", "/run/warrant-event0"] {
        let mark = d.audit_len();
        let out = run_subject(&["python3", "-c", &format!("open('{device}', 'wb')")]);
        assert!(out.stderr.contains("Operation not permitted"), "{device} for writing: {}", out.stderr);
        d.expect_record(mark, "self.tty", "*", "denied");
    }
    std::fs::OpenOptions::new().write(true).open("/dev/uinput").expect("root opens uinput");
    // A line discipline makes a link of a serial line (SLIP, SLCAN, GSM).
    let set_discipline = "import fcntl,os,pty,struct; m,s=pty.openpty(); fcntl.ioctl(s,0x5423,struct.pack('i',0))";
    let mark = d.audit_len();
    let out = run_subject(&["python3", "-c", set_discipline]);
    assert!(out.stderr.contains("Operation not permitted"), "TIOCSETD as a subject: {}", out.stderr);
    d.expect_denied(mark, "net.link.add");
    assert!(Command::new("python3").args(["-c", set_discipline]).status().unwrap().success(), "root's TIOCSETD");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn setting_the_clock_is_an_action_the_policy_decides() {
    let d = daemon();
    let now = harness::now_unix;
    let mark = d.audit_len();
    let back = format!("@{}", now() - 86_400);
    let out = run_subject(&["date", "-s", &back]);
    assert!(!out.status.success(), "a subject set the clock back a day");
    assert!(now() > 1_700_000_000 && out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    d.expect_record(mark, "system.clock", "*", "denied");
    // Root, not a subject, still can (to the time it already is).
    let root = Command::new("date").args(["-s", &format!("@{}", now())]).output().unwrap();
    assert!(root.status.success(), "{}", String::from_utf8_lossy(&root.stderr));

    // Whoever sets the clock back, an expired warrant stays expired: the
    // daemon checks validity on this boot's anchored clock.
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2901", "accept"];
    let mark = d.audit_len();
    assert!(run_subject(&rule).stderr.contains("Operation not permitted"));
    let refused = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let warrant = d.approve(refused["request"].as_str().unwrap(), "alice", "3s", 1);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let set = |to: u64| {
        let out = Command::new("date").args(["-s", &format!("@{to}")]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let mark = d.audit_len();
    set(now() - 3600);
    // (The daemon notices the skew at its next 2 s tick.)
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (installed, said) = d.run_cli_status(&["install", warrant.to_str().unwrap()]);
    let records = d.records_since(mark);
    set(now() + 3600);
    assert!(
        !installed && said.contains("expired"),
        "an expired warrant was installed after the clock went back: {said}"
    );
    let skew = records.iter().find(|r| r["kind"] == "clock.skew").expect("a clock.skew record");
    assert!(skew["skew_secs"].as_i64().is_some_and(|s| s < -3000), "{skew}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn persistence_and_usermode_helper_surfaces_are_guarded_without_a_policy_line() {
    let d = daemon();
    // Usermode helpers: the kernel runs what these name, as root.
    for path in ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe"] {
        let before = std::fs::read_to_string(path).unwrap();
        let mark = d.audit_len();
        let out = run_subject(&["sh", "-c", &format!("echo /opt/agents/helper > {path}")]);
        assert!(out.stderr.contains("Operation not permitted"), "{path}: {}", out.stderr);
        assert_eq!(std::fs::read_to_string(path).unwrap(), before, "{path} changed");
        d.expect_record(mark, "file.write", path, "denied");
        // Root, not a subject, still can.
        std::fs::write(path, &before).unwrap();
    }
    // An interpreter for files of the agent's choosing, run by whoever execs one.
    let register = "/proc/sys/fs/binfmt_misc/register";
    let mark = d.audit_len();
    let out = run_subject(&["sh", "-c", &format!("echo ':agentfmt:E::agentx::/opt/agents/helper:' > {register}")]);
    assert!(out.stderr.contains("Operation not permitted"), "{register}: {}", out.stderr);
    assert!(!std::path::Path::new("/proc/sys/fs/binfmt_misc/agentfmt").exists(), "a subject registered a format");
    d.expect_record(mark, "file.write", "/proc/sys/fs/binfmt_misc", "denied");
    // Nor switch every interpreter off or on.
    let out = run_subject(&["sh", "-c", "echo 0 > /proc/sys/fs/binfmt_misc/status"]);
    assert!(out.stderr.contains("Operation not permitted"), "binfmt_misc/status: {}", out.stderr);
    std::fs::write(register, ":rootfmt:E::rootx::/bin/true:").expect("root registers a format");
    std::fs::write("/proc/sys/fs/binfmt_misc/rootfmt", "-1").expect("root removes it");
    // Mounted only after the apply (systemd's automount, at its first
    // use), or a second time elsewhere: guarded all the same.
    let sh = harness::as_root;
    sh("umount /proc/sys/fs/binfmt_misc");
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    d.apply_next_policy(&text);
    // A tmpfs takes the device number the first binfmt_misc had: the new
    // one's files have keys no walk has seen (the old ones' entries stay).
    sh("mkdir -p /run/devhog /run/binfmt; mount -t tmpfs devhog /run/devhog
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; mount -t binfmt_misc binfmt_misc /run/binfmt");
    for register in [register, "/run/binfmt/register"] {
        let mark = d.audit_len();
        let out = run_subject(&["sh", "-c", &format!("echo ':agentfmt:E::agentx::/opt/agents/helper:' > {register}")]);
        assert!(out.stderr.contains("Operation not permitted"), "{register} mounted after the apply: {}", out.stderr);
        d.expect_record(mark, "file.write", "/proc/sys/fs/binfmt_misc", "denied");
    }
    assert!(!std::path::Path::new("/run/binfmt/agentfmt").exists(), "a subject registered a format");
    sh("umount /run/binfmt /run/devhog");
    d.apply_next_policy(&text);
    // Persistence: a login shell would run this script as root.
    let script = "/etc/profile.d/zz-agent.sh";
    let mark = d.audit_len();
    let out = run_subject(&["sh", "-c", &format!("echo 'nft flush ruleset' > {script}")]);
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    assert!(!std::path::Path::new(script).exists(), "a subject planted {script}");
    d.expect_record_where(mark, "file.create in /etc/profile.d denied", |r| {
        r["action"] == "file.create"
            && r["verdict"] == "denied"
            && r["target"].as_str().is_some_and(|t| t.starts_with("/etc/profile.d"))
    });
    std::fs::write(script, "true\n").expect("root writes /etc/profile.d");
    std::fs::remove_file(script).unwrap();
    let shown = d.cli_ok(&["policy", "show"]);
    assert!(shown.contains("/etc/ld.so.conf.d") && shown.contains("/proc/sys/kernel/core_pattern"), "{shown}");
}

/// A guarded file the host lacks (root's `.bash_login`, `.ssh`) is guarded
/// by its name, and so is a protected path with a missing directory on the
/// way, or one root removed after the apply: a subject makes none of them
/// by any call, and what root makes there is protected at once. /root is
/// a tmpfs here (the VM's own is the host's, read-only, where every create
/// fails before a hook).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_guarded_path_the_host_lacks_is_guarded_by_its_name() {
    let d = daemon();
    let root = harness::as_root;
    root(
        "grep -qs ' /root tmpfs ' /proc/mounts || mount -t tmpfs agenthome /root; rm -rf /mnt/absent
        echo true > /mnt/present.conf",
    );
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let absent = text.replacen("protect = [", "protect = [\"/mnt/absent/units/system\", \"/mnt/present.conf\", ", 1);
    d.apply_next_policy(&absent);
    // One there at the apply, which root then removes.
    root("rm /mnt/present.conf");
    // The control path: /root itself is not guarded.
    let out = run_subject(&["sh", "-c", "echo notes > /root/notes"]);
    assert!(out.status.success(), "a subject could not write /root/notes: {}", out.stderr);
    for (action, target, script) in [
        ("file.create", "/root/.bash_login", "echo 'nft flush ruleset' > /root/.bash_login"),
        ("file.create", "/root/.bash_profile (a symlink)", "ln -s /root/notes /root/.bash_profile"),
        ("file.rename", "/root/.bash_profile", "mv /root/notes /root/.bash_profile"),
        ("file.link", "/root/.bash_logout", "ln /root/notes /root/.bash_logout"),
        ("file.create", "/root/.ssh (a directory)", "mkdir /root/.ssh"),
        // Refused at the first directory on the way, which is what it names.
        ("file.create", "/mnt/absent (a directory)", "mkdir -p /mnt/absent/units/system"),
        ("file.create", "/mnt/present.conf", "echo evil > /mnt/present.conf"),
    ] {
        let mark = d.audit_len();
        let out = run_subject(&["sh", "-c", script]);
        assert!(out.stderr.contains("Operation not permitted"), "{script}: {}", out.stderr);
        d.expect_record(mark, action, target, "denied");
    }
    for made in [
        "/root/.bash_login",
        "/root/.bash_profile",
        "/root/.bash_logout",
        "/root/.ssh",
        "/mnt/absent",
        "/mnt/present.conf",
    ] {
        assert!(std::fs::symlink_metadata(made).is_err(), "a subject made {made}");
    }
    // Root makes two of them (one by a rename into place): protected at once.
    root("echo true > /root/.bash_login; echo true > /root/staged; mv /root/staged /root/.bash_profile");
    for path in ["/root/.bash_login", "/root/.bash_profile"] {
        let mark = d.audit_len();
        let out = run_subject(&["sh", "-c", &format!("echo 'nft flush ruleset' >> {path}")]);
        assert!(out.stderr.contains("Operation not permitted"), "{path}: {}", out.stderr);
        d.expect_record(mark, "file.write", path, "denied");
        assert_eq!(std::fs::read_to_string(path).unwrap(), "true\n");
    }
    d.apply_next_policy(&text);
    // Removed first: an unmount drops no protected entries, and a later
    // mount may be handed the same device number.
    root("rm -rf /root/.bash_login /root/.bash_profile /root/notes; umount /root");
}

/// A policy that lets an agent write its home (`/root`, a tree of its own
/// with `allow` rules) does not open the guarded surfaces inside it: the
/// nearest tree root decides, for the files there (`.bashrc`) and for the
/// names missing (`.bash_login`). Before, the outer tree's rules did. Nor
/// may the agent move a directory of its home that holds another tree.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_guarded_path_inside_a_policy_tree_keeps_its_own_rules() {
    let d = daemon();
    let root = harness::as_root;
    root(
        "grep -qs ' /root tmpfs ' /proc/mounts || mount -t tmpfs agenthome /root; echo true > /root/.bashrc
        mkdir -p /root/work/held",
    );
    let rules = ["file.create", "file.write", "file.rename"].map(|action| (action, "/root", "allow"));
    let (text, home) = harness::demo_policy_with(&["/root", "/root/work/held"], &rules);
    d.apply_next_policy(&home);
    // The control path: the agent's own files in its home.
    let mark = d.audit_len();
    let out = run_subject(&["sh", "-c", "echo notes > /root/notes && echo more >> /root/notes"]);
    assert!(out.status.success(), "a subject could not write its home: {}", out.stderr);
    d.expect_record(mark, "file.create", "/root/notes", "allowed");
    for (action, target, script) in [
        ("file.write", "/root/.bashrc", "echo 'nft flush ruleset' >> /root/.bashrc"),
        ("file.create", "/root/.bash_login", "echo 'nft flush ruleset' > /root/.bash_login"),
        ("file.rename", "/root/.bash_profile", "mv /root/notes /root/.bash_profile"),
        // A directory on the way to another tree's root: moved, it would
        // take that tree away, and the subject would make the path again.
        ("file.rename", "*", "mv /root/work /root/w2"),
    ] {
        let mark = d.audit_len();
        let out = run_subject(&["sh", "-c", script]);
        assert!(out.stderr.contains("Operation not permitted"), "{script}: {}", out.stderr);
        d.expect_record(mark, action, target, "denied");
    }
    assert_eq!(std::fs::read_to_string("/root/.bashrc").unwrap(), "true\n");
    assert!(std::fs::symlink_metadata("/root/.bash_login").is_err());
    d.apply_next_policy(&text);
    root("rm -rf /root/.bashrc /root/notes /root/work; umount /root");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn warrant_run_passes_on_only_the_fds_it_is_told_to() {
    let d = daemon();
    let bin = harness::warrant_bin();
    let run = |keep: &[&str]| {
        let script = format!(
            "exec 7</etc/hostname; {} --config {} run --profile agent {} -- sh -c 'cat <&7'",
            bin.display(),
            d.config.display(),
            keep.join(" ")
        );
        Command::new("sh").args(["-c", &script]).output().unwrap()
    };
    let closed = run(&[]);
    assert!(!closed.status.success(), "fd 7 reached the subject: {}", String::from_utf8_lossy(&closed.stdout));
    let kept = run(&["--keep-fd", "7"]);
    assert!(kept.status.success(), "--keep-fd 7: {}", String::from_utf8_lossy(&kept.stderr));
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_read_warrants_keys() {
    let d = daemon();
    let key = d.dir.join("state/digest.key");
    assert_eq!(std::fs::read(&key).expect("the daemon keeps the digest key").len(), 16, "root reads it");
    for file in [key, d.dir.join("state/host.key")] {
        let mark = d.audit_len();
        let out = run_subject(&["cat", file.to_str().unwrap()]);
        assert!(out.stderr.contains("Operation not permitted"), "{}: {}", file.display(), out.stderr);
        d.expect_record(mark, "self.files", "*", "denied");
    }
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_move_freeze_or_kill_the_daemon_through_cgroupfs() {
    let d = daemon();
    let trap = "/sys/fs/cgroup/warrant-trap";
    let _ = std::fs::create_dir(trap);
    let daemon_cgroup = || std::fs::read_to_string(format!("/proc/{}/cgroup", d.pid())).unwrap();
    let before = daemon_cgroup();
    for (file, value) in [
        ("cgroup.procs", d.pid().to_string()),
        ("cgroup.threads", d.pid().to_string()),
        ("cgroup.freeze", "1".into()),
        ("cgroup.kill", "1".into()),
    ] {
        let mark = d.audit_len();
        let out = run_subject(&["sh", "-c", &format!("echo {value} > {trap}/{file}")]);
        assert!(out.stderr.contains("Operation not permitted"), "{file}: {}", out.stderr);
        d.expect_record(mark, "self.cgroup", "*", "denied");
    }
    assert_eq!(daemon_cgroup(), before, "a subject moved the daemon to another cgroup");
    d.cli_ok(&["status"]);
    // Root moving the daemon into the agents' (matched) cgroup does not make
    // it a subject: its records keep coming.
    let agents = "/sys/fs/cgroup/agents.slice";
    let _ = std::fs::create_dir(agents);
    std::fs::write(format!("{agents}/cgroup.procs"), d.pid().to_string()).expect("root moves the daemon");
    let mark = d.audit_len();
    let out = run_subject(&["sh", "-c", &format!("echo 1 > {trap}/cgroup.freeze")]);
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    d.expect_record(mark, "self.cgroup", "*", "denied");
    let confined = d
        .records_since(mark)
        .into_iter()
        .any(|r| r["kind"] == "daemon.confined" || (r["kind"] == "subject.matched" && r["pid"] == d.pid()));
    assert!(!confined, "the daemon became a subject");
    let home = before.trim().strip_prefix("0::").unwrap_or("/").trim_end_matches('/').to_owned();
    std::fs::write(format!("/sys/fs/cgroup{home}/cgroup.procs"), d.pid().to_string()).expect("root moves it back");
    // Root, not a subject, still can.
    std::fs::write(format!("{trap}/cgroup.freeze"), "0").expect("root writes cgroup.freeze");
    std::fs::remove_dir(trap).unwrap();
}
