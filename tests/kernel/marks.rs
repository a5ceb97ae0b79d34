//! Kernel tier: what a subject writes stays the subject's. A program it
//! plants runs as the subject whoever starts it, a library it writes is
//! never mapped executable by anyone else, a namespace name it pins does
//! not resolve in a later policy, and root clears a mark once it has read
//! the file.

use std::process::Command;

use crate::harness::{self, daemon, nft_root, run_subject};

/// A process takes pid argv[1] (ns_last_pid) and execs argv[2]. Exit 3:
/// the pid could not be had; otherwise the program's exit code.
const TAKE_PID_AND_EXEC: &str = r#"
import os, sys
pid = int(sys.argv[1])
for _ in range(20):
    with open('/proc/sys/kernel/ns_last_pid', 'w') as f:
        f.write(str(pid - 1))
    child = os.fork()
    if child == 0:
        if os.getpid() != pid:
            os._exit(3)
        os.execv(sys.argv[2], [sys.argv[2]])
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if code != 3:
        sys.exit(code)
sys.exit(3)
"#;

/// Legitimate agent work keeps working: a subject installs a package with
/// dpkg (into /mnt/inst: the VM's /usr is the host's, read-only), and what
/// it installed runs confined, whoever starts it; its library is mapped
/// executable by no one else.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_package_a_subject_installs_runs_as_the_subject_whoever_starts_it() {
    let d = daemon();
    let root = harness::as_root;
    // Built by someone else (root here), as a downloaded package would be.
    root(&format!(
        "rm -rf /mnt/pkg /mnt/inst; mkdir -p /mnt/pkg/hello/DEBIAN /mnt/pkg/hello/usr/local/bin /mnt/pkg/hello/usr/local/lib
        printf 'Package: warrant-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.com>\nDescription: test\n' \
            > /mnt/pkg/hello/DEBIAN/control
        printf '#!/bin/sh\nexec nft add table inet installed_by_agent\n' > /mnt/pkg/hello/usr/local/bin/warrant-hello
        chmod 755 /mnt/pkg/hello/usr/local/bin/warrant-hello
        cp {} /mnt/pkg/hello/usr/local/lib/libhello.so
        dpkg-deb --root-owner-group --build /mnt/pkg/hello /mnt/pkg/hello.deb >/dev/null
        mkdir -p /mnt/inst/var/lib/dpkg/info /mnt/inst/var/lib/dpkg/updates /mnt/inst/var/lib/dpkg/triggers
        touch /mnt/inst/var/lib/dpkg/status",
        some_library()
    ));
    let install = "dpkg --instdir=/mnt/inst --admindir=/mnt/inst/var/lib/dpkg --log=/mnt/inst/dpkg.log \
                   --force-script-chrootless --force-not-root -i /mnt/pkg/hello.deb";
    let out = run_subject(&["sh", "-c", install]);
    assert!(out.status.success(), "the subject's dpkg -i failed: {}", out.stderr);
    let installed = "/mnt/inst/usr/local/bin/warrant-hello";
    // Root runs it later: as the agent, and its change is refused.
    let mark = d.audit_len();
    let ran = Command::new(installed).output().unwrap();
    assert!(!ran.status.success(), "root's run of what the agent installed changed the firewall");
    d.expect_record_where(mark, "subject.matched by a written file", |r| {
        r["kind"] == "subject.matched" && r["by"] == "written" && r["profile"] == "agent"
    });
    d.expect_record(mark, "nft.table.update", "inet installed_by_agent", "denied");
    let mapped = Command::new("python3")
        .args(["-c", "import mmap,os,sys; f=os.open(sys.argv[1],os.O_RDONLY); mmap.mmap(f,4096,prot=mmap.PROT_READ|mmap.PROT_EXEC)"])
        .arg("/mnt/inst/usr/local/lib/libhello.so")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&mapped.stderr).contains("Operation not permitted"), "root mapped it executable");
    // The agent removes what it installed.
    let out = run_subject(&["sh", "-c", &install.replace("-i /mnt/pkg/hello.deb", "-r warrant-hello")]);
    assert!(out.status.success(), "the subject's dpkg -r failed: {}", out.stderr);
    assert!(!std::path::Path::new(installed).exists());
    root("rm -rf /mnt/pkg /mnt/inst");
}

