//! Kernel tier: a full PROTECTED (65,536 entries: big trees, or files an
//! agent allowed to make them in one tree, or a deputy it drives, keeps
//! making). The kernel counts each insert that did not fit and decides a
//! file with no entry by its names until a walk settles the count; a start
//! and a policy apply go on over a full map.

use crate::harness::{self, Daemon, daemon, run_subject};

/// A full PROTECTED (65,536 entries: big trees, or files a driven deputy
/// keeps making) refuses only new inodes. A start whose own files have new
/// ones (here the config, rewritten by rename while the daemon was down and
/// the map full, its old inode kept by a hard link) goes on rather than exit and leave the programs with no
/// one to read their records; once there is room an apply protects them.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_start_over_a_full_protected_map_goes_on() {
    let d = daemon();
    let (_, next) = d.next_bundle(&std::fs::read_to_string("policies/demo.toml").unwrap());
    /// Puts a daemon and a policy back after the map is emptied, on a
    /// failure too: later tests need both.
    struct Restore<'a>(&'a Daemon, std::path::PathBuf);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if !self.0.run_cli_status(&["status"]).0 {
                // The start that failed said so in the log the next one is
                // checked against.
                let log = self.0.dir.join("daemon.log");
                let _ = std::fs::rename(&log, log.with_extension("failed"));
                self.0.restart();
            }
            let (ok, said) = self.0.run_cli_status(&["policy", "apply", self.1.to_str().unwrap()]);
            assert!(ok || std::thread::panicking(), "the policy was not put back: {said}");
        }
    }
    d.kill();
    let restore = Restore(d, next);
    let full = FullProtected::fill();
    let config = std::fs::read_to_string(&d.config).unwrap();
    // The old config keeps a name, so its inode (and its entry) stays.
    let old = d.config.with_extension("old");
    let _ = std::fs::remove_file(&old);
    std::fs::hard_link(&d.config, &old).unwrap();
    let renamed = d.config.with_extension("new");
    std::fs::write(&renamed, &config).unwrap();
    std::fs::rename(&renamed, &d.config).unwrap();
    d.restart();
    assert!(d.run_cli_status(&["status"]).0, "the daemon did not come up over a full PROTECTED");
    let log = std::fs::read_to_string(d.dir.join("daemon.log")).unwrap();
    assert!(log.contains("cannot protect every one of Warrant's own files"), "the map was not full at the start");
    // Its new inode has no entry, but is decided by its name meanwhile.
    let out = run_subject(&["sh", "-c", &format!("echo x >> {}", d.config.display())]);
    assert!(!out.status.success(), "a subject wrote the config while the start could not protect it");
    drop(full);
    drop(restore);
    std::fs::remove_file(&old).unwrap();
    let out = run_subject(&["sh", "-c", &format!("echo x >> {}", d.config.display())]);
    assert!(!out.status.success(), "a subject wrote the config the start could not protect");
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), config);
}

