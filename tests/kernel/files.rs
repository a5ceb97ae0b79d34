//! Kernel tier: protected config files and Warrant's own, by every route a
//! file changes (write, rename, link, unlink, create, mkdir, symlink, mknod,
//! chmod, xattrs and ACLs, truncate, mmap), and sysctls under a protected /proc tree.

use crate::harness::{self, Daemon, daemon, run_subject};
use crate::warrant_after_refusal;

/// O_TMPFILE passes no create hook and makes no name: a subject's takes no
/// protected slot (nothing would free it, and a full set leaves later
/// files unprotected), yet it is its directory's tree's: in Warrant's own
/// directories or in a protected tree, it is refused at its open. Root's
/// keeps its slot (a subject handed it may not write it or link it out);
/// linked into the tree, it is protected there. A file root unlinked is
/// its directory's tree's too.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn unnamed_files_take_no_protected_slots_and_are_their_directorys_trees() {
    let d = daemon();
    // Python making `count` unnamed files in `dir`: it says how many it
    // made and how many were refused, and exits 0 if `refused` were.
    let tmpfiles = |dir: &str, count: usize, refused: usize| {
        format!(
            "import os, sys\nmade = refused = 0\nfor _ in range({count}):\n    try:\n        fd = os.open({dir:?}, os.O_TMPFILE | os.O_WRONLY, 0o600)\n        os.write(fd, b'x')\n        os.close(fd)\n        made += 1\n    except PermissionError:\n        refused += 1\nprint('made', made, 'refused', refused, file=sys.stderr)\nsys.exit(0 if refused == {refused} else 3)\n"
        )
    };
    let before = protected_entries();
    let own = d.dir.join("run");
    let mark = d.audit_len();
    let out = run_subject(&["python3", "-c", &tmpfiles(own.to_str().unwrap(), 300, 300)]);
    assert!(out.status.success(), "a subject's O_TMPFILEs in Warrant's run directory: {}", out.stderr);
    d.expect_record_where(mark, "self.files denied", |r| r["action"] == "self.files" && r["verdict"] == "denied");
    let mark = d.audit_len();
    let out = run_subject(&["python3", "-c", &tmpfiles("/etc/sysctl.d", 1, 1)]);
    assert!(out.status.success(), "a subject's O_TMPFILE in /etc/sysctl.d: {}", out.stderr);
    d.expect_record_where(mark, "file.write of an unnamed file in /etc/sysctl.d", |r| {
        r["action"] == "file.write"
            && r["verdict"] == "denied-needs-warrant"
            && r["target"].as_str().is_some_and(|t| t.starts_with("/etc/sysctl.d"))
    });
    let after = protected_entries();
    // The daemon may protect a few files of its own meanwhile (a rotated log).
    assert!(after < before + 10, "301 unnamed files took {} protected slots", after - before);
    // Root's unnamed file in the tree on a subject's fd, and a file of the
    // tree root unlinked while it held it open: refused at the write. The
    // subject's python exits 4 when its write is refused (1 is an error).
    let write = "import os, sys\ntry:\n    os.write(FD, b'net.ipv4.ip_forward = 1\\n')\nexcept PermissionError:\n    sys.exit(4)";
    // Root's unnamed file keeps its entry: nor may the subject link it out
    // of the tree (to write it there; linkat with AT_EMPTY_PATH, as a link
    // through /proc/self/fd crosses mounts). Made through the fixture's own
    // mount, which holds an unprotected directory too.
    let link_out = format!(
        "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\nif libc.linkat(FD, b'', -100, b'/mnt/outside/linked-out', 0x1000) == 0:\n    raise SystemExit(2)\nif ctypes.get_errno() != errno.EPERM:\n    raise SystemExit(5)\n{write}"
    );
    for (what, open, subject) in [
        ("root's unnamed file", "fd = os.open('/mnt/sysctl.d', os.O_TMPFILE | os.O_RDWR, 0o644)", link_out.as_str()),
        (
            "a file root unlinked",
            "fd = os.open('/etc/sysctl.d/96-held.conf', os.O_CREAT | os.O_WRONLY, 0o644); os.unlink('/etc/sysctl.d/96-held.conf')",
            write,
        ),
    ] {
        let mark = d.audit_len();
        let code = harness::with_root_fd_from(open, subject);
        assert_eq!(code, Some(4), "a subject wrote {what} in /etc/sysctl.d (exit code {code:?})");
        d.expect_record_where(mark, &format!("file.write of {what}"), |r| {
            r["action"] == "file.write" && r["verdict"] == "denied-needs-warrant"
        });
    }
    // Linked into the tree, it is protected like any file made there.
    let linked = "/etc/sysctl.d/95-linked.conf";
    let _ = std::fs::remove_file(linked);
    harness::as_root(&format!(
        "python3 -c \"import ctypes, os; fd = os.open('/etc/sysctl.d', os.O_TMPFILE | os.O_WRONLY, 0o644); os.write(fd, b'# linked\\n'); assert ctypes.CDLL(None).linkat(fd, b'', -100, b'{linked}', 0x1000) == 0\""
    ));
    let mark = d.audit_len();
    let out = sh_subject(&format!("echo x >> {linked}"));
    assert!(!out.status.success(), "a subject wrote a file root linked into /etc/sysctl.d");
    d.expect_record(mark, "file.write", linked, "denied-needs-warrant");
    std::fs::remove_file(linked).unwrap();
}

