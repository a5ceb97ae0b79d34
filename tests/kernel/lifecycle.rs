//! Kernel tier: the daemon's life. SIGKILL and restarts without a gap, pins
//! of another layout, uninstall, a reboot's worth of state, a full event
//! ring.

use crate::harness::{self, Daemon, daemon, nft_root, run_subject};
use crate::{warrant_id, warranted_input_rule};

/// A subject (`warrant run --profile agent`) that waits for the returned
/// `go` file, then tries `nft add chain inet filter CHAIN` and writes nft's
/// exit code to the returned rc file.
fn waiting_subject(d: &Daemon, chain: &str) -> (std::process::Child, std::path::PathBuf, std::path::PathBuf) {
    waiting_subject_running(d, chain, &format!("nft add chain inet filter {chain} 2>/dev/null; echo $? > \"$RC\""))
}

/// A subject (`warrant run --profile agent`) that waits for the returned
/// `go` file, then runs the shell script `then`, which writes what it
/// found to the returned rc file (named by `$RC`).
fn waiting_subject_running(
    d: &Daemon,
    name: &str,
    then: &str,
) -> (std::process::Child, std::path::PathBuf, std::path::PathBuf) {
    let go = d.dir.join(format!("go-{name}"));
    let rc = d.dir.join(format!("{name}.rc"));
    let waiting =
        format!("RC={rc}; while [ ! -f {go} ]; do sleep 0.2; done; {then}", go = go.display(), rc = rc.display());
    let subject = std::process::Command::new(harness::warrant_bin())
        .arg("--config")
        .arg(&d.config)
        .args(["run", "--profile", "agent", "--", "sh", "-c", &waiting])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    (subject, go, rc)
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn enforcement_survives_sigkill_of_the_daemon_and_a_restart_picks_up() {
    let d = daemon();
    // A subject that is already running when the daemon dies.
    let (mut subject, go, rc) = waiting_subject(d, "afterkill");
    let mark = d.audit_len();
    d.kill();
    std::fs::write(&go, "").unwrap();
    let code = harness::wait_for_file(&rc);
    subject.wait().unwrap();
    assert_ne!(code.trim(), "0", "a subject changed the firewall while the daemon was dead");
    assert!(!nft_root(&["list", "table", "inet", "filter"]).contains("afterkill"));
    // Names in the way of the restart's pins (which only root can make
    // there): a directory at one's staging name, a symlink at another's.
    let links = std::path::Path::new("/sys/fs/bpf/warrant/links");
    std::fs::create_dir_all(links.join("netlink_send_new/inside")).unwrap();
    std::os::unix::fs::symlink("/nowhere", links.join("file_open_new")).unwrap();
    // The restarted daemon reuses the pins and reads what happened meanwhile.
    d.restart();
    for planted in ["netlink_send_new", "file_open_new"] {
        assert!(std::fs::symlink_metadata(links.join(planted)).is_err(), "{planted} is still there");
    }
    d.expect_record(mark, "nft.chain.add", "inet filter afterkill", "denied");
    let again = run_subject(&["nft", "add", "chain", "inet", "filter", "afterrestart"]);
    assert!(again.stderr.contains("Operation not permitted"), "{}", again.stderr);
    let allowed = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.9.9.9 }"]);
    assert!(allowed.status.success(), "{}", allowed.stderr);
    assert!(std::path::Path::new("/sys/fs/bpf/warrant/links/netlink_send").exists());
}

/// A start that set the maps aside and stopped before it attached (the
/// maps moved aside by hand here, as such a start leaves them) leaves the
/// earlier programs on the set-aside maps: the next start carries their
/// subjects, whatever the half-made maps hold, and finishes the
/// replacement. A subject running across it stays one, and the policy
/// comes back from the daemon's state.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_unfinished_map_replacement_is_finished_by_the_next_start() {
    let d = daemon();
    let (mut subject, go, rc) = waiting_subject(d, "afterunfinished");
    d.kill();
    let pins = std::path::Path::new("/sys/fs/bpf/warrant");
    std::fs::rename(pins.join("maps"), pins.join("maps-replaced")).unwrap();
    std::fs::create_dir(pins.join("maps")).unwrap();
    let mark = d.audit_len();
    d.restart();
    let replaced = d.expect_record_where(mark, "pins.replaced", |r| r["kind"] == "pins.replaced");
    assert!(replaced["reasons"].to_string().contains("did not finish"), "{replaced}");
    assert!(pins.join("maps/PIN_LAYOUT").exists());
    assert!(!pins.join("maps-replaced").exists());
    std::fs::write(&go, "").unwrap();
    let code = harness::wait_for_file(&rc);
    subject.wait().unwrap();
    assert_ne!(code.trim(), "0", "a subject running across the replacement acted unconfined");
    d.expect_record(mark, "nft.chain.add", "inet filter afterunfinished", "denied");
    let allowed = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.9.9.11 }"]);
    assert!(allowed.status.success(), "{}", allowed.stderr);
}

