//! Kernel tier: the real `warrant daemon` with BPF-LSM, and the real `nft`,
//! run as subjects. Run by `cargo xtask test` inside the VM as root; on a
//! plain `cargo test` these show as ignored. Inside the VM nothing here
//! skips: a missing BPF-LSM or a daemon that cannot start fails every test.

mod confinement;
mod harness;
mod marks;
mod network;
mod programs;
mod requests;

use harness::{Daemon, daemon, nft_root, now_unix, run_subject, run_subject_as};

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn doctor_says_enforcement_is_available_and_in_which_mode() {
    // xtask boots most kernels with bpf in lsm=, and one without it (fmod_ret).
    let expected = std::env::var("WARRANT_EXPECT_MODE").unwrap_or_else(|_| "bpf-lsm".into());
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").expect("securityfs");
    let bpf_active = lsm.split(',').any(|l| l.trim() == "bpf");
    assert_eq!(bpf_active, expected == "bpf-lsm", "active LSMs {lsm} for mode {expected}");
    let out = std::process::Command::new(harness::warrant_bin()).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "doctor failed in the VM: {text}");
    assert!(text.contains("enforcement: available"), "{text}");
    assert!(text.contains(&format!("mode: {expected} ")), "{text}");
    // Without bpf in lsm=, the exact boot change that adds it.
    let fix = format!("lsm={},bpf\"", lsm.trim());
    assert_eq!(text.contains(&fix) && text.contains("update-grub && reboot"), !bpf_active, "{fix}: {text}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn allow_tier_applies_and_is_audited() {
    let d = daemon();
    let mark = d.audit_len();
    let out = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.9.0.1 }"]);
    assert!(out.status.success(), "allowed element add failed: {}", out.stderr);
    assert!(nft_root(&["list", "set", "inet", "filter", "blocklist"]).contains("10.9.0.1"));
    d.expect_record(mark, "nft.element.add", "inet filter blocklist", "allowed");
    let metrics = d.cli_ok(&["metrics"]);
    assert!(
        metrics.contains("warrant_decisions_total{verdict=\"allowed\",action=\"nft.element.add\",profile=\"agent\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("warrant_enforcement_available 1"), "{metrics}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn deny_tier_gets_eperm_and_changes_nothing() {
    let d = daemon();
    let mark = d.audit_len();
    let out = run_subject(&["nft", "add", "chain", "inet", "filter", "sneaky"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    assert!(!nft_root(&["list", "table", "inet", "filter"]).contains("sneaky"));
    d.expect_record(mark, "nft.chain.add", "inet filter sneaky", "denied");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn approve_tier_needs_a_warrant_which_allows_exactly_its_uses() {
    let d = daemon();
    let mark = d.audit_len();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2201", "accept"];
    let denied = run_subject(&rule);
    assert!(denied.stderr.contains("Operation not permitted"), "{}", denied.stderr);
    let request = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let request_id = request["request"].as_str().expect("a change request id").to_owned();
    assert!(d.run_cli(&["requests", "show", &request_id]).contains("nft.rule.add"));
    // The notify command got the new request as JSON on stdin, in a batch.
    let notified = harness::wait_for_text(&d.dir.join("notified.jsonl"), &request_id);
    let batch = notified.lines().find(|l| l.contains(&request_id)).unwrap();
    let batch: serde_json::Value = serde_json::from_str(batch).expect("one JSON batch a line");
    assert_eq!(batch["host"], "vm-test");
    assert!(batch["requests"].as_array().unwrap().iter().any(|r| r["id"] == request_id.as_str()), "{batch}");
    assert!(d.run_cli(&["policy", "show"]).contains("[[profile]]"));

    let warrant = d.approve(&request_id, "alice", "10m", 1);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let mark = d.audit_len();
    let allowed = run_subject(&rule);
    assert!(allowed.status.success(), "warranted rule failed: {}", allowed.stderr);
    assert!(nft_root(&["list", "chain", "inet", "filter", "input"]).contains("dport 2201"));
    let used = d.expect_record(mark, "nft.rule.add", "inet filter input", "allowed-by-warrant");
    assert_eq!(used["approver"], "alice");
    assert!(used["warrant_id"].as_str().unwrap().starts_with("w-"));

    let mark = d.audit_len();
    let spent = run_subject(&["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2202", "accept"]);
    assert!(spent.stderr.contains("Operation not permitted"), "a one-use warrant allowed twice");
    d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    // A warrant id is installed once.
    let replay = d.run_cli_status(&["install", warrant.to_str().unwrap()]);
    assert!(!replay.0 && replay.1.contains("already installed"), "{}", replay.1);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_content_bound_warrant_covers_only_its_rule() {
    let d = daemon();
    let mark = d.audit_len();
    let ssh = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "22", "accept"];
    let bare = ["nft", "add", "rule", "inet", "filter", "input", "accept"];
    assert!(run_subject(&ssh).stderr.contains("Operation not permitted"));
    let request = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let digest = request["content_digest"].as_str().expect("the kernel digests the rule").to_owned();
    let request_id = request["request"].as_str().unwrap().to_owned();
    let shown = d.run_cli(&["requests", "show", &request_id]);
    assert!(shown.contains(&digest), "{shown}");
    // The RI sees the rule itself, decoded from what the kernel digested.
    for part in
        ["[ payload load 2b @ transport header + 2 => reg 1 ]", "[ cmp eq reg 1 0x0016 ]", "[ immediate reg 0 accept ]"]
    {
        assert!(shown.contains(part), "the request does not show {part}: {shown}");
    }
    assert_eq!(request["content"].as_str().map(|c| c.contains("0x0016")), Some(true), "{request}");

    let warrant = d.approve(&request_id, "alice", "10m", 3);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let mark = d.audit_len();
    let other = run_subject(&bare);
    assert!(
        other.stderr.contains("Operation not permitted"),
        "a warrant for `tcp dport 22 accept` allowed a bare accept"
    );
    let refused = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    assert_ne!(refused["content_digest"].as_str(), Some(digest.as_str()));
    let rules = nft_root(&["list", "chain", "inet", "filter", "input"]);
    assert!(!rules.lines().any(|l| l.trim() == "accept"), "{rules}");

    let mark = d.audit_len();
    let allowed = run_subject(&ssh);
    assert!(allowed.status.success(), "the approved rule failed: {}", allowed.stderr);
    let used = d.expect_record(mark, "nft.rule.add", "inet filter input", "allowed-by-warrant");
    assert_eq!(used["content_digest"].as_str(), Some(digest.as_str()));
    assert!(nft_root(&["list", "chain", "inet", "filter", "input"]).contains("tcp dport 22 accept"));
    d.cli_ok(&["revoke", &warrant_id(&warrant)]);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn each_decision_during_policy_reloads_follows_one_whole_policy() {
    let d = daemon();
    let allowing = std::fs::read_to_string("policies/demo.toml").unwrap();
    let blocklist = "target = \"inet filter blocklist\"\ntier = \"allow\"";
    let denying = allowing.replacen(blocklist, "target = \"inet filter blocklist\"\ntier = \"deny\"", 1);
    assert_ne!(denying, allowing);
    let stop = std::path::Path::new("/run/warrant-reload-stop");
    let _ = std::fs::remove_file(stop);
    let mark = d.audit_len();
    let mut allows = std::collections::BTreeMap::from([(d.policy_version(), true)]);
    // The agent keeps changing the blocklist while the policy flips under it.
    let mut agent = harness::subject_command(&[
        "sh",
        "-c",
        "while [ ! -e /run/warrant-reload-stop ]; do nft add element inet filter blocklist '{ 10.7.0.1 }'; \
         nft delete element inet filter blocklist '{ 10.7.0.1 }'; done 2>/dev/null",
    ])
    .spawn()
    .unwrap();
    for round in 0..8 {
        // Ends on the allowing policy, as the other tests expect.
        let allowed = round % 2 == 1;
        let version = d.apply_next_policy(if allowed { &allowing } else { &denying });
        allows.insert(version, allowed);
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    std::fs::write(stop, "").unwrap();
    agent.wait().unwrap();
    let _ = std::fs::remove_file(stop);
    let mut seen = std::collections::BTreeSet::new();
    for record in d.records_since(mark) {
        if record["kind"] != "decision" || record["target"] != "inet filter blocklist" || record["profile"] != "agent" {
            continue;
        }
        let version = record["policy_version"].as_u64().unwrap();
        let Some(&allowed) = allows.get(&version) else { continue };
        let expected = if allowed { "allowed" } else { "denied" };
        assert_eq!(record["verdict"], expected, "a decision under v{version} did not follow v{version}: {record}");
        let rule = record["rule"].as_str().unwrap_or_default();
        assert!(
            rule.ends_with(if allowed { "-> allow" } else { "-> deny" }),
            "rule named from another policy: {record}"
        );
        seen.insert(allowed);
    }
    assert_eq!(seen.len(), 2, "the agent's changes were decided under both policies");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_batch_with_one_denied_message_applies_nothing() {
    let d = daemon();
    let mark = d.audit_len();
    let script = d
        .write_file("batch.nft", "add element inet filter blocklist { 10.9.0.77 }\nadd chain inet filter batchchain\n");
    let out = run_subject(&["nft", "-f", script.to_str().unwrap()]);
    assert!(!out.status.success(), "a batch with a denied message went through");
    assert!(!nft_root(&["list", "set", "inet", "filter", "blocklist"]).contains("10.9.0.77"));
    d.expect_record(mark, "nft.element.add", "inet filter blocklist", "denied-with-batch");
    d.expect_record(mark, "nft.chain.add", "inet filter batchchain", "denied");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn expired_warrant_is_denied() {
    let d = daemon();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2301", "accept"];
    // Long enough for approve and install under an emulated CPU (4 s once
    // was not), then waited out by the warrant's own expiry.
    let warrant = warranted_input_rule(d, &rule, "12s", 5);
    let expires_at = approval_of(&warrant)["expires_at"].as_u64().unwrap();
    while now_unix() <= expires_at + 1 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let out = run_subject(&rule);
    assert!(out.stderr.contains("Operation not permitted"), "an expired warrant allowed: {}", out.stderr);
    assert!(!nft_root(&["list", "chain", "inet", "filter", "input"]).contains("dport 2301"));
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn warrant_for_one_table_does_not_cover_another() {
    let d = daemon();
    nft_root(&["add", "table", "inet", "other"]);
    nft_root(&["add", "chain", "inet", "other", "input"]);
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2401", "accept"];
    let warrant = warranted_input_rule(d, &rule, "10m", 3);
    let out = run_subject(&["nft", "add", "rule", "inet", "other", "input", "tcp", "dport", "2401", "accept"]);
    assert!(out.stderr.contains("Operation not permitted"), "warrant leaked to another table");
    assert!(!nft_root(&["list", "table", "inet", "other"]).contains("2401"));
    d.cli_ok(&["revoke", &warrant_id(&warrant)]);
}

/// A subject's `attempt` is refused in the approve tier as `action` on
/// `target`; alice's warrant for that change request, valid for `ttl` and
/// `uses`, is installed. Returns its file.
fn warrant_after_refusal(
    d: &Daemon,
    attempt: impl FnOnce() -> harness::Ran,
    action: &str,
    target: &str,
    ttl: &str,
    uses: u32,
) -> std::path::PathBuf {
    let mark = d.audit_len();
    let denied = attempt();
    assert!(!denied.status.success(), "{action} on {target} was not refused: {}", denied.stderr);
    let request = d.expect_record(mark, action, target, "denied-needs-warrant");
    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", ttl, uses);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    warrant
}

/// A subject tries `rule` (an `nft add rule inet filter input ...` command),
/// gets EPERM, and alice's warrant for it is installed. Returns its file.
fn warranted_input_rule(d: &Daemon, rule: &[&str], ttl: &str, uses: u32) -> std::path::PathBuf {
    let attempt = || {
        let denied = run_subject(rule);
        assert!(denied.stderr.contains("Operation not permitted"), "{}", denied.stderr);
        denied
    };
    warrant_after_refusal(d, attempt, "nft.rule.add", "inet filter input", ttl, uses)
}

fn warrant_id(path: &std::path::Path) -> String {
    approval_of(path)["id"].as_str().unwrap().to_owned()
}

/// The approval a warrant file carries, as JSON.
fn approval_of(path: &std::path::Path) -> serde_json::Value {
    let envelope: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.decode(envelope["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn warrant_signed_by_a_non_ri_key_is_refused_at_install() {
    let d = daemon();
    let mark = d.audit_len();
    run_subject(&["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2501", "accept"]);
    let request = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let forged = d.approve(request["request"].as_str().unwrap(), "mallory", "10m", 1);
    let (ok, text) = d.run_cli_status(&["install", forged.to_str().unwrap()]);
    assert!(!ok, "a warrant from a non-RI key was installed");
    assert!(text.contains("not signed by a Responsible Individual"), "{text}");
    let again = run_subject(&["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2501", "accept"]);
    assert!(again.stderr.contains("Operation not permitted"));
}

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

/// O_TMPFILE passes no create hook: a subject's unnamed files in Warrant's
/// own directories must not take slots in the protected set (filled, it
/// would leave later files unprotected).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_subjects_tmpfiles_in_warrants_own_directories_take_no_protected_slots() {
    let d = daemon();
    let protected_entries = || {
        let map = aya::maps::MapData::from_pin("/sys/fs/bpf/warrant/maps/PROTECTED").expect("PROTECTED is pinned");
        let map: aya::maps::HashMap<_, warrant_common::FileKey, warrant_common::ProtectedEntry> =
            aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(map).unwrap()).unwrap();
        map.keys().count()
    };
    let before = protected_entries();
    let script = format!(
        "import os\nmade = 0\nfor _ in range(300):\n    os.close(os.open({:?}, os.O_TMPFILE | os.O_WRONLY, 0o600))\n    made += 1\nprint(made)\n",
        d.dir.join("run").to_str().unwrap()
    );
    let out = run_subject(&["python3", "-c", &script]);
    assert!(out.status.success(), "a subject's O_TMPFILE: {}", out.stderr);
    let after = protected_entries();
    // The daemon may protect a few files of its own meanwhile (a rotated log).
    assert!(after < before + 10, "300 tmpfiles took {} protected slots", after - before);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn audit_log_verifies_after_the_run() {
    let d = daemon();
    // The daemon signs a checkpoint at start and every few seconds here.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let text = d.cli_ok(&["audit", "verify"]);
    assert!(text.contains("verifies") && text.contains("all present"), "{text}");
    // Subjects can touch neither the checkpoint nor the host key.
    for file in [format!("{}.checkpoint", d.audit.display()), format!("{}/state/host.key", d.dir.display())] {
        let out = sh_subject(&format!("echo forged > {file}"));
        assert!(!out.status.success(), "a subject wrote {file}");
    }
}

fn iptables_root(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool).args(args).output().expect("iptables-legacy is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn legacy_iptables_replace_is_decided_per_family() {
    let d = daemon();
    let mark = d.audit_len();
    // ip6tables is pre-authorised for ops-bot.
    let allowed =
        run_subject_as("ops-bot", &["ip6tables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "2601", "-j", "ACCEPT"]);
    assert!(allowed.status.success(), "{}", allowed.stderr);
    assert!(iptables_root("ip6tables-legacy", &["-S", "INPUT"]).contains("2601"));
    d.expect_record(mark, "iptables.replace", "ip6", "allowed");
    // IPv4 needs a warrant.
    let rule = ["iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "2602", "-j", "ACCEPT"];
    let denied = run_subject_as("ops-bot", &rule);
    assert!(!denied.status.success(), "iptables-legacy went through without a warrant");
    assert!(!iptables_root("iptables-legacy", &["-S", "INPUT"]).contains("2602"));
    let request = d.expect_record(mark, "iptables.replace", "ip", "denied-needs-warrant");
    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", "10m", 1);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let mark = d.audit_len();
    let applied = run_subject_as("ops-bot", &rule);
    assert!(applied.status.success(), "warranted iptables-legacy failed: {}", applied.stderr);
    assert!(iptables_root("iptables-legacy", &["-S", "INPUT"]).contains("2602"));
    d.expect_record(mark, "iptables.replace", "ip", "allowed-by-warrant");
    // The agent profile has no legacy rules at all: arptables and ebtables are denied.
    for (tool, args) in [
        ("arptables-legacy", vec!["-A", "INPUT", "-j", "ACCEPT"]),
        ("ebtables-legacy", vec!["-A", "INPUT", "-j", "ACCEPT"]),
    ] {
        let mut argv = vec![tool];
        argv.extend(args);
        let out = run_subject(&argv);
        assert!(!out.status.success(), "{tool} as a subject went through");
    }
    // Root is not a subject.
    iptables_root("iptables-legacy", &["-A", "INPUT", "-p", "tcp", "--dport", "2603", "-j", "ACCEPT"]);
    assert!(iptables_root("iptables-legacy", &["-S", "INPUT"]).contains("2603"));
}

/// A subject (`warrant run --profile agent`) that waits for the returned
/// `go` file, then tries `nft add chain inet filter CHAIN` and writes nft's
/// exit code to the returned rc file.
fn waiting_subject(d: &Daemon, chain: &str) -> (std::process::Child, std::path::PathBuf, std::path::PathBuf) {
    let go = d.dir.join(format!("go-{chain}"));
    let rc = d.dir.join(format!("{chain}.rc"));
    let waiting = format!(
        "while [ ! -f {go} ]; do sleep 0.2; done; nft add chain inet filter {chain} 2>/dev/null; echo $? > {rc}",
        go = go.display(),
        rc = rc.display()
    );
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
    // The restarted daemon reuses the pins and reads what happened meanwhile.
    d.restart();
    d.expect_record(mark, "nft.chain.add", "inet filter afterkill", "denied");
    let again = run_subject(&["nft", "add", "chain", "inet", "filter", "afterrestart"]);
    assert!(again.stderr.contains("Operation not permitted"), "{}", again.stderr);
    let allowed = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.9.9.9 }"]);
    assert!(allowed.status.success(), "{}", allowed.stderr);
    assert!(std::path::Path::new("/sys/fs/bpf/warrant/links/netlink_send").exists());
}

/// An upgrade in place: pins as the previous release left them (no layout
/// version) are replaced rather than reused, and a subject running across
/// the upgrade stays one.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn pins_of_another_layout_are_replaced_and_their_subjects_carried_over() {
    let d = daemon();
    let (mut subject, go, rc) = waiting_subject(d, "afterupgrade");
    d.kill();
    std::fs::remove_file("/sys/fs/bpf/warrant/maps/PIN_LAYOUT").unwrap();
    let mark = d.audit_len();
    d.restart();
    let replaced = d.expect_record_where(mark, "pins.replaced", |r| r["kind"] == "pins.replaced");
    assert!(replaced["reasons"].to_string().contains("no layout version"), "{replaced}");
    assert!(std::path::Path::new("/sys/fs/bpf/warrant/maps/PIN_LAYOUT").exists());
    assert!(!std::path::Path::new("/sys/fs/bpf/warrant/maps-replaced").exists());
    std::fs::write(&go, "").unwrap();
    let code = harness::wait_for_file(&rc);
    subject.wait().unwrap();
    assert_ne!(code.trim(), "0", "a subject running across the upgrade acted unconfined");
    d.expect_record(mark, "nft.chain.add", "inet filter afterupgrade", "denied");
    // The policy came back from the daemon's state: its allow tier holds.
    let allowed = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.9.9.10 }"]);
    assert!(allowed.status.success(), "{}", allowed.stderr);
}

/// A subject makes the raw system call `call` (python `libc.syscall`
/// arguments, after `setup`): it must fail with EPERM and be recorded as
/// the self-protection `action`.
fn expect_syscall_refused(d: &Daemon, what: &str, setup: &str, call: &str, action: &str) {
    let mark = d.audit_len();
    let script = format!(
        "import ctypes,os,sys; libc=ctypes.CDLL(None,use_errno=True); {setup}r=libc.syscall({call}); sys.exit(ctypes.get_errno() if r<0 else 0)"
    );
    let out = run_subject(&["python3", "-c", &script]);
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
    // Root that is not a subject is unaffected.
    assert!(std::process::Command::new("mount").args(["-t", "tmpfs", "none", "/mnt"]).status().unwrap().success());
    assert!(std::process::Command::new("umount").arg("/mnt").status().unwrap().success());
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn iptables_nft_and_ipset_are_caught_as_netfilter_netlink() {
    let d = daemon();
    let mark = d.audit_len();
    // iptables-nft is nftables underneath: its batch is classified message by message.
    let out = run_subject(&["iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "2701", "-j", "ACCEPT"]);
    assert!(!out.status.success(), "iptables-nft went through for a profile without ip rules");
    d.expect_record_where(mark, "an nft.* denial in family ip", |r| {
        r["action"].as_str().unwrap_or("").starts_with("nft.")
            && r["target"].as_str().unwrap_or("").starts_with("ip")
            && r["verdict"].as_str().unwrap_or("").starts_with("denied")
    });
    assert!(
        std::process::Command::new("ipset")
            .args(["create", "-exist", "rootset", "hash:ip"])
            .status()
            .unwrap()
            .success()
    );
    // ipset speaks its own nfnetlink subsystem, classified per command and set.
    let ipset_root = |args: &[&str]| std::process::Command::new("ipset").args(args).output().unwrap();
    assert!(ipset_root(&["create", "-exist", "agentset", "hash:ip"]).status.success(), "root is not a subject");
    let mark = d.audit_len();
    let add = run_subject(&["ipset", "add", "agentset", "10.7.0.1"]);
    assert!(add.status.success(), "the pre-authorised ipset add failed: {}", add.stderr);
    d.expect_record(mark, "ipset.add", "agentset", "allowed");
    let listed = run_subject(&["ipset", "list", "agentset"]);
    assert!(listed.status.success(), "reading a set is not an action: {}", listed.stderr);
    // (ipset 7 may exit 0 when a request is refused, so the proof is the
    // kernel's state and the record, not the exit code.)
    let mark = d.audit_len();
    run_subject(&["ipset", "create", "sneaky", "hash:ip"]);
    assert!(
        !String::from_utf8_lossy(&ipset_root(&["list", "-n"]).stdout).contains("sneaky"),
        "ipset create went through"
    );
    d.expect_record(mark, "ipset.create", "sneaky", "denied");
    let mark = d.audit_len();
    run_subject(&["ipset", "destroy", "agentset"]);
    assert!(
        String::from_utf8_lossy(&ipset_root(&["list", "-n"]).stdout).contains("agentset"),
        "ipset destroy went through"
    );
    d.expect_record(mark, "ipset.destroy", "agentset", "denied");
    let mark = d.audit_len();
    run_subject(&["ipset", "swap", "agentset", "rootset"]);
    d.expect_record(mark, "ipset.swap", "agentset rootset", "denied");
    assert!(
        String::from_utf8_lossy(&ipset_root(&["list", "agentset"]).stdout).contains("10.7.0.1"),
        "ipset swap went through"
    );
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn audit_mode_allows_and_records_would_deny() {
    let d = daemon();
    let mark = d.audit_len();
    let out = run_subject_as("observer", &["nft", "add", "chain", "inet", "filter", "observed"]);
    assert!(out.status.success(), "audit mode denied: {}", out.stderr);
    assert!(nft_root(&["list", "table", "inet", "filter"]).contains("observed"));
    let record = d.expect_record(mark, "nft.chain.add", "inet filter observed", "would-deny");
    assert_eq!(record["mode"], "audit");
    nft_root(&["delete", "chain", "inet", "filter", "observed"]);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn revocation_takes_effect_at_once() {
    let d = daemon();
    let command = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2801", "accept"];
    let rule = || run_subject(&command);
    let warrant = warranted_input_rule(d, &command, "10m", 5);
    assert!(rule().status.success(), "the warrant did not allow");
    d.cli_ok(&["revoke", &warrant_id(&warrant)]);
    let after = rule();
    assert!(after.stderr.contains("Operation not permitted"), "a revoked warrant still allowed");
    let chain = nft_root(&["list", "chain", "inet", "filter", "input"]);
    assert_eq!(chain.matches("dport 2801").count(), 1, "{chain}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn batches_up_to_the_bound_apply_and_longer_ones_are_denied_whole() {
    let d = daemon();
    let commands = |count: usize, base: usize| {
        (0..count)
            .map(|i| format!("add element inet filter blocklist {{ 10.{base}.{}.{} }}\n", i / 200, i % 200))
            .collect::<String>()
    };
    // 11 and 200 pre-authorised commands: each a message of one batch, all
    // classified and allowed.
    for (count, base) in [(11, 81), (200, 82)] {
        let file = d.write_file(&format!("batch-{count}.nft"), &commands(count, base));
        let mark = d.audit_len();
        let out = run_subject(&["nft", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "{count} commands: {}", out.stderr);
        let set = nft_root(&["list", "set", "inet", "filter", "blocklist"]);
        assert!(set.contains(&format!("10.{base}.0.{}", (count - 1) % 200)), "{count} commands: {set}");
        let allowed = |r: &serde_json::Value| r["action"] == "nft.element.add" && r["verdict"] == "allowed";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while d.records_since(mark).into_iter().filter(allowed).count() < count {
            assert!(std::time::Instant::now() < deadline, "fewer than {count} allowed records");
        }
        assert_eq!(d.records_since(mark).into_iter().filter(allowed).count(), count, "one record per command");
    }
    // Past what the kernel keeps (256 actions), the batch is denied whole.
    let mark = d.audit_len();
    let too_long = d.write_file("too_long.nft", &commands(257, 83));
    let out = run_subject(&["nft", "-f", too_long.to_str().unwrap()]);
    assert!(!out.status.success(), "a batch beyond the bound went through");
    assert!(!nft_root(&["list", "set", "inet", "filter", "blocklist"]).contains("10.83.0.0"));
    d.expect_record_where(mark, "a denied-unparseable record", |r| r["verdict"] == "denied-unparseable");
}

fn netns_helper(args: &[&str]) -> harness::Ran {
    let script = harness::helper("netns.py");
    let mut command = vec!["python3", script.as_str()];
    command.extend_from_slice(args);
    run_subject(&command)
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn creating_a_network_namespace_needs_a_warrant_by_every_route() {
    let d = daemon();
    let mark = d.audit_len();
    let unshare = run_subject(&["unshare", "-n", "true"]);
    assert!(unshare.stderr.contains("Operation not permitted"), "unshare -n: {}", unshare.stderr);
    let request = d.expect_record(mark, "netns.create", "*", "denied-needs-warrant");
    for route in ["clone", "clone3"] {
        let mark = d.audit_len();
        let out = netns_helper(&[route]);
        assert_eq!(out.status.code(), Some(1), "{route} with CLONE_NEWNET must fail with EPERM: {}", out.stderr);
        d.expect_record(mark, "netns.create", "*", "denied-needs-warrant");
    }
    let mark = d.audit_len();
    let add = run_subject(&["ip", "netns", "add", "agentns"]);
    assert!(!add.status.success(), "ip netns add went through without a warrant");
    assert!(add.stderr.contains("Operation not permitted"), "{}", add.stderr);
    assert!(!std::path::Path::new("/run/netns/agentns").exists());
    d.expect_record(mark, "netns.create", "*", "denied-needs-warrant");

    // One warrant, four uses: one per route.
    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", "10m", 4);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let mark = d.audit_len();
    let unshare = run_subject(&["unshare", "-n", "true"]);
    assert!(unshare.status.success(), "warranted unshare -n failed: {}", unshare.stderr);
    for route in ["clone", "clone3"] {
        let out = netns_helper(&[route]);
        assert!(out.status.success(), "warranted {route} failed: {}", out.stderr);
    }
    let add = run_subject(&["ip", "netns", "add", "agentns"]);
    assert!(add.status.success(), "warranted ip netns add failed: {}", add.stderr);
    assert!(std::path::Path::new("/run/netns/agentns").exists());
    let used = d.expect_record(mark, "netns.create", "*", "allowed-by-warrant");
    assert_eq!(used["approver"], "alice");
    harness::ip_root(&["netns", "delete", "agentns"]);
    // The fifth is beyond the warrant.
    let mark = d.audit_len();
    let spent = run_subject(&["unshare", "-n", "true"]);
    assert!(spent.stderr.contains("Operation not permitted"), "a 4-use warrant allowed a fifth namespace");
    d.expect_record(mark, "netns.create", "*", "denied-needs-warrant");
    // Other namespace kinds are not netns.create.
    let uts = run_subject(&["unshare", "-u", "true"]);
    assert!(uts.status.success(), "unshare -u is not a network namespace: {}", uts.stderr);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn entering_a_network_namespace_is_decided_per_namespace() {
    let d = daemon();
    let (blue, red, green) = (harness::netns_inode("blue"), harness::netns_inode("red"), harness::netns_inode("green"));
    // The policy allows "blue" by name.
    let mark = d.audit_len();
    let enter_blue = run_subject(&["nsenter", "--net=/run/netns/blue", "true"]);
    assert!(enter_blue.status.success(), "nsenter into blue (allowed) failed: {}", enter_blue.stderr);
    d.expect_record(mark, "netns.enter", &format!("net:[{blue}]"), "allowed");
    // ... and not red, by fd, by `ip netns exec` or by pidfd.
    let red_target = format!("net:[{red}]");
    let mark = d.audit_len();
    let enter_red = run_subject(&["nsenter", "--net=/run/netns/red", "true"]);
    assert!(enter_red.stderr.contains("Operation not permitted"), "nsenter into red: {}", enter_red.stderr);
    let request = d.expect_record(mark, "netns.enter", &red_target, "denied-needs-warrant");
    let mark = d.audit_len();
    let exec_red = run_subject(&["ip", "netns", "exec", "red", "true"]);
    assert!(!exec_red.status.success(), "ip netns exec red went through: {}", exec_red.stderr);
    d.expect_record(mark, "netns.enter", &red_target, "denied-needs-warrant");
    let mut in_red = std::process::Command::new("ip").args(["netns", "exec", "red", "sleep", "120"]).spawn().unwrap();
    let pid = in_red.id().to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mark = d.audit_len();
    let by_pidfd = netns_helper(&["setns-pidfd", &pid]);
    assert_eq!(by_pidfd.status.code(), Some(1), "setns by pidfd into red must fail with EPERM: {}", by_pidfd.stderr);
    d.expect_record(mark, "netns.enter", &red_target, "denied-needs-warrant");

    // A warrant for red covers red, by fd and by pidfd, and not green.
    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", "10m", 5);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let mark = d.audit_len();
    let enter_red = run_subject(&["nsenter", "--net=/run/netns/red", "true"]);
    assert!(enter_red.status.success(), "warranted nsenter into red failed: {}", enter_red.stderr);
    d.expect_record(mark, "netns.enter", &red_target, "allowed-by-warrant");
    let by_pidfd = netns_helper(&["setns-pidfd", &pid]);
    assert!(by_pidfd.status.success(), "warranted setns by pidfd failed: {}", by_pidfd.stderr);
    let mark = d.audit_len();
    let enter_green = run_subject(&["nsenter", "--net=/run/netns/green", "true"]);
    assert!(enter_green.stderr.contains("Operation not permitted"), "red's warrant let a subject into green");
    d.expect_record(mark, "netns.enter", &format!("net:[{green}]"), "denied-needs-warrant");
    let _ = in_red.kill();
    let _ = in_red.wait();
    d.cli_ok(&["revoke", &warrant_id(&warrant)]);
}

fn files_helper(args: &[&str]) -> harness::Ran {
    let script = harness::helper("files.py");
    let mut command = vec!["python3", script.as_str()];
    command.extend_from_slice(args);
    run_subject(&command)
}

fn sh_subject(script: &str) -> harness::Ran {
    run_subject(&["sh", "-c", script])
}

const PROTECTED_FILE: &str = "/etc/sysctl.d/90-agent.conf";

/// A subject's attempt failed with EPERM, changed nothing, and was recorded.
fn expect_refused(
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
    // sed -i writes a temporary file beside the original first: a new file in a protected tree.
    let mark = d.audit_len();
    expect_refused(
        d,
        "sed -i",
        run_subject(&["sed", "-i", "s/0/1/", PROTECTED_FILE]),
        "file.create",
        "/etc/sysctl.d",
        needs,
        mark,
    );
    let mark = d.audit_len();
    expect_refused(
        d,
        "create",
        sh_subject("touch /etc/sysctl.d/99-new.conf"),
        "file.create",
        "/etc/sysctl.d",
        needs,
        mark,
    );
    let mark = d.audit_len();
    let xattr =
        run_subject(&["python3", "-c", &format!("import os; os.setxattr('{PROTECTED_FILE}', 'user.agent', b'1')")]);
    expect_refused(d, "setxattr", xattr, "file.xattr", PROTECTED_FILE, needs, mark);
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
    assert!(
        !std::path::Path::new("/mnt/outside/new-link").exists()
            && !std::path::Path::new("/etc/sysctl.d/99-new.conf").exists()
    );

    // Reading is not an action; root is not a subject; and a file root
    // creates in the tree is protected from its first moment.
    assert!(run_subject(&["cat", PROTECTED_FILE]).status.success());
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

/// A rename is decided on both sides: a move the policy allows inside one
/// tree cannot replace a file of another (the demo's approve-tier sysctl.d,
/// from an allow-tier scratch tree on the same file system).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_rename_allowed_in_one_tree_cannot_replace_a_file_of_another() {
    let d = daemon();
    std::fs::create_dir_all("/mnt/scratch").unwrap();
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let scratch_rule = "[[profile.rule]]\naction = \"file.*\"\ntarget = \"/mnt/scratch\"\ntier = \"allow\"\n\n";
    let first_rule = "[[profile.rule]]\naction = \"nft.element.*\"";
    let wider = text.replacen("protect = [", "protect = [\"/mnt/scratch\", ", 1).replacen(
        first_rule,
        &format!("{scratch_rule}{first_rule}"),
        1,
    );
    assert_ne!(wider, text);
    d.apply_next_policy(&wider);
    let original = std::fs::read_to_string(PROTECTED_FILE).unwrap();
    let within = sh_subject("echo evil > /mnt/scratch/x && mv /mnt/scratch/x /mnt/scratch/y");
    assert!(within.status.success(), "a rename inside the allowed tree was refused: {}", within.stderr);
    let mark = d.audit_len();
    expect_refused(
        d,
        "a rename from the allowed tree over a protected file",
        sh_subject("mv /mnt/scratch/y /mnt/sysctl.d/90-agent.conf"),
        "file.rename",
        PROTECTED_FILE,
        "denied-needs-warrant",
        mark,
    );
    assert_eq!(std::fs::read_to_string(PROTECTED_FILE).unwrap(), original);
    d.apply_next_policy(&text);
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
fn past_its_rate_a_pre_authorised_action_needs_a_warrant() {
    let d = daemon();
    // ops-bot may change the blocklist at most 3 times a minute on its own.
    for n in 1..=3 {
        let mark = d.audit_len();
        let out = run_subject_as(
            "ops-bot",
            &["nft", "add", "element", "inet", "filter", "blocklist", &format!("{{ 10.8.0.{n} }}")],
        );
        assert!(out.status.success(), "element {n} of 3 was refused: {}", out.stderr);
        d.expect_record(mark, "nft.element.add", "inet filter blocklist", "allowed");
    }
    let mark = d.audit_len();
    let fourth = run_subject_as("ops-bot", &["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.8.0.4 }"]);
    assert!(fourth.stderr.contains("Operation not permitted"), "a fourth change in the minute went through");
    assert!(!nft_root(&["list", "set", "inet", "filter", "blocklist"]).contains("10.8.0.4"));
    let record = d.expect_record(mark, "nft.element.add", "inet filter blocklist", "denied-needs-warrant");
    assert_eq!(record["rate_limited"], true, "{record}");
    assert_eq!(record["tier"], "approve");
    assert!(record["request"].is_string(), "a rate-limited action becomes a change request");
    // The rate is ops-bot's: the agent's own rule for the set has none.
    let agent = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.8.1.1 }"]);
    assert!(agent.status.success(), "{}", agent.stderr);
}

/// Runs `args` as root with real and effective uid `uid`, keeping CAP_NET_ADMIN.
fn as_uid(uid: u32, args: &[&str]) -> std::process::Command {
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
fn a_two_person_warrant_needs_both_signatures_before_the_kernel_sees_it() {
    let d = daemon();
    let _ = std::process::Command::new("nft").args(["delete", "table", "inet", "agent"]).output();
    nft_root(&["add", "table", "inet", "agent"]);
    let chain = ["nft", "add", "chain", "inet", "agent", "jobs"];
    let mark = d.audit_len();
    let denied = run_subject(&chain);
    assert!(denied.stderr.contains("Operation not permitted"), "{}", denied.stderr);
    let request = d.expect_record(mark, "nft.chain.add", "inet agent jobs", "denied-needs-warrant");
    // Alice's signature alone is refused at install: nothing reaches the kernel.
    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", "10m", 1);
    let (installed, said) = d.run_cli_status(&["install", warrant.to_str().unwrap()]);
    assert!(!installed && said.contains("needs two"), "{said}");
    assert!(run_subject(&chain).stderr.contains("Operation not permitted"), "a one-person warrant took effect");
    // Bob co-signs; now it installs and covers exactly one chain add.
    d.cli_ok(&["cosign", warrant.to_str().unwrap(), "--key", "policies/demo-keys/bob.key"]);
    let mark = d.audit_len();
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let installed = d.expect_record_where(mark, "warrant.installed", |r| r["kind"] == "warrant.installed");
    assert_eq!(installed["approvers"], serde_json::json!(["alice", "bob"]));
    let allowed = run_subject(&chain);
    assert!(allowed.status.success(), "the two-person warrant did not cover its chain: {}", allowed.stderr);
    d.expect_record(mark, "nft.chain.add", "inet agent jobs", "allowed-by-warrant");
    nft_root(&["delete", "table", "inet", "agent"]);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn watched_directories_apply_bundles_and_install_warrants() {
    let d = daemon();
    // A bundle dropped into bundle_dir is applied like `warrant policy apply`.
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let mark = d.audit_len();
    let (version, staged) = d.next_bundle(&text);
    std::fs::copy(&staged, d.dir.join("bundles.d/next.bundle")).unwrap();
    d.expect_record_where(mark, "policy.applied from bundle_dir", |r| {
        r["kind"] == "policy.applied" && r["version"] == version
    });

    // A warrant dropped into the inbox is installed and filed away.
    let mark = d.audit_len();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2901", "accept"];
    run_subject(&rule);
    let request = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let warrant = d.approve(request["request"].as_str().unwrap(), "alice", "10m", 1);
    let inbox = d.dir.join("inbox");
    std::fs::copy(&warrant, inbox.join("w.json")).unwrap();
    d.expect_record_where(mark, "warrant.installed from the inbox", |r| r["kind"] == "warrant.installed");
    harness::wait_for_file(&inbox.join("installed/w.json"));
    assert!(run_subject(&rule).status.success(), "the inbox warrant did not take effect");
    // Garbage is refused, with the reason beside it.
    std::fs::write(inbox.join("junk.json"), "not a warrant").unwrap();
    let reason = harness::wait_for_file(&inbox.join("refused/junk.json.reason"));
    assert!(reason.contains("warrant refused"), "{reason}");
    // Subjects cannot drop anything there.
    let planted = run_subject(&["sh", "-c", &format!("echo x > {}/planted.json", inbox.display())]);
    assert!(!planted.status.success(), "a subject wrote into the inbox");
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
fn an_expired_policy_stays_enforced_and_the_host_says_so() {
    let d = daemon();
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let soon = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + std::time::Duration::from_secs(8));
    let short = text.replacen("expires = \"2030-01-01T00:00:00Z\"", &format!("expires = \"{soon}\""), 1);
    assert_ne!(short, text);
    let mark = d.audit_len();
    let version = d.apply_next_policy(&short);
    let expired = d.expect_record_where(mark, "policy.expired", |r| r["kind"] == "policy.expired");
    assert_eq!(expired["version"], version);
    assert_eq!(expired["still_enforced"], true);
    let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["policy_expired"], true, "{status}");
    // Never fail open: the expired policy's tiers hold.
    let denied = run_subject(&["nft", "add", "chain", "inet", "filter", "afterexpiry"]);
    assert!(denied.stderr.contains("Operation not permitted"), "{}", denied.stderr);
    let allowed = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.6.0.1 }"]);
    assert!(allowed.status.success(), "{}", allowed.stderr);
    // A bundle that has already expired is refused outright.
    let (_, stale) = d.next_bundle(&short);
    let refused = d.run_cli_status(&["policy", "apply", stale.to_str().unwrap()]);
    assert!(!refused.0 && refused.1.contains("expired"), "{}", refused.1);
    d.apply_next_policy(&text);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn the_bundle_signing_keys_rotate_by_a_root_the_old_keys_signed() {
    let d = daemon();
    let team = harness::repo().join("policies/demo-keys/security-team.key");
    let new_team = d.dir.join("team-2026.key");
    let _ = std::fs::remove_file(&new_team);
    let _ = std::fs::remove_file(d.dir.join("team-2026.key.pub"));
    d.cli_ok(&["keygen", "--out", new_team.to_str().unwrap()]);
    let public =
        |key: &std::path::Path| std::fs::read_to_string(format!("{}.pub", key.display())).unwrap().trim().to_owned();
    let root = |version: u64, key: &std::path::Path, signer: &std::path::Path| {
        let file = d.write_file(
            &format!("root-v{version}.toml"),
            &format!("version = {version}\nthreshold = 1\nkeys = [\"{}\"]\n", public(key)),
        );
        let bundle = d.dir.join(format!("root-v{version}.bundle"));
        d.cli_ok(&[
            "trust",
            "sign",
            file.to_str().unwrap(),
            "--key",
            signer.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ]);
        bundle
    };
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();

    // The new key cannot sign itself in.
    let selfmade = root(1, &new_team, &new_team);
    let refused = d.run_cli_status(&["trust", "rotate", selfmade.to_str().unwrap()]);
    assert!(!refused.0 && refused.1.contains("trust root refused"), "{}", refused.1);

    let mark = d.audit_len();
    d.cli_ok(&["trust", "rotate", root(1, &new_team, &team).to_str().unwrap()]);
    let rotated = d.expect_record_where(mark, "trust.rotated", |r| r["kind"] == "trust.rotated");
    assert_eq!(rotated["version"], 1);
    // Bundles signed by the old key are refused now, and by the new key applied.
    let (_, old_signed) = d.next_bundle(&text);
    let old = d.run_cli_status(&["policy", "apply", old_signed.to_str().unwrap()]);
    assert!(!old.0 && old.1.contains("bundle refused"), "{}", old.1);
    let (version, new_signed) = d.next_bundle_signed_by(&text, &new_team);
    d.cli_ok(&["policy", "apply", new_signed.to_str().unwrap()]);
    assert_eq!(d.policy_version(), version);
    // A replayed older root is refused; the new key hands back to the demo key.
    let replay = d.run_cli_status(&["trust", "rotate", root(1, &team, &new_team).to_str().unwrap()]);
    assert!(!replay.0 && replay.1.contains("not newer"), "{}", replay.1);
    d.cli_ok(&["trust", "rotate", root(2, &team, &new_team).to_str().unwrap()]);
    d.apply_next_policy(&text);
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
        "for _ in range(8000):\n    try:\n        open({:?}, 'a')\n    except PermissionError:\n        pass\n",
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
    // 1 MiB ring (about 5,400 events) fills.
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::fs::write(&go, "").unwrap();
    let finished = burst.wait().unwrap();
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    assert!(finished.success(), "the burst failed");
    let gap = d.expect_record_where(mark, "audit.gap", |r| r["kind"] == "audit.gap");
    let lost = gap["lost_events"].as_u64().unwrap();
    assert!(lost > 0 && lost <= 8000, "{gap}");
    let status: serde_json::Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    assert!(status["lost_events"].as_u64().unwrap() >= lost, "{status}");
    assert!(d.run_cli(&["audit", "verify"]).contains("verifies"));
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

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_policy_that_drops_an_ri_takes_their_warrants_and_older_bundles_are_refused() {
    let d = daemon();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2961", "accept"];
    let warrant = warranted_input_rule(d, &rule, "10m", 3);
    let id = warrant_id(&warrant);

    // The next policy no longer names alice as a Responsible Individual.
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let without_alice = text.replacen("name = \"alice\"", "name = \"alice-left\"", 1);
    let mark = d.audit_len();
    let (dropped_version, dropped) = d.next_bundle(&without_alice);
    d.cli_ok(&["policy", "apply", dropped.to_str().unwrap()]);
    let revoked = d.expect_record_where(mark, "warrant.revoked", |r| {
        r["kind"] == "warrant.revoked" && r["warrant_id"] == id.as_str()
    });
    assert!(revoked["reason"].as_str().unwrap().contains("no longer"), "{revoked}");
    assert!(run_subject(&rule).stderr.contains("Operation not permitted"), "a dropped RI's warrant still allowed");

    // Back to the demo policy; the dropped bundle, now older, is refused and audited.
    d.apply_next_policy(&text);
    let mark = d.audit_len();
    let replay = d.run_cli_status(&["policy", "apply", dropped.to_str().unwrap()]);
    assert!(!replay.0 && replay.1.contains("not newer"), "{}", replay.1);
    let refused = d.expect_record_where(mark, "policy.refused", |r| r["kind"] == "policy.refused");
    assert_eq!(refused["version"], dropped_version);
    assert_eq!(d.policy_version(), dropped_version + 1);
}

/// A subject's write to `file` (protected) refused, then allowed by
/// alice's one-use warrant; returns the warrant's id (the change id).
fn warranted_file_write(d: &Daemon, file: &str, content: &str) -> String {
    let script = format!("echo {content} > {file}");
    let warrant = warrant_after_refusal(d, || sh_subject(&script), "file.write", file, "10m", 1);
    let written = sh_subject(&script);
    assert!(written.status.success(), "the warranted write failed: {}", written.stderr);
    // The daemon notes the state the change left on its next tick (2 s).
    std::thread::sleep(std::time::Duration::from_secs(3));
    warrant_id(&warrant)
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_warranted_file_change_rolls_back_and_a_later_change_needs_force() {
    let d = daemon();
    // A file of its own in the protected tree (rollback replaces the inode,
    // which other tests' links to PROTECTED_FILE must not see).
    let file = "/etc/sysctl.d/91-rollback.conf";
    let original = "net.ipv4.conf.all.rp_filter=1\n";
    std::fs::write(file, original).unwrap();
    let change = warranted_file_write(d, file, "net.ipv4.ip_forward=1");
    assert_ne!(std::fs::read_to_string(file).unwrap(), original);
    let mark = d.audit_len();
    d.cli_ok(&["rollback", &change]);
    assert_eq!(std::fs::read_to_string(file).unwrap(), original, "the file was not restored");
    let record = d.expect_record_where(mark, "change.rolled_back", |r| r["kind"] == "change.rolled_back");
    assert_eq!(record["change_id"], change.as_str());
    assert_eq!(record["by"]["uid"], "0", "{record}");
    let again = d.run_cli_status(&["rollback", &change]);
    assert!(!again.0 && again.1.contains("already"), "{}", again.1);
    // The restored file is still protected.
    let mark = d.audit_len();
    expect_refused(
        d,
        "a write after the rollback",
        sh_subject(&format!("echo x > {file}")),
        "file.write",
        file,
        "denied-needs-warrant",
        mark,
    );

    // Changed again after the warranted change: refused unless forced.
    let second = warranted_file_write(d, file, "net.ipv4.ip_forward=0");
    std::fs::write(file, "edited by root afterwards\n").unwrap();
    let mark = d.audit_len();
    let refused = d.run_cli_status(&["rollback", &second]);
    assert!(!refused.0 && refused.1.contains("changed again"), "{}", refused.1);
    d.expect_record_where(mark, "rollback.refused", |r| r["kind"] == "rollback.refused");
    d.cli_ok(&["rollback", &second, "--force"]);
    assert_eq!(std::fs::read_to_string(file).unwrap(), original);
    let unknown = d.run_cli_status(&["rollback", "w-nosuchchange"]);
    assert!(!unknown.0 && unknown.1.lines().count() == 1, "{}", unknown.1);
    std::fs::remove_file(file).unwrap();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_warranted_nft_change_rolls_back_by_an_atomic_ruleset_replace() {
    let d = daemon();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "2971", "accept"];
    let warrant = warranted_input_rule(d, &rule, "10m", 1);
    assert!(run_subject(&rule).status.success());
    assert!(nft_root(&["list", "chain", "inet", "filter", "input"]).contains("dport 2971"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mark = d.audit_len();
    d.cli_ok(&["rollback", &warrant_id(&warrant)]);
    let chain = nft_root(&["list", "chain", "inet", "filter", "input"]);
    assert!(!chain.contains("dport 2971"), "{chain}");
    // The rest of the ruleset is as it was: the demo's blocklist set is there.
    assert!(nft_root(&["list", "set", "inet", "filter", "blocklist"]).contains("blocklist"));
    let record = d.expect_record_where(mark, "change.rolled_back", |r| r["kind"] == "change.rolled_back");
    assert_eq!(record["restored"], "the nftables ruleset");
}
