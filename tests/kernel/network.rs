//! Kernel tier: netlink as the kernel reads it. Objects addressed by handle,
//! nfnetlink reads known by type, rtnetlink, xfrm and generic netlink, with
//! the real tools (nft, conntrack, ip, tc) as subjects, and raw netlink
//! (helpers/netlink.py) for what no tool sends.

use std::process::Command;

use crate::harness::{self, daemon, ip_root, nft_root, run_subject};

fn netlink_helper(args: &[&str]) -> harness::Ran {
    let script = harness::helper("netlink.py");
    let mut command = vec!["python3", script.as_str()];
    command.extend_from_slice(args);
    run_subject(&command)
}

/// The handle nft shows for chain `name` of inet filter.
fn chain_handle(name: &str) -> String {
    let listing = nft_root(&["-a", "list", "chain", "inet", "filter", name]);
    let line = listing.lines().find(|l| l.contains(&format!("chain {name} "))).expect("the chain is listed");
    line.rsplit("handle ").next().expect("a handle").trim().to_owned()
}

fn root_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_object_addressed_by_handle_is_decided_on_the_handle_not_the_name() {
    let d = daemon();
    nft_root(&["add", "chain", "inet", "filter", "scratch"]);
    // The policy lets the agent delete `scratch` by name; this DELCHAIN
    // names it but carries the handle of `input`, which the kernel takes.
    let mark = d.audit_len();
    let out = netlink_helper(&["nft-delchain", "filter", "scratch", &chain_handle("input")]);
    assert_eq!(out.status.code(), Some(1), "the by-handle delete was not refused with EPERM: {}", out.stderr);
    assert!(nft_root(&["list", "table", "inet", "filter"]).contains("chain input"), "input was deleted");
    d.expect_record(mark, "nft.chain.delete", "inet filter #handle", "denied");
    // The real nft deleting by handle: only a `*` rule could cover it.
    let mark = d.audit_len();
    let out = run_subject(&["nft", "delete", "chain", "inet", "filter", "handle", &chain_handle("scratch")]);
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    d.expect_record(mark, "nft.chain.delete", "inet filter #handle", "denied");
    // By name, as the policy allows.
    let mark = d.audit_len();
    let out = run_subject(&["nft", "delete", "chain", "inet", "filter", "scratch"]);
    assert!(out.status.success(), "deleting scratch by name: {}", out.stderr);
    assert!(!nft_root(&["list", "table", "inet", "filter"]).contains("scratch"));
    d.expect_record(mark, "nft.chain.delete", "inet filter scratch", "allowed");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn conntrack_writes_are_refused_whatever_their_flags_and_reads_work() {
    let d = daemon();
    // Root loads ctnetlink (subjects may not load modules) and adds an entry.
    root_output("conntrack", &["-L"]);
    let entry = ["-s", "10.61.0.1", "-d", "10.61.0.2", "-p", "tcp", "--sport", "1000", "--dport", "2000"];
    let mut insert = vec!["-I"];
    insert.extend_from_slice(&entry);
    insert.extend_from_slice(&["--state", "ESTABLISHED", "--timeout", "600"]);
    let inserted = root_output("conntrack", &insert);
    let present = || root_output("conntrack", &["-L"]).contains("10.61.0.1");
    assert!(present(), "root could not add a conntrack entry: {inserted}");

    let listed = run_subject(&["conntrack", "-L"]);
    assert!(listed.status.success(), "conntrack -L is a read: {}", listed.stderr);
    let mark = d.audit_len();
    let flushed = run_subject(&["conntrack", "-F"]);
    assert!(!flushed.status.success(), "conntrack -F went through");
    assert!(present(), "the conntrack table was flushed");
    let ct_denied = |r: &serde_json::Value| r["action"] == "nfnetlink.other" && r["verdict"] == "denied";
    d.expect_record_where(mark, "conntrack -F: nfnetlink.other denied", ct_denied);
    // A DELETE dressed with the dump flags: still a DELETE to the kernel.
    let mark = d.audit_len();
    let out = netlink_helper(&["ct-flush-as-dump"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(present(), "a flush with dump flags went through");
    d.expect_record_where(mark, "a flush with dump flags: nfnetlink.other denied", ct_denied);
}

/// A subject's `args` are refused with EPERM and recorded as `action` on `target`.
fn expect_net_refused(d: &harness::Daemon, args: &[&str], action: &str, target: &str) {
    let mark = d.audit_len();
    let out = run_subject(args);
    assert!(!out.status.success(), "{args:?} went through");
    assert!(out.stderr.contains("Operation not permitted"), "{args:?}: {}", out.stderr);
    d.expect_record(mark, action, target, "denied");
}

/// A subject's `args` fail (whatever the tool prints), recorded as a
/// denial of `action` on `target`.
fn expect_net_refused_as(d: &harness::Daemon, args: &[&str], action: &str, target: &str) {
    let mark = d.audit_len();
    let out = run_subject(args);
    assert!(!out.status.success(), "{args:?} went through");
    d.expect_record(mark, action, target, "denied");
}

/// A subject's `args` go through, recorded as `action` on `target`.
fn expect_net_allowed(d: &harness::Daemon, args: &[&str], action: &str, target: &str) {
    let mark = d.audit_len();
    let out = run_subject(args);
    assert!(out.status.success(), "{args:?}: {}", out.stderr);
    d.expect_record(mark, action, target, "allowed");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn the_agent_manages_its_own_interface_and_no_other_however_it_names_them() {
    let d = daemon();
    for stale in ["wagent0", "wother", "wrenamed"] {
        let _ = Command::new("ip").args(["link", "delete", stale]).output();
    }
    ip_root(&["link", "add", "wother", "type", "dummy"]);
    // Made by name, then changed and addressed by index (as `ip` sends
    // them): the kernel names the index, and the policy's rule covers it.
    expect_net_allowed(d, &["ip", "link", "add", "wagent0", "type", "dummy"], "net.link.add", "wagent0");
    expect_net_allowed(d, &["ip", "link", "set", "wagent0", "up"], "net.link.set", "wagent0");
    expect_net_allowed(d, &["ip", "addr", "add", "10.62.7.1/32", "dev", "wagent0"], "net.addr.add", "wagent0");
    assert!(root_output("ip", &["addr", "show", "wagent0"]).contains("10.62.7.1"));
    // tc, found by tcmsg's ifindex: its own interface's qdiscs, not another's
    // nor its own filters (pfifo is built in: nothing to load).
    let qdisc = |dev: &'static str| ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "pfifo", "limit", "10"];
    expect_net_allowed(d, &qdisc("wagent0"), "net.tc.qdisc.add", "wagent0");
    assert!(root_output("tc", &["qdisc", "show", "dev", "wagent0"]).contains("pfifo 1:"));
    expect_net_refused(d, &qdisc("wother"), "net.tc.qdisc.add", "wother");
    assert!(!root_output("tc", &["qdisc", "show", "dev", "wother"]).contains("pfifo 1:"));
    let filter =
        ["tc", "filter", "add", "dev", "wagent0", "parent", "1:", "protocol", "ip", "matchall", "action", "drop"];
    expect_net_refused(d, &filter, "net.tc.filter.add", "wagent0");
    // Another interface, however it is addressed: by name, by its index
    // with the agent's name beside it (which the kernel reads as a rename of
    // wother), by an address on it.
    expect_net_refused(d, &["ip", "link", "set", "wother", "up"], "net.link.set", "wother");
    expect_net_refused(d, &["ip", "link", "set", "dev", "wother", "name", "wagent1"], "net.link.set", "wother");
    expect_net_refused(d, &["ip", "addr", "add", "10.62.7.2/32", "dev", "wother"], "net.addr.add", "wother");
    assert!(root_output("ip", &["link", "show", "wother"]).contains("wother"));
    // Renamed away (down first: before 6.2 a running link keeps its name),
    // the agent's interface is no longer one the rule names.
    expect_net_allowed(d, &["ip", "link", "set", "wagent0", "down"], "net.link.set", "wagent0");
    expect_net_allowed(d, &["ip", "link", "set", "wagent0", "name", "wrenamed"], "net.link.set", "wagent0");
    expect_net_refused(d, &["ip", "link", "delete", "wrenamed"], "net.link.delete", "wrenamed");
    ip_root(&["link", "set", "wrenamed", "name", "wagent0"]);
    expect_net_allowed(d, &["ip", "link", "delete", "wagent0"], "net.link.delete", "wagent0");
    // The agent's name, while no link has it, beside a group: the kernel
    // would change every link of the group (wother's, 7).
    ip_root(&["link", "set", "wother", "group", "7", "mtu", "1500"]);
    let mark = d.audit_len();
    let out = netlink_helper(&["link-group-mtu", "wagent0", "7", "1280"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(root_output("ip", &["link", "show", "wother"]).contains("mtu 1500"), "a group change went through");
    d.expect_record(mark, "net.link.set", "(an interface no name names)", "denied");
    // The agent's name as an alternative name of a link being made: the
    // kernel names a new link by IFLA_IFNAME only (here it would pick dummyN).
    let before = root_output("ip", &["-o", "link", "show"]).lines().count();
    let mark = d.audit_len();
    let out = netlink_helper(&["link-add-altname", "wagent0"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(root_output("ip", &["-o", "link", "show"]).lines().count(), before, "a link was made");
    d.expect_record(mark, "net.link.add", "(an interface no name names)", "denied");
    ip_root(&["link", "delete", "wother"]);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn network_configuration_over_rtnetlink_and_xfrm_is_decided() {
    let d = daemon();
    // Root brings lo up, makes a link to move, and loads xfrm_user.
    ip_root(&["link", "set", "lo", "up"]);
    let _ = Command::new("ip").args(["link", "delete", "wdummy"]).output();
    ip_root(&["link", "add", "wdummy", "type", "dummy"]);
    root_output("ip", &["xfrm", "policy", "list"]);
    for read in
        [&["ip", "route", "show"][..], &["ip", "addr", "show"], &["ip", "-d", "link", "show"], &["ip", "rule", "show"]]
    {
        let out = run_subject(read);
        assert!(out.status.success(), "{read:?} is a read: {}", out.stderr);
    }
    let out = run_subject(&["ip", "xfrm", "policy", "list"]);
    assert!(out.status.success(), "ip xfrm policy list is a read: {}", out.stderr);

    expect_net_refused(d, &["ip", "addr", "add", "10.62.0.1/32", "dev", "lo"], "net.addr.add", "lo");
    assert!(!root_output("ip", &["addr", "show", "lo"]).contains("10.62.0.1"));
    expect_net_refused(d, &["ip", "link", "set", "wdummy", "mtu", "1280"], "net.link.set", "wdummy");
    expect_net_refused(d, &["ip", "link", "set", "wdummy", "down"], "net.link.set", "wdummy");
    expect_net_refused(d, &["ip", "link", "delete", "wdummy"], "net.link.delete", "wdummy");
    expect_net_refused(d, &["ip", "link", "add", "agentdummy", "type", "dummy"], "net.link.add", "agentdummy");
    expect_net_refused(d, &["ip", "link", "set", "wdummy", "netns", "blue"], "net.link.netns", "wdummy");
    assert!(root_output("ip", &["link", "show", "wdummy"]).contains("wdummy"), "wdummy left the host");
    expect_net_refused(d, &["ip", "rule", "add", "from", "10.62.1.0/24", "table", "100"], "net.rule.add", "*");
    expect_net_refused(
        d,
        &["ip", "neigh", "add", "10.62.2.9", "lladdr", "02:00:00:00:00:01", "dev", "wdummy"],
        "net.neigh.add",
        "wdummy",
    );
    expect_net_refused(
        d,
        &["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        "net.tc.qdisc.add",
        "lo",
    );
    expect_net_refused(
        d,
        &["ip", "xfrm", "policy", "add", "src", "10.62.3.0/24", "dst", "10.62.4.0/24", "dir", "out", "action", "block"],
        "net.xfrm.policy.add",
        "*",
    );
    assert!(!root_output("ip", &["xfrm", "policy", "list"]).contains("10.62.3.0"));
    // The interface's IP settings over rtnetlink: what /proc/sys/net
    // protects as a file.
    let forwarding = "/proc/sys/net/ipv4/conf/lo/forwarding";
    let before = std::fs::read_to_string(forwarding).unwrap();
    let mark = d.audit_len();
    let out = netlink_helper(&["link-forwarding", "lo", if before.trim() == "1" { "0" } else { "1" }]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(forwarding).unwrap(), before, "forwarding changed over rtnetlink");
    d.expect_record(mark, "net.conf", "lo", "denied");

    // Routes need a warrant: refused, requested, approved, applied once.
    let route = ["ip", "route", "add", "10.62.5.0/24", "dev", "lo"];
    crate::warrant_after_refusal(d, || run_subject(&route), "net.route.add", "main 10.62.5.0/24", "10m", 1);
    // The warrant names its table and prefix: no other prefix, no other
    // table (RTA_TABLE, which `ip` sends for ids past 255), no host bits
    // the kernel would clear.
    for (other, target) in [
        (&["ip", "route", "add", "10.62.6.0/24", "dev", "lo"][..], "main 10.62.6.0/24"),
        (&["ip", "route", "add", "10.62.5.0/24", "dev", "lo", "table", "1000"], "1000 10.62.5.0/24"),
        (&["ip", "-6", "route", "add", "fd62::1/64", "dev", "lo"], "main fd62::/64"),
    ] {
        let mark = d.audit_len();
        let out = run_subject(other);
        assert!(out.stderr.contains("Operation not permitted"), "{other:?}: {}", out.stderr);
        d.expect_record(mark, "net.route.add", target, "denied-needs-warrant");
    }
    // The same route by ioctl (net-tools' `route add`) never passes
    // netlink_send: decided as net.route.add on a target no warrant names.
    let mark = d.audit_len();
    let out = netlink_helper(&["ioctl-route-add", "10.62.8.0", "255.255.255.0", "lo"]);
    assert_eq!(out.status.code(), Some(1), "SIOCADDRT as a subject: {}", out.stderr);
    assert!(!root_output("ip", &["route", "show"]).contains("10.62.8.0/24"), "a route went in by ioctl");
    d.expect_record(mark, "net.route.add", "(a route no target names)", "denied-needs-warrant");
    let script = harness::helper("netlink.py");
    let root = Command::new("python3")
        .args([script.as_str(), "ioctl-route-add", "10.62.8.0", "255.255.255.0", "lo"])
        .status()
        .unwrap();
    assert!(root.success(), "root's SIOCADDRT (the message is good)");
    ip_root(&["route", "delete", "10.62.8.0/24"]);
    // A bridge made through SIOCGIFBR, whose name says "get".
    let mark = d.audit_len();
    let out = netlink_helper(&["ioctl-bridge-add", "wbrioctl"]);
    assert_eq!(out.status.code(), Some(1), "SIOCGIFBR's BRCTL_ADD_BRIDGE as a subject: {}", out.stderr);
    assert!(!root_output("ip", &["link", "show"]).contains("wbrioctl"), "a bridge went in by ioctl");
    d.expect_denied(mark, "net.link.set");
    // Multicast routing by setsockopt: a register vif is a link (pimreg).
    let mark = d.audit_len();
    let out = netlink_helper(&["mrt-add-vif"]);
    assert_eq!(out.status.code(), Some(1), "MRT_ADD_VIF as a subject: {}", out.stderr);
    d.expect_denied(mark, "net.link.add");
    let root = Command::new("python3").args([script.as_str(), "mrt-add-vif", "pimreg-seen"]).status().unwrap();
    assert!(root.success(), "root's MRT_ADD_VIF makes pimreg");
    let mark = d.audit_len();
    let out = run_subject(&route);
    assert!(out.status.success(), "the warranted route: {}", out.stderr);
    assert!(root_output("ip", &["route", "show"]).contains("10.62.5.0/24"));
    d.expect_record(mark, "net.route.add", "main 10.62.5.0/24", "allowed-by-warrant");
    ip_root(&["route", "delete", "10.62.5.0/24"]);
    // The same link by sysfs: its attributes are RTM_SETLINK by a file.
    let mtu = "/sys/class/net/wdummy/mtu";
    let mark = d.audit_len();
    let out = run_subject(&["sh", "-c", &format!("echo 1280 > {mtu}")]);
    assert!(out.stderr.contains("Operation not permitted"), "a subject's write of {mtu}: {}", out.stderr);
    assert_ne!(std::fs::read_to_string(mtu).unwrap().trim(), "1280", "the MTU changed");
    d.expect_denied(mark, "net.link.set");
    let out = run_subject(&["cat", mtu]);
    assert!(out.status.success(), "a subject reads {mtu}: {}", out.stderr);
    std::fs::write(mtu, "1280").expect("root writes the MTU by sysfs");
    // An anycast address joined by a socket option (a host takes one in a
    // prefix the interface has).
    ip_root(&["addr", "add", "fd62:9::1/64", "dev", "wdummy", "nodad"]);
    let join = "import socket,struct; s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); \
                s.setsockopt(41,27,socket.inet_pton(socket.AF_INET6,'fd62:9::99')+\
                struct.pack('i',socket.if_nametoindex('wdummy')))";
    let mark = d.audit_len();
    let out = run_subject(&["python3", "-c", join]);
    assert!(out.stderr.contains("Operation not permitted"), "IPV6_JOIN_ANYCAST as a subject: {}", out.stderr);
    d.expect_denied(mark, "net.addr.add");
    assert!(Command::new("python3").args(["-c", join]).status().unwrap().success(), "root's IPV6_JOIN_ANYCAST");
    ip_root(&["link", "delete", "wdummy"]);
    // Other tests load `dummy` as a subject to see that refused.
    let _ = Command::new("modprobe").args(["-r", "dummy"]).status();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn generic_netlink_writes_fail_closed_and_family_lookups_work() {
    let d = daemon();
    let lookup = netlink_helper(&["genl-getfamily", "nlctrl"]);
    assert!(lookup.status.success(), "the controller's family lookup is a read: {}", lookup.stderr);
    let mark = d.audit_len();
    // nlctrl command 1 (NEWFAMILY): the kernel itself answers EOPNOTSUPP;
    // for a subject Warrant refuses it first, as an unclassified write.
    let out = netlink_helper(&["genl-write", "nlctrl", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    d.expect_record(mark, "netlink.other", "generic nlctrl cmd 1", "denied");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn wireguard_is_decided_per_command() {
    let d = daemon();
    let _ = Command::new("ip").args(["link", "delete", "wwg0"]).output();
    ip_root(&["link", "add", "wwg0", "type", "wireguard"]);
    let port = || root_output("wg", &["show", "wwg0", "listen-port"]).trim().to_owned();
    assert_eq!(port(), "0");
    // Under the demo policy neither `wg show` (a GET_DEVICE dump: it hands
    // out the private key) nor `wg set` (SET_DEVICE) goes through.
    let show = ["wg", "show", "wwg0"];
    let set = ["wg", "set", "wwg0", "listen-port", "51820"];
    expect_net_refused_as(d, &show, "netlink.other", "generic wireguard get_device");
    expect_net_refused_as(d, &set, "netlink.other", "generic wireguard set_device");
    assert_eq!(port(), "0", "the port changed");
    // Allowed to read its devices, the agent may; not to set them.
    let demo = std::fs::read_to_string("policies/demo.toml").unwrap();
    let anchor = "# Its scratch chain it may delete";
    let rule = |target: &str| {
        format!("[[profile.rule]]\naction = \"netlink.other\"\ntarget = \"{target}\"\ntier = \"allow\"\n\n")
    };
    assert!(demo.contains(anchor));
    let reads = rule("generic wireguard get_device");
    d.apply_next_policy(&demo.replacen(anchor, &format!("{reads}{anchor}"), 1));
    expect_net_allowed(d, &show, "netlink.other", "generic wireguard get_device");
    expect_net_refused_as(d, &set, "netlink.other", "generic wireguard set_device");
    assert_eq!(port(), "0", "the port changed");
    // Allowed to set them too; still not another family (ethtool's).
    let both = format!("{reads}{}{anchor}", rule("generic wireguard set_device"));
    d.apply_next_policy(&demo.replacen(anchor, &both, 1));
    expect_net_allowed(d, &set, "netlink.other", "generic wireguard set_device");
    assert_eq!(port(), "51820");
    let mark = d.audit_len();
    let out = netlink_helper(&["genl-write", "ethtool", "1"]);
    assert_eq!(out.status.code(), Some(1), "ethtool's family went through: {}", out.stderr);
    d.expect_record(mark, "netlink.other", "generic ethtool cmd 1", "denied");
    d.apply_next_policy(&demo);
    ip_root(&["link", "delete", "wwg0"]);
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_add_that_would_update_an_existing_object_is_decided_as_the_update() {
    let d = daemon();
    let _ = Command::new("nft").args(["delete", "table", "inet", "ops"]).output();
    let _ = Command::new("nft").args(["delete", "table", "inet", "mine"]).output();
    nft_root(&["add", "table", "inet", "ops"]);
    nft_root(&["add", "chain", "inet", "ops", "gate", "{ type filter hook input priority 10; policy accept; }"]);
    // The agent may make tables of its own anywhere in inet (the rule goes
    // among the agent profile's rules: TOML appends it to the last profile).
    let demo = std::fs::read_to_string("policies/demo.toml").unwrap();
    let anchor = "# Its scratch chain it may delete";
    let rule = "[[profile.rule]]\naction = \"nft.table.add\"\ntarget = \"inet *\"\ntier = \"allow\"\n\n";
    assert!(demo.contains(anchor));
    let wider = demo.replacen(anchor, &format!("{rule}{anchor}"), 1);
    d.apply_next_policy(&wider);
    let mark = d.audit_len();
    let out = run_subject(&["nft", "create", "table", "inet", "mine"]);
    assert!(out.status.success(), "a new table, as allowed: {}", out.stderr);
    d.expect_record(mark, "nft.table.add", "inet mine", "allowed");
    // `add` on root's table with the dormant flag would switch it off: that
    // is an update, which nothing allows.
    let mark = d.audit_len();
    let out = run_subject(&["nft", "add", "table", "inet", "ops", "{ flags dormant; }"]);
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    assert!(!nft_root(&["list", "table", "inet", "ops"]).contains("dormant"), "root's table went dormant");
    d.expect_record(mark, "nft.table.update", "inet ops", "denied");
    d.apply_next_policy(&demo);
    nft_root(&["delete", "table", "inet", "ops"]);
    nft_root(&["delete", "table", "inet", "mine"]);
}

/// IPsec and IPVS by their older interfaces: a PF_KEY message (here
/// SADB_X_SPDFLUSH, which removes every IPsec policy) is `net.xfrm.other`,
/// and IPVS's setsockopt (IP_VS_SO_SET_FLUSH) is `net.ipvs`; both decided
/// for subjects as their netlink forms are, and root's still work.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn pf_key_and_ipvs_setsockopt_are_decided() {
    let d = daemon();
    for module in ["af_key", "ip_vs"] {
        assert!(Command::new("modprobe").arg(module).status().unwrap().success(), "modprobe {module}");
    }
    ip_root(&["xfrm", "policy", "add", "src", "10.62.9.0/24", "dst", "10.62.10.0/24", "dir", "out", "action", "block"]);
    let mark = d.audit_len();
    let out = netlink_helper(&["pfkey-spdflush"]);
    assert_eq!(out.status.code(), Some(1), "PF_KEY SPDFLUSH as a subject: {}", out.stderr);
    assert!(root_output("ip", &["xfrm", "policy", "list"]).contains("10.62.9.0"), "a subject flushed IPsec policies");
    d.expect_record(mark, "net.xfrm.other", "*", "denied");
    let mark = d.audit_len();
    let out = netlink_helper(&["ipvs-flush"]);
    assert_eq!(out.status.code(), Some(1), "IP_VS_SO_SET_FLUSH as a subject: {}", out.stderr);
    d.expect_record(mark, "net.ipvs", "*", "denied");
    let script = harness::helper("netlink.py");
    for command in ["pfkey-spdflush", "ipvs-flush"] {
        let root = Command::new("python3").args([script.as_str(), command]).status().unwrap();
        assert!(root.success(), "root's {command}");
    }
    assert!(!root_output("ip", &["xfrm", "policy", "list"]).contains("10.62.9.0"), "root's SPDFLUSH");
}