/// An upgrade in place: pins as the previous release left them (no layout
/// version) are replaced rather than reused. A subject running across the
/// upgrade stays one, and what the old maps protected stays protected
/// though no policy is restored (its persisted bundle is gone here): the
/// new maps start with the old protected inodes and /proc trees. Before
/// they were copied, the new maps held none until a restore, and the
/// subject's writes in that window (here, all of it) went through.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn pins_of_another_layout_are_replaced_carrying_their_subjects_and_protection() {
    const MADE: &str = "/etc/sysctl.d/91-carried.conf";
    let d = daemon();
    let _ = std::fs::remove_file(MADE);
    // Signed while a policy is in force, to put one back at the end, or on
    // a failure: later tests need a daemon with one.
    let (_, next) = d.next_bundle(&std::fs::read_to_string("policies/demo.toml").unwrap());
    let sysctl = "/proc/sys/net/ipv4/ip_forward";
    let writes = format!(
        "echo x > {MADE}; a=$?; v=$(cat {sysctl}); echo $v > {sysctl}; b=$?; \
         nft add chain inet filter afterupgrade 2>/dev/null; echo $a $b $? > \"$RC\""
    );
    let (mut subject, go, rc) = waiting_subject_running(d, "afterupgrade", &writes);
    struct PolicyBack<'a>(&'a Daemon, std::path::PathBuf, std::path::PathBuf);
    impl Drop for PolicyBack<'_> {
        fn drop(&mut self) {
            let _ = std::fs::write(&self.2, "");
            let _ = std::fs::remove_file(MADE);
            if !self.0.run_cli_status(&["status"]).0 {
                self.0.restart();
            }
            let (ok, said) = self.0.run_cli_status(&["policy", "apply", self.1.to_str().unwrap()]);
            assert!(ok || std::thread::panicking(), "the policy was not put back: {said}");
        }
    }
    let policy_back = PolicyBack(d, next, go.clone());
    d.kill();
    let pins = std::path::Path::new("/sys/fs/bpf/warrant");
    std::fs::remove_file(pins.join("maps/PIN_LAYOUT")).unwrap();
    std::fs::remove_file(d.dir.join("state/policy.bundle")).unwrap();
    let mark = d.audit_len();
    d.restart();
    let replaced = d.expect_record_where(mark, "pins.replaced", |r| r["kind"] == "pins.replaced");
    assert!(replaced["reasons"].to_string().contains("no layout version"), "{replaced}");
    let carried = replaced["carried"].to_string();
    assert!(carried.contains("PROTECTED: ") && !carried.contains("not carried"), "{replaced}");
    assert!(pins.join("maps/PIN_LAYOUT").exists());
    assert!(!pins.join("maps-replaced").exists());
    std::fs::write(&go, "").unwrap();
    let codes = harness::wait_for_file(&rc);
    subject.wait().unwrap();
    assert!(!std::path::Path::new(MADE).exists(), "a protected tree took a new file");
    assert!(!codes.split_whitespace().any(|code| code == "0"), "a subject acted unconfined: {codes}");
    d.expect_record(mark, "nft.chain.add", "inet filter afterupgrade", "denied");
    // Named by tree hash and inode: no policy says what they are.
    for (action, target) in [("file.create", "name:91-carried.conf"), ("file.write", "inode:")] {
        d.expect_record_where(mark, &format!("{action} {target} denied"), |r| {
            r["kind"] == "decision"
                && r["action"] == action
                && r["target"].as_str().is_some_and(|t| t.contains(target))
                && r["verdict"] == "denied"
        });
    }
    drop(policy_back);
    let allowed = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.9.9.10 }"]);
    assert!(allowed.status.success(), "{}", allowed.stderr);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn uninstall_by_unconfined_root_removes_everything() {
    let d = daemon();
    let bin = harness::warrant_bin();
    let config = d.config.to_str().unwrap().to_owned();
    // Never by a subject, never under a running daemon.
    let as_subject = run_subject(&[bin.to_str().unwrap(), "--config", &config, "uninstall"]);
    assert!(!as_subject.status.success() && as_subject.stderr.contains("subject"), "{}", as_subject.stderr);
    let (ok, said) = d.run_cli_status(&["uninstall"]);
    assert!(!ok && said.contains("stop it first"), "{said}");
    assert!(std::path::Path::new("/sys/fs/bpf/warrant/links/netlink_send").exists());

    // A subject waits while root stops the daemon and uninstalls.
    let go = d.dir.join("go-uninstall");
    let rc = d.dir.join("uninstall.rc");
    let waiting = format!(
        // The kernel lets go of detached programs after an RCU grace period,
        // which under an emulated CPU can take a few seconds.
        "while [ ! -f {go} ]; do sleep 0.2; done; ok=1; for i in $(seq 60); do \
         if nft add chain inet filter after_uninstall 2>/dev/null; then ok=0; break; fi; sleep 0.5; done; echo $ok > {rc}",
        go = go.display(),
        rc = rc.display()
    );
    let mut subject = std::process::Command::new(&bin)
        .args(["--config", &config, "run", "--profile", "agent", "--", "sh", "-c", &waiting])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    d.kill();
    let removed = d.cli_ok(&["uninstall"]);
    assert!(removed.contains("removed"), "{removed}");
    assert!(!std::path::Path::new("/sys/fs/bpf/warrant").exists());
    // Nothing is enforced any more: the programs went with their pins.
    std::fs::write(&go, "").unwrap();
    assert_eq!(harness::wait_for_file(&rc).trim(), "0", "enforcement outlived uninstall");
    subject.wait().unwrap();
    nft_root(&["delete", "chain", "inet", "filter", "after_uninstall"]);

    // Installing again is starting the daemon: the accepted policy comes back
    // (after the teardown settles; see warrant_uses_left_survive_a_reboot).
    std::thread::sleep(std::time::Duration::from_secs(5));
    d.restart();
    let denied = run_subject(&["nft", "add", "chain", "inet", "filter", "after_reinstall"]);
    assert!(denied.stderr.contains("Operation not permitted"), "{}", denied.stderr);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn warrant_uses_left_survive_a_reboot() {
    let d = daemon();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2701", "accept"];
    warranted_input_rule(d, &rule, "10m", 3);
    let mark = d.audit_len();
    let first = run_subject(&rule);
    d.expect_record(mark, "nft.rule.add", "inet filter input", "allowed-by-warrant");
    assert!(first.status.success(), "{}", first.stderr);
    // A program the agent wrote stays the agent's across the reboot (the
    // daemon saves the marks at its next tick).
    let planted = "/usr/local/bin/warrant-planted-before-reboot";
    let plant = format!(
        "printf '#!/bin/sh\\nexec nft add table inet planted_before_reboot\\n' > {planted}; chmod 755 {planted}"
    );
    assert!(run_subject(&["sh", "-c", &plant]).status.success());
    std::thread::sleep(std::time::Duration::from_secs(3));
    // What a reboot does to Warrant: the daemon dies and the kernel's maps
    // go with the pins.
    d.kill();
    d.cli_ok(&["uninstall"]);
    assert!(!std::path::Path::new("/sys/fs/bpf/warrant/maps/WARRANTS").exists());
    // Let the kernel finish tearing down the detached trampolines (an RCU
    // tasks grace period, seconds under the emulator) before processes run
    // through those hooks again: a 6.1 guest once livelocked here, a CPU
    // spinning at security_file_mprotect's call site (tests/BYPASS.md).
    std::thread::sleep(std::time::Duration::from_secs(10));
    let mark = d.audit_len();
    d.restart();
    let restored = d.expect_record_where(mark, "warrant.restored", |r| r["kind"] == "warrant.restored");
    assert_eq!(restored["uses_left"], 2, "{restored}");
    for _ in 0..2 {
        assert!(run_subject(&rule).status.success(), "a use left before the reboot was lost");
    }
    let mark = d.audit_len();
    assert!(run_subject(&rule).stderr.contains("Operation not permitted"), "a use was counted twice");
    let spent = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    assert_eq!(spent["warrant_unusable"]["why"], "its uses are spent", "{spent}");
    d.expect_record_where(0, "marks.restored", |r| r["kind"] == "marks.restored");
    let ran = std::process::Command::new(planted).output().unwrap();
    assert!(!ran.status.success(), "after a reboot, root's run of a planted program changed the firewall");
    std::fs::remove_file(planted).unwrap();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_full_event_ring_is_recorded_as_a_gap_never_silently() {
    let d = daemon();
    let mark = d.audit_len();
    let pid = d.pid().to_string();
    let go = d.dir.join("burst.go");
    let _ = std::fs::remove_file(&go);
    let script = format!(
        "for _ in range(20000):\n    try:\n        open({:?}, 'a')\n    except PermissionError:\n        pass\n",
        d.audit.display().to_string()
    );
    // Made a subject while the daemon still answers, then held until it stops.
    let mut burst = harness::subject_command(&[
        "sh",
        "-c",
        &format!("while [ ! -f {} ]; do sleep 0.2; done; exec python3 -c \"$0\"", go.display()),
        &script,
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // A stopped daemon reads nothing: the kernel keeps deciding, and the
    // 2 MiB ring (about 8,700 events of 240 bytes) fills.
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::fs::write(&go, "").unwrap();
    let finished = burst.wait().unwrap();
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    assert!(finished.success(), "the burst failed");
    let gap = d.expect_record_where(mark, "audit.gap", |r| r["kind"] == "audit.gap");
    let lost = gap["lost_events"].as_u64().unwrap();
    assert!(lost > 0 && lost <= 20000, "{gap}");
    let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    assert!(status["lost_events"].as_u64().unwrap() >= lost, "{status}");
    let verified = d.run_cli(&["audit", "verify"]);
    assert!(verified.contains("verifies"), "{verified}");
}

/// A full disk costs the records it had no room for, never the chain: the
/// daemon keeps enforcing, writes no part of a line, and once there is room
/// records the gap (`audit log writes failed`) and goes on.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_full_disk_is_recorded_as_a_gap_and_tears_no_record() {
    let d = daemon();
    let filler = d.audit.parent().unwrap().join("filler");
    let fill = format!("dd if=/dev/zero of={} bs=64k 2>/dev/null; sync", filler.display());
    let _ = std::process::Command::new("sh").args(["-c", &fill]).status();
    let attempt = || run_subject(&["nft", "add", "table", "inet", "full_disk"]);
    // Until a record finds no room (the log's last page may hold a few).
    let failed_writes = || {
        let log = std::fs::read_to_string(d.dir.join("daemon.log")).unwrap_or_default();
        log.matches("audit log write failed").count()
    };
    let before = failed_writes();
    for attempts in 1.. {
        assert!(attempt().stderr.contains("Operation not permitted"), "enforcement stopped with the disk full");
        std::thread::sleep(std::time::Duration::from_millis(200));
        if failed_writes() > before {
            break;
        }
        assert!(attempts < 60, "no audit write failed with the log's file system full");
    }
    std::fs::remove_file(&filler).unwrap();
    let mark = d.audit_len();
    assert!(attempt().stderr.contains("Operation not permitted"));
    let gap = d.expect_record_where(mark, "audit.gap", |r| {
        r["kind"] == "audit.gap" && r["cause"] == "audit log writes failed"
    });
    assert!(gap["records_not_written"].as_u64().is_some_and(|n| n >= 1), "{gap}");
    d.expect_record(mark, "nft.table.update", "inet full_disk", "denied");
    let verified = d.cli_ok(&["audit", "verify"]);
    assert!(verified.contains("verifies"), "{verified}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn sigkill_during_a_burst_of_warranted_changes_loses_nothing() {
    let d = daemon();
    let mark = d.audit_len();
    let rule = "nft add rule inet filter input tcp dport 2951 accept";
    let first = run_subject(&["sh", "-c", rule]);
    assert!(!first.status.success());
    let request = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", "10m", 5);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let go = d.dir.join("chaos.go");
    let done = d.dir.join("chaos.done");
    let _ = std::fs::remove_file(&go);
    let _ = std::fs::remove_file(&done);
    // Twelve tries at a five-use warrant, running across the daemon's death.
    let mut burst = harness::subject_command(&[
        "sh", "-c",
        &format!("while [ ! -f {go} ]; do sleep 0.1; done; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do {rule} 2>/dev/null; done; touch {done}",
            go = go.display(), done = done.display()),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::fs::write(&go, "").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    d.kill();
    assert!(burst.wait().unwrap().success());
    assert!(done.exists());
    d.restart();
    // Enforcement held: exactly the five uses went through, none twice.
    let chain = nft_root(&["list", "chain", "inet", "filter", "input"]);
    assert_eq!(chain.matches("dport 2951").count(), 5, "{chain}");
    let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    let left = status["warrants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == warrant_id(&warrant).as_str())
        .map(|w| w["uses_left"].clone());
    assert_eq!(left, Some(serde_json::json!(0)), "{status}");
    // The restarted daemon read what happened while it was dead; the log verifies.
    let records = d.records_since(mark);
    let used =
        records.iter().filter(|r| r["verdict"] == "allowed-by-warrant" && r["target"] == "inet filter input").count();
    let gaps: u64 =
        records.iter().filter(|r| r["kind"] == "audit.gap").map(|r| r["lost_events"].as_u64().unwrap()).sum();
    assert!(used <= 5, "a use was recorded twice: {used}");
    assert!(
        used == 5 || used as u64 + gaps >= 5,
        "uses missing from the log without a gap record: {used} recorded, {gaps} lost"
    );
    let verified = d.cli_ok(&["audit", "verify"]);
    assert!(verified.contains("all present"), "{verified}");
}
