//! Kernel tier: the real `warrant daemon` with BPF-LSM, and the real `nft`,
//! run as subjects. Run by `cargo xtask test` inside the VM as root; on a
//! plain `cargo test` these show as ignored. Inside the VM nothing here
//! skips: a missing BPF-LSM or a daemon that cannot start fails every test.

mod bundles;
mod confinement;
mod deputies;
mod devices;
mod files;
mod harness;
mod held;
mod iptables;
mod lifecycle;
mod marks;
mod mounts;
mod names;
mod namespaces;
mod network;
mod passes;
mod programs;
mod protected_full;
mod requests;
mod rollback;
mod subjects;

use files::sh_subject;
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
    // 11 and 1000 pre-authorised commands: each a message of one batch, all
    // classified and allowed.
    for (count, base) in [(11, 81), (1000, 82)] {
        let file = d.write_file(&format!("batch-{count}.nft"), &commands(count, base));
        let mark = d.audit_len();
        let out = run_subject(&["nft", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "{count} commands: {}", out.stderr);
        let set = nft_root(&["list", "set", "inet", "filter", "blocklist"]);
        let last = format!("10.{base}.{}.{}", (count - 1) / 200, (count - 1) % 200);
        assert!(set.contains(&last), "{count} commands: {set}");
        let allowed = |r: &serde_json::Value| r["action"] == "nft.element.add" && r["verdict"] == "allowed";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while d.records_since(mark).into_iter().filter(allowed).count() < count {
            assert!(std::time::Instant::now() < deadline, "fewer than {count} allowed records");
        }
        assert_eq!(d.records_since(mark).into_iter().filter(allowed).count(), count, "one record per command");
    }
    // Past what the kernel keeps (1023 actions), the batch is denied whole.
    let mark = d.audit_len();
    let too_long = d.write_file("too_long.nft", &commands(1024, 83));
    let out = run_subject(&["nft", "-f", too_long.to_str().unwrap()]);
    assert!(!out.status.success(), "a batch beyond the bound went through");
    assert!(!nft_root(&["list", "set", "inet", "filter", "blocklist"]).contains("10.83.0.0"));
    d.expect_record_where(mark, "a denied-unparseable record", |r| r["verdict"] == "denied-unparseable");
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
    if !fourth.stderr.contains("Operation not permitted") {
        // Say what the kernel decided, so that a failure here can be told apart.
        let records: Vec<_> = d.records_since(mark).into_iter().filter(|r| r["kind"] == "decision").collect();
        panic!(
            "a fourth change in the minute went through: {:?} {}; decisions since: {records:?}",
            fourth.status, fourth.stderr
        );
    }
    assert!(!nft_root(&["list", "set", "inet", "filter", "blocklist"]).contains("10.8.0.4"));
    let record = d.expect_record(mark, "nft.element.add", "inet filter blocklist", "denied-needs-warrant");
    assert_eq!(record["rate_limited"], true, "{record}");
    assert_eq!(record["tier"], "approve");
    assert!(record["request"].is_string(), "a rate-limited action becomes a change request");
    // The rate is ops-bot's: the agent's own rule for the set has none.
    let agent = run_subject(&["nft", "add", "element", "inet", "filter", "blocklist", "{ 10.8.1.1 }"]);
    assert!(agent.status.success(), "{}", agent.stderr);
}