/// A shared library of the VM's to copy (any will do: its content is not run).
fn some_library() -> &'static str {
    ["/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib64/libm.so.6"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("libm is installed")
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn what_a_subject_writes_runs_as_the_subject_whoever_starts_it() {
    let d = daemon();
    let planted = "/usr/local/sbin/warrant-planted";
    let _ = std::fs::remove_file(planted);
    std::fs::create_dir_all("/usr/local/sbin").unwrap();
    // The agent plants a script on root's PATH (nothing guards /usr/local).
    let out = run_subject(&[
        "sh",
        "-c",
        &format!("printf '#!/bin/sh\\nexec nft add table inet planted_by_agent\\n' > {planted} && chmod 755 {planted}"),
    ]);
    assert!(out.status.success(), "the subject could not write {planted}: {}", out.stderr);

    // Root runs it later: it runs as the agent, and its change is refused.
    let mark = d.audit_len();
    let ran = Command::new(planted).output().unwrap();
    assert!(!ran.status.success(), "root's run of a planted script changed the firewall");
    assert!(String::from_utf8_lossy(&ran.stderr).contains("Operation not permitted"));
    d.expect_record_where(mark, "subject.matched by a written file", |r| {
        r["kind"] == "subject.matched" && r["by"] == "written" && r["profile"] == "agent"
    });
    d.expect_record(mark, "nft.table.update", "inet planted_by_agent", "denied");
    assert!(!nft_root(&["list", "tables"]).contains("planted_by_agent"));

    // A library the agent wrote is never mapped executable outside a
    // subject: not as a preload, not by a plain mmap.
    let library = "/tmp/warrant-planted.so";
    let out = run_subject(&["cp", some_library(), library]);
    assert!(out.status.success(), "{}", out.stderr);
    let mark = d.audit_len();
    let preload = Command::new("/bin/true").env("LD_PRELOAD", library).output().unwrap();
    let said = String::from_utf8_lossy(&preload.stderr);
    assert!(said.contains("cannot be preloaded"), "the planted preload was loaded: {said}");
    let refused = d.expect_record_where(mark, "self.marked_exec denied", |r| {
        r["action"] == "self.marked_exec" && r["verdict"] == "denied" && r["profile"] == "agent"
    });
    assert!(refused["target"].as_str().is_some_and(|t| t.starts_with("inode ")), "{refused}");
    let mapped = Command::new("python3")
        .args(["-c", "import mmap,os,sys; f=os.open(sys.argv[1],os.O_RDONLY); mmap.mmap(f,4096,prot=mmap.PROT_READ|mmap.PROT_EXEC)"])
        .arg(library)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&mapped.stderr).contains("Operation not permitted"), "root mapped it executable");
    // ... while a subject may (it is confined anyway), and root may read it.
    assert!(run_subject(&["env", &format!("LD_PRELOAD={library}"), "true"]).status.success());
    assert_eq!(std::fs::read(library).unwrap(), std::fs::read(some_library()).unwrap());

    // Status counts them (as of the daemon's last 2-second tick); a
    // subject cannot clear a mark.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
        if status["marks"]["files"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", status["marks"]);
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let listed: serde_json::Value = serde_json::from_str(&d.cli_ok(&["marks", "--json"])).unwrap();
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(planted).unwrap());
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["inode"] == inode && m["profile"] == "agent" && m["mount"] == "/usr"),
        "{listed}"
    );
    let bin = harness::warrant_bin();
    let config = d.config.to_str().unwrap();
    let out = run_subject(&[bin.to_str().unwrap(), "--config", config, "unmark", planted]);
    assert!(!out.status.success(), "a subject cleared a mark");

    // Another profile's subject may not run it (one agent does not plant
    // code for another), and the agent may not unmark it by rewriting the
    // inode's generation.
    let mark = d.audit_len();
    let other = harness::run_subject_as("observer", &[planted]);
    assert!(other.stderr.contains("Operation not permitted"), "observer ran the agent's script: {}", other.stderr);
    d.expect_record_where(mark, "self.marked_exec denied for observer", |r| {
        r["action"] == "self.marked_exec" && r["verdict"] == "denied" && r["profile"] == "observer"
    });
    let set_version =
        "import fcntl,os,struct,sys; fcntl.ioctl(os.open(sys.argv[1],os.O_RDONLY),0x40087602,struct.pack('l',7))";
    let out = run_subject(&["python3", "-c", set_version, planted]);
    assert!(out.stderr.contains("Operation not permitted"), "FS_IOC_SETVERSION as a subject: {}", out.stderr);

    // Raw I/O would go under every file check and mark: refused, root's works.
    let mark = d.audit_len();
    let out = run_subject(&["python3", "-c", "open('/dev/mem','rb')"]);
    assert!(out.stderr.contains("Operation not permitted"), "a subject opened /dev/mem: {}", out.stderr);
    d.expect_record(mark, "self.blockdev", "*", "denied");
    assert!(std::fs::File::open("/dev/mem").is_ok(), "root could not open /dev/mem");

    // Root reads the script, then clears its mark: it runs as root's again.
    let mark = d.audit_len();
    d.cli_ok(&["unmark", planted]);
    d.expect_record_where(mark, "marks.cleared", |r| r["kind"] == "marks.cleared" && r["path"] == planted);
    let ran = Command::new(planted).output().unwrap();
    assert!(ran.status.success(), "unmarked, root's run failed: {}", String::from_utf8_lossy(&ran.stderr));
    nft_root(&["delete", "table", "inet", "planted_by_agent"]);
    let (ok, said) = d.run_cli_status(&["unmark", planted]);
    assert!(!ok && said.contains("is not marked"), "{said}");

    // A mark goes with the file's last name, once the file system has
    // dropped it: root's unlink, and root's rename over the file (an
    // editor's save of what the agent wrote).
    let saved_over = "/tmp/warrant-planted.conf";
    let out = run_subject(&["sh", "-c", &format!("echo by-the-agent > {saved_over}")]);
    assert!(out.status.success(), "{}", out.stderr);
    let (library_mark, saved_over_mark) = (listed_mark(d, library), listed_mark(d, saved_over));
    std::fs::remove_file(library).unwrap();
    std::fs::write("/tmp/warrant-planted.new", "by root\n").unwrap();
    std::fs::rename("/tmp/warrant-planted.new", saved_over).unwrap();
    let listed = d.cli_ok(&["marks", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert!(!listed.contains(&library_mark), "root's unlink left the mark {library_mark}");
    assert!(!listed.contains(&saved_over_mark), "root's rename over the file left the mark {saved_over_mark}");
    std::fs::copy(some_library(), library).unwrap();
    let root_preload = Command::new("/bin/true").env("LD_PRELOAD", library).output().unwrap();
    assert!(!String::from_utf8_lossy(&root_preload.stderr).contains("cannot be preloaded"));
    std::fs::remove_file(library).unwrap();
    std::fs::remove_file(saved_over).unwrap();
    std::fs::remove_file(planted).unwrap();
}

/// The mark `warrant marks` lists for the file at `path` (one must be).
pub(crate) fn listed_mark(d: &harness::Daemon, path: &str) -> serde_json::Value {
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
    let listed: Vec<serde_json::Value> = serde_json::from_str(&d.cli_ok(&["marks", "--json"])).unwrap();
    let found = listed.into_iter().find(|m| m["inode"] == inode && m["profile"] == "agent");
    found.unwrap_or_else(|| panic!("{path} is not marked"))
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_namespace_name_a_subject_pinned_does_not_resolve_in_a_later_policy() {
    let d = daemon();
    let red = harness::netns_inode("red");
    let mut in_red = Command::new("ip").args(["netns", "exec", "red", "sleep", "120"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = in_red.id().to_string();
    // The agent pins red, which it may not enter, under a fresh name.
    let out = run_subject(&["ip", "netns", "attach", "sneaky", &pid]);
    assert!(out.status.success(), "ip netns attach as a subject: {}", out.stderr);
    assert_eq!(harness::netns_inode("sneaky"), red);
    // Root pins it too, under another name.
    assert!(Command::new("ip").args(["netns", "attach", "byroot", &pid]).status().unwrap().success());

    // The agent writes a file a later policy protects.
    let written = "/run/warrant-agent-made.conf";
    let out = run_subject(&["sh", "-c", &format!("echo 'from the agent' > {written}")]);
    assert!(out.status.success(), "{}", out.stderr);

    // A later policy lets the agent into both names.
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let rules = "\n[[profile.rule]]\naction = \"netns.enter\"\ntarget = \"sneaky\"\ntier = \"allow\"\n";
    let extended = text.replacen("[[profile.rule]]", &format!("{}[[profile.rule]]", rules.trim_start()), 1);
    let extended = extended.replacen("protect = [", &format!("protect = [\"{written}\", "), 1);
    assert_ne!(extended, text);
    let mark = d.audit_len();
    d.apply_next_policy(&extended);
    let applied = d.expect_record_where(mark, "policy.applied", |r| r["kind"] == "policy.applied");
    let unresolved = applied["unresolved"].to_string();
    assert!(unresolved.contains("sneaky") && unresolved.contains("made by a subject"), "{applied}");
    // The file stays protected, and the record says whose content it holds.
    let said = applied["protected_written"].to_string();
    assert!(said.contains(written) && said.contains("profile agent"), "{applied}");
    let out = run_subject(&["sh", "-c", &format!("echo again > {written}")]);
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    let mark = d.audit_len();
    let entered = run_subject(&["nsenter", "--net=/run/netns/sneaky", "true"]);
    assert!(entered.stderr.contains("Operation not permitted"), "the subject's name let it in: {}", entered.stderr);
    d.expect_record(mark, "netns.enter", &format!("net:[{red}]"), "denied-needs-warrant");

    // Nor does a name that is a symlink to the namespace (ip netns makes none).
    let out = run_subject(&["ln", "-s", &format!("/proc/{pid}/ns/net"), "/run/netns/linked"]);
    assert!(out.status.success(), "{}", out.stderr);
    let linked = extended.replacen("target = \"sneaky\"", "target = \"linked\"", 1);
    let mark = d.audit_len();
    d.apply_next_policy(&linked);
    let applied = d.expect_record_where(mark, "policy.applied", |r| r["kind"] == "policy.applied");
    assert!(applied["unresolved"].to_string().contains("linked"), "{applied}");
    std::fs::remove_file("/run/netns/linked").unwrap();

    // The same rule for root's name resolves.
    let by_root = extended.replacen("target = \"sneaky\"", "target = \"byroot\"", 1);
    d.apply_next_policy(&by_root);
    let mark = d.audit_len();
    let entered = run_subject(&["nsenter", "--net=/run/netns/byroot", "true"]);
    assert!(entered.status.success(), "root's name did not resolve: {}", entered.stderr);
    d.expect_record(mark, "netns.enter", &format!("net:[{red}]"), "allowed");

    d.apply_next_policy(&text);
    std::fs::remove_file(written).unwrap();
    for name in ["sneaky", "byroot"] {
        harness::ip_root(&["netns", "delete", name]);
    }
    let _ = in_red.kill();
    let _ = in_red.wait();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn the_kernel_loads_no_module_a_subject_wrote_and_subjects_unload_none() {
    let d = daemon();
    // The dummy module, uncompressed (finit_module reads the file itself).
    let unpack = "import lzma,subprocess,sys; p=subprocess.check_output(['modinfo','-n','dummy']).strip().decode(); \
                  b=open(p,'rb').read(); open(sys.argv[1],'wb').write(lzma.decompress(b) if p.endswith('.xz') else b)";
    let finit = "import ctypes,os,sys; libc=ctypes.CDLL(None,use_errno=True); f=os.open(sys.argv[1],os.O_RDONLY); \
                 r=libc.syscall(313,f,b'',0); sys.exit(ctypes.get_errno() if r<0 else 0)";
    let loaded = || std::path::Path::new("/sys/module/dummy").exists();
    let _ = Command::new("modprobe").args(["-r", "dummy"]).status();
    let was_loaded = loaded();
    let planted = "/tmp/warrant-planted.ko";
    let own = "/tmp/warrant-own.ko";
    let out = run_subject(&["python3", "-c", unpack, planted]);
    assert!(out.status.success(), "the subject could not write {planted}: {}", out.stderr);

    // Root loads it (as insmod, or modprobe for an autoload, would): refused,
    // recorded under the profile that wrote it.
    let mark = d.audit_len();
    let load = Command::new("python3").args(["-c", finit, planted]).output().unwrap();
    assert_eq!(load.status.code(), Some(1), "root loaded a module the agent wrote: {load:?}");
    d.expect_record_where(mark, "self.marked_exec denied for the module", |r| {
        r["action"] == "self.marked_exec" && r["verdict"] == "denied" && r["profile"] == "agent"
    });
    assert_eq!(loaded(), was_loaded);

    // Root's own copy loads (EEXIST if another test left it loaded).
    assert!(Command::new("python3").args(["-c", unpack, own]).status().unwrap().success());
    let load = Command::new("python3").args(["-c", finit, own]).output().unwrap();
    assert!(matches!(load.status.code(), Some(0 | 17)), "root's own module: {load:?}");
    assert!(loaded());

    // The real modprobe, from a module tree the agent laid out (as it would
    // under /usr/lib/modules): with the module as the kernel ships it
    // (compressed on 6.12 and 7.2, where kmod 30 decompresses it itself and
    // loads the buffer; uncompressed on 6.1, read by finit_module).
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let root = "/tmp/warrant-modroot";
    let _ = std::fs::remove_dir_all(root);
    let module = String::from_utf8(Command::new("modinfo").args(["-n", "tcp_vegas"]).output().unwrap().stdout).unwrap();
    let (module, release) = (module.trim(), release.trim());
    let file = std::path::Path::new(module).file_name().unwrap().to_str().unwrap();
    let lay_out = format!(
        "mkdir -p {root}/lib/modules/{release}/kernel && cp {module} {root}/lib/modules/{release}/kernel/{file} && depmod -b {root} {release}"
    );
    let out = run_subject(&["sh", "-c", &lay_out]);
    assert!(out.status.success(), "the subject could not lay out {root}: {}", out.stderr);
    let _ = Command::new("modprobe").args(["-r", "tcp_vegas"]).status();
    let mark = d.audit_len();
    let load = Command::new("modprobe").args(["-d", root, "tcp_vegas"]).output().unwrap();
    assert!(
        !load.status.success() && !std::path::Path::new("/sys/module/tcp_vegas").exists(),
        "root's modprobe loaded the agent's {file}: {load:?}"
    );
    d.expect_record_where(mark, "self.marked_exec denied for modprobe", |r| {
        r["action"] == "self.marked_exec" && r["verdict"] == "denied" && r["profile"] == "agent"
    });
    // ... while root's own tree loads it.
    let load = Command::new("modprobe").arg("tcp_vegas").output().unwrap();
    assert!(load.status.success(), "root's modprobe of its own module: {load:?}");
    assert!(Command::new("modprobe").args(["-r", "tcp_vegas"]).status().unwrap().success());
    std::fs::remove_dir_all(root).unwrap();

    // A subject may not unload it: delete_module has no hook of its own,
    // and an unload frees the module's generic netlink family ids.
    let mark = d.audit_len();
    let out = run_subject(&["rmmod", "dummy"]);
    assert!(!out.status.success() && loaded(), "a subject unloaded a module: {}", out.stderr);
    d.expect_record(mark, "self.module", "*", "denied");
    if !was_loaded {
        assert!(Command::new("rmmod").arg("dummy").status().unwrap().success(), "root's rmmod");
    }
    std::fs::remove_file(planted).unwrap();
    std::fs::remove_file(own).unwrap();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_stopped_daemons_pid_exempts_no_one() {
    let d = daemon();
    let planted = "/usr/local/sbin/warrant-planted-pid";
    let _ = std::fs::remove_file(planted);
    std::fs::create_dir_all("/usr/local/sbin").unwrap();
    let script =
        format!("printf '#!/bin/sh\\nexec nft add table inet planted_by_pid\\n' > {planted} && chmod 755 {planted}");
    let out = run_subject(&["sh", "-c", &script]);
    assert!(out.status.success(), "the subject could not write {planted}: {}", out.stderr);
    // Killed outright (it clears nothing), the daemon's pid is free while
    // the pinned programs go on; root's process that takes it runs the
    // planted script as the agent, as any other would.
    let pid = d.pid();
    let mark = d.audit_len();
    d.kill();
    let ran = Command::new("python3").args(["-c", TAKE_PID_AND_EXEC, &pid.to_string(), planted]).output().unwrap();
    d.restart();
    assert_ne!(ran.status.code(), Some(3), "pid {pid} could not be had: {ran:?}");
    assert!(!ran.status.success(), "the process with the stopped daemon's pid ran the planted script unconfined");
    assert!(!nft_root(&["list", "tables"]).contains("planted_by_pid"));
    d.expect_record(mark, "nft.table.update", "inet planted_by_pid", "denied");
    // A mark goes with the file's last name.
    std::fs::remove_file(planted).unwrap();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn the_daemon_runs_no_program_planted_on_its_path() {
    let d = daemon();
    let planted = "/usr/local/sbin/nft";
    let ran = "/run/warrant-planted-nft.log";
    let _ = std::fs::remove_file(ran);
    std::fs::create_dir_all("/usr/local/sbin").unwrap();
    let script = format!("#!/bin/sh\necho \"$PPID\" >> {ran}\nexec /usr/sbin/nft \"$@\"\n");
    let write = format!("printf '%s' \"$1\" > {planted} && chmod 755 {planted}");
    let out = run_subject(&["sh", "-c", &write, "sh", &script]);
    assert!(out.status.success(), "{}", out.stderr);
    // On the daemon's PATH (systemd's), a lookup by name finds the plant.
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    assert!(environ.split(|b| *b == 0).any(|v| v == format!("PATH={}", harness::SERVICE_PATH).as_bytes()));
    let found = Command::new("sh").args(["-c", "command -v nft"]).env("PATH", harness::SERVICE_PATH).output().unwrap();
    let found = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    // Installing an nft warrant makes the daemon snapshot the ruleset with nft.
    let rule = ["/usr/sbin/nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "4712", "accept"];
    let mark = d.audit_len();
    let warrant = crate::warranted_input_rule(d, &rule, "10m", 1);
    d.cli_ok(&["revoke", &crate::warrant_id(&warrant)]);
    // The snapshot was taken (by the real nft).
    d.expect_record_where(mark, "warrant.installed with the ruleset's snapshot", |r| {
        r["kind"] == "warrant.installed" && r["rollback"] == "the nftables ruleset"
    });
    std::fs::remove_file(planted).unwrap();
    assert_eq!(found, planted, "the plant is not first on the daemon's PATH; the test proves nothing");
    assert!(!std::path::Path::new(ran).exists(), "the daemon ran the nft a subject planted on its PATH");
}
