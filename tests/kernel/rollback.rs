//! Kernel tier: approved changes rolled back, file and nftables alike.

use std::process::Command;

use crate::files::{expect_refused, sh_subject};
use crate::harness::{Daemon, daemon, nft_root, run_subject};
use crate::{warrant_after_refusal, warrant_id, warranted_input_rule};

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
    // A comment nft prints unescaped (an element's is a subject's to write
    // where the policy allows elements): it must come back as a comment,
    // not as commands.
    let comment = "a\" } }\ntable ip injected { }\n#";
    let rule = serde_json::json!({"nftables": [{"add": {"rule": {"family": "inet", "table": "filter",
        "chain": "input", "comment": comment, "expr": [{"accept": null}]}}}]});
    let mut load = Command::new("nft").args(["-j", "-f", "-"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), rule.to_string().as_bytes()).unwrap();
    drop(load.stdin.take());
    assert!(load.wait().unwrap().success(), "root's rule with the comment");
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
    assert!(!nft_root(&["list", "tables"]).contains("injected"), "a comment ran as a command");
    let json = nft_root(&["-j", "list", "chain", "inet", "filter", "input"]);
    assert!(json.contains(&serde_json::Value::from(comment).to_string()), "the comment came back changed: {json}");
    let chain: serde_json::Value = serde_json::from_str(&json).unwrap();
    let handle = chain["nftables"].as_array().unwrap().iter().find(|item| item["rule"]["comment"] == comment).unwrap()
        ["rule"]["handle"]
        .to_string();
    nft_root(&["delete", "rule", "inet", "filter", "input", "handle", &handle]);
    let record = d.expect_record_where(mark, "change.rolled_back", |r| r["kind"] == "change.rolled_back");
    assert_eq!(record["restored"], "the nftables ruleset");
}
