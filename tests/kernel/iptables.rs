//! Kernel tier: the other firewall tools. Legacy iptables (its own
//! setsockopt, decided per family), iptables-nft (nftables netlink
//! underneath) and ipset (its own nfnetlink subsystem), as subjects.

use crate::harness::{daemon, run_subject, run_subject_as};

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