/// A full PROTECTED leaves no new file of a tree unprotected. The hook
/// that would add it cannot refuse; the miss is counted, and until a walk
/// of the trees settles it, a file with no entry is decided by its names:
/// root's new file in /etc/sysctl.d, and one in a directory root made
/// there meanwhile. Without the count, an agent allowed to make files in
/// one tree could fill the map and then write what root makes in others.
/// Nor does the full map hold a policy back: an apply that takes a rule
/// from the agent goes in, and what it had no room for stays decided by
/// its names.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_full_protected_map_leaves_no_new_file_of_a_tree_unprotected() {
    let d = daemon();
    let demo = std::fs::read_to_string("policies/demo.toml").unwrap();
    let (file, dir) = ("/etc/sysctl.d/93-full.conf", "/etc/sysctl.d/93-full.d");
    let deep = format!("{dir}/93-deep.conf");
    let clean = || {
        let _ = std::fs::remove_file(file);
        let _ = std::fs::remove_dir_all(dir);
    };
    clean();
    let mut full = FullProtected::fill();
    let mark = d.audit_len();
    std::fs::write(file, "# root's, made while PROTECTED was full\n").unwrap();
    std::fs::create_dir(dir).unwrap();
    std::fs::write(&deep, "# root's, in a directory made while PROTECTED was full\n").unwrap();
    let expect_refused = |path: &str| {
        let mark = d.audit_len();
        let out = crate::files::sh_subject(&format!("echo net.ipv4.ip_forward=1 >> {path}"));
        assert!(!out.status.success(), "a subject wrote {path}, made while PROTECTED was full");
        d.expect_record_where(mark, &format!("file.write of {path}"), |r| {
            r["action"] == "file.write"
                && r["verdict"] == "denied-needs-warrant"
                && r["target"].as_str().is_some_and(|t| t.starts_with("/etc/sysctl.d"))
        });
    };
    // The daemon says so, once for what its tick found, and in its status.
    d.expect_record_where(mark, "protected.full", |r| r["kind"] == "protected.full" && r["missed"].as_u64() >= Some(1));
    let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["protected_full"], true, "{status}");
    expect_refused(file);
    expect_refused(&deep);
    // Nor may it change them another way, each refused as the tree's:
    // through the fixture's own mount of the tree, which holds an
    // unprotected directory too, so that links and moves stay on one.
    let moved = "/mnt/sysctl.d/93-full.d/93-moved.conf";
    for (what, script, action) in [
        ("linked out of the tree", "ln /mnt/sysctl.d/93-full.conf /mnt/outside/93-linked".to_owned(), "file.link"),
        (
            "moved into the new directory",
            format!("echo net.ipv4.ip_forward=1 > /mnt/outside/93-moved && mv /mnt/outside/93-moved {moved}"),
            "file.rename",
        ),
        ("removed", format!("rm {deep}"), "file.delete"),
        ("joined by a symlink", format!("ln -s /etc/passwd {dir}/93-symlink.conf"), "file.create"),
        ("joined by a new file", format!("touch {dir}/93-new.conf"), "file.create"),
        ("made mode 0666", format!("chmod 666 {file}"), "file.chmod"),
    ] {
        let mark = d.audit_len();
        let out = crate::files::sh_subject(&script);
        assert!(!out.status.success(), "a subject's file of the tree made while PROTECTED was full was {what}");
        d.expect_record_where(mark, &format!("{action} of a file made while PROTECTED was full"), |r| {
            r["action"] == action && r["verdict"] == "denied-needs-warrant"
        });
    }
    for left in [
        "/mnt/outside/93-linked",
        moved,
        "/etc/sysctl.d/93-full.d/93-symlink.conf",
        "/etc/sysctl.d/93-full.d/93-new.conf",
    ] {
        assert!(!std::path::Path::new(left).exists(), "{left} was made");
    }
    assert!(std::path::Path::new(&deep).exists(), "{deep} was removed");
    let _ = std::fs::remove_file("/mnt/outside/93-moved");
    // Outside the trees a subject's writes go on.
    let control = "/tmp/93-full-control";
    let out = crate::files::sh_subject(&format!("echo x > {control}"));
    assert!(out.status.success(), "a subject's write outside the trees was refused: {}", out.stderr);
    let _ = std::fs::remove_file(control);
    // A new tree's files must fit (a link of one outside it would be beyond
    // the names): that apply fails whole, saying so.
    let version = d.policy_version();
    let widening = demo.replacen("protect = [", "protect = [\"/etc/93-new-tree\", ", 1);
    let (_, widened) = d.next_bundle(&widening);
    let (ok, said) = full.kept_full(|| d.run_cli_status(&["policy", "apply", widened.to_str().unwrap()]));
    assert!(!ok && said.contains("needs room for a new guarded name"), "a new tree over a full PROTECTED: {said}");
    assert_eq!(d.policy_version(), version, "{said}");
    // Nor may a file system mounted in a tree since its walk be left to the
    // names (the kernel's walk stops at a mount's root): its root needs room.
    // A bind mount of a new directory: a new tmpfs's root could have the
    // key (a reused device number, the root's inode) of an earlier mount's
    // entry, which an apply would update in place.
    harness::as_root(&format!("mkdir -p /tmp/93-bound && mount --bind /tmp/93-bound {dir}"));
    let (_, same) = d.next_bundle(&demo);
    let (ok, said) = full.kept_full(|| d.run_cli_status(&["policy", "apply", same.to_str().unwrap()]));
    harness::as_root(&format!("umount {dir} && rmdir /tmp/93-bound"));
    assert!(!ok && said.contains("or a mount point in a tree"), "a mount in a tree over a full PROTECTED: {said}");
    assert_eq!(d.policy_version(), version, "{said}");
    // The security team takes the blocklist from the agent while the map
    // is full (the agent's files in a tree keep it so): the apply goes in,
    // says what found no room, and those files stay refused by their names.
    // The agent's profile comes first.
    let revoking = demo.replacen(
        "action = \"nft.element.*\"\ntarget = \"inet filter blocklist\"\ntier = \"allow\"",
        "action = \"nft.element.*\"\ntarget = \"inet filter blocklist\"\ntier = \"deny\"",
        1,
    );
    assert_ne!(revoking, demo, "the demo policy no longer allows the blocklist");
    let (_, revoked) = d.next_bundle(&revoking);
    /// Puts the demo policy back if the test fails before it does.
    struct DemoBack<'a>(&'a Daemon, &'a str);
    impl Drop for DemoBack<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let (_, demo) = self.0.next_bundle(self.1);
                let _ = self.0.run_cli_status(&["policy", "apply", demo.to_str().unwrap()]);
            }
        }
    }
    let demo_back = DemoBack(d, &demo);
    let mark = d.audit_len();
    let (ok, said) = full.kept_full(|| d.run_cli_status(&["policy", "apply", revoked.to_str().unwrap()]));
    assert!(ok, "a policy apply over a full PROTECTED failed: {said}");
    assert!(said.contains("found no room"), "the apply did not say what found no room: {said}");
    d.expect_record_where(mark, "policy.applied with what found no room", |r| {
        r["kind"] == "policy.applied" && r["protected_missed"].as_u64() >= Some(2)
    });
    let out = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.9.3.93 }"]);
    assert!(!out.status.success(), "the blocklist rule taken away over a full PROTECTED still allowed");
    d.expect_record(mark, "nft.element.add", "inet filter blocklist", "denied");
    let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["protected_full"], true, "after an apply that found no room: {status}");
    expect_refused(file);
    expect_refused(&deep);
    // With room again, the daemon's own walk enters them (no apply), and
    // settles the misses.
    let mark = d.audit_len();
    drop(full);
    d.expect_record_where(mark, "protected.settled", |r| r["kind"] == "protected.settled");
    let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["protected_full"], false, "after the map emptied: {status}");
    expect_refused(file);
    expect_refused(&deep);
    let (_, next) = d.next_bundle(&demo);
    let (ok, said) = d.run_cli_status(&["policy", "apply", next.to_str().unwrap()]);
    assert!(ok, "the policy apply after the map emptied failed: {said}");
    assert!(!said.contains("found no room"), "{said}");
    drop(demo_back);
    clean();
}

