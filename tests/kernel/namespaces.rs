//! Kernel tier: network namespaces, made or entered, by every route.

use crate::harness::{self, daemon, run_subject};
use crate::warrant_id;

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
