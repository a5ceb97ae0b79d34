//! Kernel tier: signed bundles and who may sign. Watched directories,
//! expiry, rotation of the signing keys, Responsible Individuals dropped,
//! two-person warrants, signatures by keys that are not an RI's.

use crate::harness::{self, daemon, nft_root, run_subject};
use crate::{warrant_id, warranted_input_rule};

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

/// Breaks persisting a bundle while it lives: the version file's name is
/// taken by a directory (its content is put back on drop, also when the
/// test panics, since every later apply on the shared daemon needs it).
struct UnwritableVersionFile {
    path: std::path::PathBuf,
    text: String,
}

impl UnwritableVersionFile {
    fn new(path: std::path::PathBuf) -> Self {
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        UnwritableVersionFile { path, text }
    }
}

impl Drop for UnwritableVersionFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
        let _ = std::fs::write(&self.path, &self.text);
    }
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_bundle_that_cannot_be_persisted_is_in_force_nowhere() {
    let d = daemon();
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let opened = text.replacen(
        "[[profile.rule]]\naction = \"nft.element.*\"",
        "[[profile.rule]]\naction = \"nft.chain.add\"\ntarget = \"inet filter txnprobe\"\ntier = \"allow\"\n\n\
         [[profile.rule]]\naction = \"nft.element.*\"",
        1,
    );
    assert_ne!(opened, text);
    let chain = ["nft", "add", "chain", "inet", "filter", "txnprobe"];
    let before = d.policy_version();
    let state = d.dir.join("state");
    let bundle_before = std::fs::read(state.join("policy.bundle")).unwrap();
    let (version, bundle) = d.next_bundle(&opened);
    let mark = d.audit_len();
    let fault = UnwritableVersionFile::new(state.join("policy.version"));
    // The bundle file is replaced and the kernel has flipped when the
    // version file cannot be: all of it must be undone.
    let (applied, said) = d.run_cli_status(&["policy", "apply", bundle.to_str().unwrap()]);
    drop(fault);
    assert!(!applied, "a bundle that could not be persisted was applied: {said}");
    assert!(said.contains("could not be persisted"), "{said}");
    assert!(said.contains(&format!("policy v{before} stays in force")), "{said}");
    let error = d.expect_record_where(mark, "policy.error", |r| r["kind"] == "policy.error");
    assert_eq!(error["version"], version, "{error}");
    // In memory, on disk and in the kernel, the policy before is whole.
    assert_eq!(d.policy_version(), before);
    assert!(std::fs::read(state.join("policy.bundle")).unwrap() == bundle_before, "the refused bundle is on disk");
    let mark = d.audit_len();
    let refused = run_subject(&chain);
    assert!(refused.stderr.contains("Operation not permitted"), "the refused policy's rule is in the kernel");
    d.expect_record(mark, "nft.chain.add", "inet filter txnprobe", "denied");
    // Once the fault is gone, the same bundle applies, in the kernel too.
    d.cli_ok(&["policy", "apply", bundle.to_str().unwrap()]);
    assert_eq!(d.policy_version(), version);
    let allowed = run_subject(&chain);
    assert!(allowed.status.success(), "{}", allowed.stderr);
    nft_root(&["delete", "chain", "inet", "filter", "txnprobe"]);
    d.apply_next_policy(&text);
}