/// The pinned PROTECTED map.
pub(crate) fn protected_map()
-> aya::maps::HashMap<aya::maps::MapData, warrant_common::FileKey, warrant_common::ProtectedEntry> {
    let map = aya::maps::MapData::from_pin("/sys/fs/bpf/warrant/maps/PROTECTED").expect("PROTECTED is pinned");
    aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(map).unwrap()).unwrap()
}

/// How many entries PROTECTED holds.
pub(crate) fn protected_entries() -> usize {
    protected_map().keys().count()
}

/// A subject makes the raw system call `call` (python `libc.syscall`
/// arguments, after `setup`): it must fail with EPERM and be recorded as
/// the self-protection `action`.
pub(crate) fn expect_syscall_refused(d: &Daemon, what: &str, setup: &str, call: &str, action: &str) {
    expect_script_refused(d, what, &syscall_script(setup, call), action);
}

/// Python that makes the raw system call `call` after `setup` and exits
/// with its errno (0 when it worked).
pub(crate) fn syscall_script(setup: &str, call: &str) -> String {
    format!(
        "import ctypes,os,sys; libc=ctypes.CDLL(None,use_errno=True); {setup}r=libc.syscall({call}); sys.exit(ctypes.get_errno() if r<0 else 0)"
    )
}

/// A subject runs python `script`, which exits with an errno: it must be
/// EPERM, recorded as the self-protection `action`.
pub(crate) fn expect_script_refused(d: &Daemon, what: &str, script: &str, action: &str) {
    let mark = d.audit_len();
    let out = run_subject(&["python3", "-c", script]);
    assert_eq!(out.status.code(), Some(1), "{what} from a subject must fail with EPERM: {}", out.stderr);
    d.expect_record(mark, action, "*", "denied");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_touch_warrant_itself() {
    let d = daemon();
    let mark = d.audit_len();
    // bpf(): any command, even a malformed one, is refused before the kernel looks at it.
    expect_syscall_refused(d, "bpf()", "", "321,0,None,0", "self.bpf");
    // The pins that keep enforcement attached while the daemon is down.
    let pin = "/sys/fs/bpf/warrant/links/netlink_send";
    let rm = run_subject(&["rm", "-f", pin]);
    assert!(!rm.status.success());
    assert!(std::path::Path::new(pin).exists(), "a subject removed a pin");
    d.expect_record(mark, "self.pins", "*", "denied");
    let umount = run_subject(&["umount", "-l", "/sys/fs/bpf"]);
    assert!(!umount.status.success(), "a subject unmounted bpffs");
    let mount = run_subject(&["mount", "-t", "tmpfs", "none", "/mnt"]);
    assert!(!mount.status.success(), "a subject mounted");
    d.expect_record(mark, "self.mount", "*", "denied");
    let chroot = run_subject(&["chroot", "/", "true"]);
    assert!(!chroot.status.success(), "a subject chrooted");
    d.expect_record(mark, "self.chroot", "*", "denied");
    // Signals at the daemon.
    let pid = d.pid().to_string();
    let kill = run_subject(&["kill", "-STOP", &pid]);
    assert!(!kill.status.success(), "a subject stopped the daemon");
    d.expect_record(mark, "self.signal", "*", "denied");
    assert!(d.run_cli_status(&["status"]).0, "the daemon must still answer");
    // ptrace of the daemon (PTRACE_ATTACH = 16).
    let ptrace = run_subject(&[
        "python3",
        "-c",
        &format!(
            "import ctypes,sys; libc=ctypes.CDLL(None,use_errno=True); r=libc.ptrace(16,{pid},0,0); sys.exit(ctypes.get_errno() if r<0 else 0)"
        ),
    ]);
    assert_eq!(ptrace.status.code(), Some(1), "ptrace of the daemon must fail with EPERM: {}", ptrace.stderr);
    d.expect_record(mark, "self.ptrace", "*", "denied");
    // Loading a kernel module (one no other test leaves loaded).
    let _ = std::process::Command::new("modprobe").args(["-r", "dummy"]).status();
    let modprobe = run_subject(&["modprobe", "dummy"]);
    assert!(!modprobe.status.success(), "a subject loaded a module");
    d.expect_record(mark, "self.module", "*", "denied");
    // The rest of the mount family: move_mount(2) and pivot_root.
    expect_syscall_refused(d, "move_mount", "", "429,-100,b'/opt',-100,b'/mnt/outside',0", "self.mount");
    let mark = d.audit_len();
    let pivot = run_subject(&["pivot_root", "/opt", "/opt/agents"]);
    assert!(pivot.stderr.contains("Operation not permitted"), "pivot_root: {}", pivot.stderr);
    d.expect_record(mark, "self.mount", "*", "denied");
    // init_module(2) with a buffer (finit_module is the modprobe case above).
    expect_syscall_refused(d, "init_module", "b=ctypes.create_string_buffer(128); ", "175,b,128,b''", "self.module");
    // finit_module(2) of a compressed module for the kernel to decompress
    // (MODULE_INIT_COMPRESSED_FILE): 7.x reads it under an id of its own.
    let open_module = "p=__import__('subprocess').check_output(['modinfo','-n','dummy']).strip(); f=os.open(p,0); ";
    expect_syscall_refused(d, "finit_module (compressed)", open_module, "313,f,b'',4", "self.module");
    // Renaming a pin, removing the pin directories.
    let mark = d.audit_len();
    let rename = run_subject(&["mv", pin, "/sys/fs/bpf/warrant/links/moved"]);
    assert!(!rename.status.success() && std::path::Path::new(pin).exists(), "a subject renamed a pin");
    d.expect_record(mark, "self.pins", "*", "denied");
    let mark = d.audit_len();
    let rmdir = run_subject(&["rmdir", "/sys/fs/bpf/warrant/maps"]);
    assert!(rmdir.stderr.contains("Operation not permitted"), "rmdir on bpffs: {}", rmdir.stderr);
    d.expect_record(mark, "self.pins", "*", "denied");
    // Nor a new name there: a directory or symlink at the name the daemon
    // pins a link at (or stages it under) would fail its next start.
    for (what, argv) in [
        ("mkdir", vec!["mkdir", "/sys/fs/bpf/warrant/links/netlink_send_new"]),
        ("symlink", vec!["ln", "-s", pin, "/sys/fs/bpf/warrant/links/planted"]),
        ("mkdir at bpffs's root", vec!["mkdir", "/sys/fs/bpf/planted"]),
    ] {
        let mark = d.audit_len();
        let made = run_subject(&argv);
        assert!(made.stderr.contains("Operation not permitted"), "{what} on bpffs: {}", made.stderr);
        d.expect_record(mark, "self.pins", "*", "denied");
    }
    for planted in
        ["/sys/fs/bpf/warrant/links/netlink_send_new", "/sys/fs/bpf/warrant/links/planted", "/sys/fs/bpf/planted"]
    {
        assert!(std::fs::symlink_metadata(planted).is_err(), "{planted} was made");
    }
    // ptrace attach on any process outside the profile, not just the daemon.
    let mut outsider = std::process::Command::new("sleep").arg("120").spawn().unwrap();
    let mark = d.audit_len();
    let ptrace = run_subject(&[
        "python3",
        "-c",
        &format!(
            "import ctypes,sys; libc=ctypes.CDLL(None,use_errno=True); r=libc.ptrace(16,{},0,0); sys.exit(ctypes.get_errno() if r<0 else 0)",
            outsider.id()
        ),
    ]);
    assert_eq!(
        ptrace.status.code(),
        Some(1),
        "ptrace of an unconfined process must fail with EPERM: {}",
        ptrace.stderr
    );
    d.expect_record(mark, "self.ptrace", "*", "denied");
    let _ = outsider.kill();
    let _ = outsider.wait();
    // kexec: kernel code from a file, like a module.
    expect_syscall_refused(
        d,
        "kexec_file_load",
        "fd=os.open('/bin/true',os.O_RDONLY); ",
        "320,fd,-1,1,b'',4",
        "self.module",
    );
    // Raw block devices go around every file check.
    let _ = std::fs::remove_file("/run/warrant-loop0");
    assert!(
        std::process::Command::new("mknod").args(["/run/warrant-loop0", "b", "7", "0"]).status().unwrap().success()
    );
    let mark = d.audit_len();
    let raw = run_subject(&["sh", "-c", "echo x > /run/warrant-loop0"]);
    assert!(
        raw.stderr.contains("Operation not permitted"),
        "a subject opened a block device for writing: {}",
        raw.stderr
    );
    d.expect_record(mark, "self.blockdev", "*", "denied");
    // Nor a SCSI generic device: its write() takes a SCSI WRITE from any
    // writable open. Read-only (read commands only, with CAP_SYS_RAWIO
    // refused), the open reaches the driver: the VM's CD drive is sg0, or
    // without one, ENXIO.
    let _ = std::process::Command::new("modprobe").arg("sg").status();
    let _ = std::fs::remove_file("/run/warrant-sg0");
    assert!(std::process::Command::new("mknod").args(["/run/warrant-sg0", "c", "21", "0"]).status().unwrap().success());
    let mark = d.audit_len();
    let raw = run_subject(&["python3", "-c", "open('/run/warrant-sg0', 'wb')"]);
    assert!(raw.stderr.contains("Operation not permitted"), "a subject opened sg for writing: {}", raw.stderr);
    d.expect_record(mark, "self.blockdev", "*", "denied");
    let read = run_subject(&["python3", "-c", "open('/run/warrant-sg0', 'rb')"]);
    let reached = read.status.success() || read.stderr.contains("No such device");
    assert!(reached, "a subject's read-only sg open: {}", read.stderr);
    // Swapping a file's blocks with another's (EXT4_IOC_MOVE_EXT,
    // XFS_IOC_SWAPEXT) passes no write check: refused before the file
    // system sees it (this tmpfs would answer ENOTTY).
    for (name, cmd) in [("EXT4_IOC_MOVE_EXT", "0xC028660F"), ("XFS_IOC_SWAPEXT", "0xC0C0586D")] {
        let mark = d.audit_len();
        let call = format!("import fcntl,os; fcntl.ioctl(os.open('/bin/true',os.O_RDONLY),{cmd},bytes(192))");
        let out = run_subject(&["python3", "-c", &call]);
        assert!(out.stderr.contains("Operation not permitted"), "{name} as a subject: {}", out.stderr);
        d.expect_record(mark, "self.blockdev", "*", "denied");
    }
    // Root that is not a subject is unaffected.
    assert!(std::process::Command::new("mount").args(["-t", "tmpfs", "none", "/mnt"]).status().unwrap().success());
    assert!(std::process::Command::new("umount").arg("/mnt").status().unwrap().success());
}

/// A ring's URING_CMD hands a command to a driver past its ioctl (NVMe
/// passthrough writes under every file check; ublk's control device makes
/// block devices): a subject's is refused unless it is for a socket.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_rings_command_to_a_driver_is_refused() {
    let d = daemon();
    let _ = std::process::Command::new("modprobe").arg("ublk_drv").status();
    let script = harness::helper("files.py");
    let root = std::process::Command::new("python3").args([&script, "uring-cmd", "ublk"]).output().unwrap();
    assert!(root.status.success(), "root's ublk GET_FEATURES: {}", String::from_utf8_lossy(&root.stderr));
    let mark = d.audit_len();
    let out = files_helper(&["uring-cmd", "ublk"]);
    assert_eq!(out.status.code(), Some(1), "a subject's ublk GET_FEATURES: {}", out.stderr);
    d.expect_record(mark, "self.blockdev", "*", "denied");
    let out = files_helper(&["uring-cmd", "socket"]);
    assert!(out.status.success(), "a subject's SIOCINQ on its socket: {}", out.stderr);
}