/// PROTECTED filled with keys no file system has while it lives; emptied
/// of them when dropped. They are /etc/sysctl.d's, as the files an agent
/// makes in a tree it may write would be: an apply keeps them. `filled`
/// is the next key's inode number.
struct FullProtected {
    filled: u64,
}

impl FullProtected {
    const FAKE_DEV: u64 = 0xfee1_dead;

    fn fill() -> Self {
        let mut full = Self { filled: 0 };
        full.top_up();
        assert!(full.filled > 60_000, "PROTECTED took only {} more", full.filled);
        full
    }

    /// Runs `apply` while a thread keeps taking whatever room comes free,
    /// as an agent would. The daemon's own atomic rewrites free a slot
    /// each, at times of their own: a save of the marks between a top-up
    /// and the apply's inserts once let a new tree in.
    fn kept_full<T>(&mut self, apply: impl FnOnce() -> T) -> T {
        use std::sync::atomic::{AtomicBool, Ordering};
        let done = &AtomicBool::new(false);
        std::thread::scope(|scope| {
            let filler = scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    self.top_up();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            });
            let result = apply();
            done.store(true, Ordering::Relaxed);
            filler.join().unwrap();
            result
        })
    }

    /// Takes whatever room came free since (the daemon's atomic rewrites
    /// of its own files free one slot each), as an agent would keep doing.
    fn top_up(&mut self) {
        use warrant_common::{FileKey, ProtectedEntry};
        let mut protected = crate::files::protected_map();
        let entry = ProtectedEntry { tree: warrant::protect::tree_id("/etc/sysctl.d"), flags: 0 };
        while protected.insert(FileKey { dev: Self::FAKE_DEV, ino: self.filled }, entry, 0).is_ok() {
            self.filled += 1;
        }
    }
}

impl Drop for FullProtected {
    fn drop(&mut self) {
        let mut map = crate::files::protected_map();
        let fakes: Vec<_> = map.keys().filter_map(Result::ok).filter(|k| k.dev == Self::FAKE_DEV).collect();
        for key in fakes {
            let _ = map.remove(&key);
        }
    }
}