fn files_helper(args: &[&str]) -> harness::Ran {
    let script = harness::helper("files.py");
    let mut command = vec!["python3", script.as_str()];
    command.extend_from_slice(args);
    run_subject(&command)
}

pub(crate) fn sh_subject(script: &str) -> harness::Ran {
    run_subject(&["sh", "-c", script])
}

pub(crate) const PROTECTED_FILE: &str = "/etc/sysctl.d/90-agent.conf";

/// A subject's attempt failed with EPERM, changed nothing, and was recorded.
pub(crate) fn expect_refused(
    d: &harness::Daemon,
    what: &str,
    out: harness::Ran,
    action: &str,
    target: &str,
    verdict: &str,
    mark: usize,
) {
    assert!(!out.status.success(), "{what} went through");
    assert!(
        out.stderr.contains("Operation not permitted") || out.status.code() == Some(1),
        "{what}: expected EPERM, got {:?}: {}",
        out.status.code(),
        out.stderr
    );
    d.expect_record(mark, action, target, verdict);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn protected_config_files_hold_against_every_route() {
    let d = daemon();
    let original = std::fs::read_to_string(PROTECTED_FILE).unwrap();
    let needs = "denied-needs-warrant";
    let routes: &[(&str, &str, &str)] = &[
        ("shell append", "echo x >> /etc/sysctl.d/90-agent.conf", "file.write"),
        ("write via the bind mount's source", "echo x >> /mnt/sysctl.d/90-agent.conf", "file.write"),
        ("write via an existing hard link", "echo x >> /mnt/outside/existing-link", "file.write"),
        ("write via a symlink", "echo x >> /mnt/outside/symlink", "file.write"),
        ("write via /proc/self/root", "echo x >> /proc/self/root/etc/sysctl.d/90-agent.conf", "file.write"),
        ("reopen via /proc/self/fd", "exec 3</etc/sysctl.d/90-agent.conf; echo x >> /proc/self/fd/3", "file.write"),
        ("truncate", "truncate -s 0 /etc/sysctl.d/90-agent.conf", "file.write"),
        ("chmod", "chmod 666 /etc/sysctl.d/90-agent.conf", "file.chmod"),
        ("chown", "chown nobody /etc/sysctl.d/90-agent.conf", "file.chown"),
        ("new hard link", "ln /mnt/sysctl.d/90-agent.conf /mnt/outside/new-link", "file.link"),
        (
            "rename over (mv)",
            "echo evil > /mnt/outside/evil && mv /mnt/outside/evil /mnt/sysctl.d/90-agent.conf",
            "file.rename",
        ),
        ("rename away", "mv /mnt/sysctl.d/90-agent.conf /mnt/outside/stolen", "file.rename"),
        ("delete", "rm -f /etc/sysctl.d/90-agent.conf", "file.delete"),
    ];
    for (what, script, action) in routes {
        let mark = d.audit_len();
        expect_refused(d, what, sh_subject(script), action, PROTECTED_FILE, needs, mark);
    }
    // sed -i writes a temporary file beside the original first: a new file
    // in a protected tree, decided on its name.
    let mark = d.audit_len();
    let out = run_subject(&["sed", "-i", "s/0/1/", PROTECTED_FILE]);
    assert!(!out.status.success(), "sed -i went through");
    d.expect_record_where(mark, "sed -i's temporary file", |r| {
        r["action"] == "file.create"
            && r["verdict"] == needs
            && r["target"].as_str().is_some_and(|t| t.starts_with("/etc/sysctl.d/sed"))
    });
    // Each way to make a name in the tree: a file, a directory, a symlink,
    // a node (a fifo; a socket bind is the same hook).
    for (what, script, made) in [
        ("create", "touch /etc/sysctl.d/99-new.conf", "/etc/sysctl.d/99-new.conf"),
        ("mkdir", "mkdir /etc/sysctl.d/agent.d", "/etc/sysctl.d/agent.d (a directory)"),
        (
            "symlink",
            "ln -s /run/agent.conf /etc/sysctl.d/98-agent-link.conf",
            "/etc/sysctl.d/98-agent-link.conf (a symlink)",
        ),
        ("mknod", "mkfifo /etc/sysctl.d/agent.fifo", "/etc/sysctl.d/agent.fifo (a device node, fifo or socket)"),
    ] {
        let mark = d.audit_len();
        let out = sh_subject(script);
        assert!(out.stderr.contains("Operation not permitted"), "{what}: {}", out.stderr);
        expect_refused(d, what, out, "file.create", made, needs, mark);
    }
    // Extended attributes and POSIX ACLs, set and removed (ACLs reach their
    // own hooks from 6.2, the xattr hooks before).
    let acl = "struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, perm, 0xffffffff) for tag, perm in ((1, 6), (4, 4), (0x20, 4)))";
    for (what, call) in [
        ("setxattr", format!("os.setxattr('{PROTECTED_FILE}', 'user.agent', b'1')")),
        ("removexattr", format!("os.removexattr('{PROTECTED_FILE}', 'user.agent')")),
        ("set an ACL", format!("os.setxattr('{PROTECTED_FILE}', 'system.posix_acl_access', {acl})")),
        ("remove an ACL", format!("os.removexattr('{PROTECTED_FILE}', 'system.posix_acl_access')")),
    ] {
        let mark = d.audit_len();
        let attempt = run_subject(&["python3", "-c", &format!("import os, struct; {call}")]);
        assert!(attempt.stderr.contains("Operation not permitted"), "{what}: {}", attempt.stderr);
        expect_refused(d, what, attempt, "file.xattr", PROTECTED_FILE, needs, mark);
    }
    let mark = d.audit_len();
    expect_refused(
        d,
        "io_uring openat",
        files_helper(&["uring-open", PROTECTED_FILE]),
        "file.write",
        PROTECTED_FILE,
        needs,
        mark,
    );
    // A writable fd opened by root (not a subject) and passed over SCM_RIGHTS.
    // (In fmod_ret mode a stand-in program decides mmap on security_mmap_file,
    // whose arguments are not the hook's: nothing is named missing.)
    let status = d.cli_ok(&["status"]);
    assert!(!status.contains("mmap_file is not decided"), "{status}");
    for how in ["write", "mmap", "mprotect", "uring-write"] {
        // The socket the demo policy lets the agent reach (ipc.connect).
        let socket = std::path::PathBuf::from("/run/agent-supervisor.sock");
        let _ = std::fs::remove_file(&socket);
        let mut passer = std::process::Command::new("python3")
            .args([&harness::helper("files.py"), "pass-fd", socket.to_str().unwrap(), PROTECTED_FILE])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(passer.stdout.take().unwrap()), &mut ready).unwrap();
        let mark = d.audit_len();
        let used = files_helper(&["use-fd", socket.to_str().unwrap(), how]);
        let _ = passer.wait();
        expect_refused(d, &format!("{how} through a passed fd"), used, "file.write", PROTECTED_FILE, needs, mark);
    }
    assert_eq!(std::fs::read_to_string(PROTECTED_FILE).unwrap(), original, "a refused route changed the file");
    for made in [
        "/mnt/outside/new-link",
        "/etc/sysctl.d/99-new.conf",
        "/etc/sysctl.d/agent.d",
        "/etc/sysctl.d/98-agent-link.conf",
        "/etc/sysctl.d/agent.fifo",
    ] {
        assert!(std::fs::symlink_metadata(made).is_err(), "a refused route made {made}");
    }

    // Reading is not an action; root is not a subject; and a file root
    // creates in the tree is protected from its first moment.
    assert!(run_subject(&["cat", PROTECTED_FILE]).status.success());
    // Shared anonymous memory (no file: the hook's file is NULL) is no
    // file write; the kernel survives the subject's mapping and it works.
    let shared = run_subject(&[
        "python3",
        "-c",
        "import mmap, sys; m = mmap.mmap(-1, 4096); m[0] = 1; sys.exit(0 if m[0] == 1 else 3)",
    ]);
    assert!(shared.status.success(), "shared anonymous memory: {:?} {}", shared.status, shared.stderr);
    std::fs::write("/etc/sysctl.d/50-root.conf", "kernel.panic = 10\n").expect("root writes are unaffected");
    let mark = d.audit_len();
    expect_refused(
        d,
        "write to a file created after the policy",
        sh_subject("echo x >> /etc/sysctl.d/50-root.conf"),
        "file.write",
        "/etc/sysctl.d/50-root.conf",
        needs,
        mark,
    );

    // One warrant use: an open for writing and all its writes, O_TRUNC included.
    let refused_write = || sh_subject("echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-agent.conf");
    warrant_after_refusal(d, refused_write, "file.write", PROTECTED_FILE, "10m", 1);
    let mark = d.audit_len();
    let written = sh_subject("printf 'net.ipv4.ip_forward = 1\\n' > /etc/sysctl.d/90-agent.conf");
    assert!(written.status.success(), "warranted write failed: {}", written.stderr);
    assert_eq!(std::fs::read_to_string(PROTECTED_FILE).unwrap(), "net.ipv4.ip_forward = 1\n");
    let used = d.expect_record(mark, "file.write", PROTECTED_FILE, "allowed-by-warrant");
    assert_eq!(used["approver"], "alice");
    let mark = d.audit_len();
    expect_refused(
        d,
        "a second write on a one-use warrant",
        sh_subject("echo x >> /etc/sysctl.d/90-agent.conf"),
        "file.write",
        PROTECTED_FILE,
        needs,
        mark,
    );
    std::fs::write(PROTECTED_FILE, &original).unwrap();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_change_warrants_own_files() {
    let d = daemon();
    let config = d.config.display().to_string();
    let state = d.dir.join("state").display().to_string();
    let audit = d.audit.display().to_string();
    for (what, script) in [
        ("rewrite the config", format!("echo 'trusted_keys = []' >> {config}")),
        ("delete the persisted policy", format!("rm -f {state}/policy.bundle")),
        ("plant a file in the state directory", format!("touch {state}/planted")),
        ("truncate the audit log", format!("truncate -s 0 {audit}")),
        // A rotated file the daemon did not write breaks the chain it reads
        // at its next start: the log's directory is Warrant's whole.
        ("plant a rotated audit file", format!("printf 'x\\n' > {audit}.000000000000")),
        // Out of the tree to a place no tree covers, on the same file system.
        ("move the audit log away", format!("mv {audit} {}-audit.moved", d.dir.display())),
        ("move the persisted policy away", format!("mv {state}/policy.bundle {}-policy.moved", d.dir.display())),
        // The directory above the state directory: moving it moves Warrant's files away.
        ("move the daemon's directory", format!("mv {} {}-moved", d.dir.display(), d.dir.display())),
    ] {
        let mark = d.audit_len();
        let out = sh_subject(&script);
        assert!(!out.status.success(), "{what} went through");
        // The harness keeps the query socket's directory (a guarded tree)
        // in the daemon's directory too: moving it may be refused as that.
        d.expect_record_where(mark, &format!("{what} refused"), |r| {
            r["kind"] == "decision"
                && r["verdict"] == "denied"
                && (r["action"] == "self.files" || (what.starts_with("move") && r["action"] == "file.rename"))
        });
    }
    assert!(std::path::Path::new(&format!("{state}/policy.bundle")).exists());
    assert!(!std::path::Path::new(&format!("{state}/planted")).exists());
    // Renaming inside that directory is not a change to Warrant's files.
    let scratch = d.write_file("scratch.txt", "x");
    let moved = sh_subject(&format!("mv {} {}.moved", scratch.display(), scratch.display()));
    assert!(moved.status.success(), "an unrelated rename beside the state directory was refused: {}", moved.stderr);
    assert!(d.run_cli(&["audit", "verify"]).contains("verifies"), "the audit log must still verify");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn sysctls_under_a_protected_proc_tree_need_a_warrant() {
    let d = daemon();
    let path = "/proc/sys/net/ipv4/ip_forward";
    let before = std::fs::read_to_string(path).unwrap();
    let wanted = if before.trim() == "1" { "0" } else { "1" };
    let mark = d.audit_len();
    let out = run_subject(&["sysctl", "-w", &format!("net.ipv4.ip_forward={wanted}")]);
    expect_refused(d, "sysctl -w", out, "file.write", path, "denied-needs-warrant", mark);
    let request = d.expect_record(mark, "file.write", path, "denied-needs-warrant");
    let mark = d.audit_len();
    let out = sh_subject(&format!("echo {wanted} > /proc/self/root{path}"));
    expect_refused(d, "a write via /proc/self/root", out, "file.write", path, "denied-needs-warrant", mark);
    assert_eq!(std::fs::read_to_string(path).unwrap(), before);
    // Outside the protected tree, sysctls are not Warrant's business.
    let other = run_subject(&["sysctl", "-w", "kernel.domainname=warrant-test"]);
    assert!(other.status.success(), "an unprotected sysctl was refused: {}", other.stderr);

    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", "10m", 1);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let mark = d.audit_len();
    let out = run_subject(&["sysctl", "-w", &format!("net.ipv4.ip_forward={wanted}")]);
    assert!(out.status.success(), "warranted sysctl failed: {}", out.stderr);
    assert_eq!(std::fs::read_to_string(path).unwrap().trim(), wanted);
    d.expect_record(mark, "file.write", path, "allowed-by-warrant");
    std::fs::write(path, before).unwrap();
}
