//! Root deputies a subject asks for what it may not do itself: a root
//! service on a unix socket, on a loopback port, or on any other address of
//! the host's own (class 1 of tests/BYPASS.md).

use std::process::Command;

use crate::{
    confinement::sideways,
    harness::{self, daemon, ip_root},
};

/// A root deputy, stopped when dropped (a failed test leaves no listener
/// for the next one to trip over).
pub(crate) struct Deputy(std::process::Child);

impl std::ops::Deref for Deputy {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Deputy {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Deputy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a root deputy on unix socket `name` (`kind` stream or dgram), or
/// on TCP or UDP port `name` of every address (`kind` tcp or udp), that
/// runs what it is sent.
pub(crate) fn start_deputy(name: &str, kind: &str) -> Deputy {
    let args = match kind {
        "tcp" => vec!["tcp-deputy", name],
        "udp" => vec!["udp-deputy", name],
        _ => vec!["deputy", name, kind],
    };
    let mut deputy = Command::new("python3")
        .arg(harness::helper("sideways.py"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(deputy.stdout.as_mut().unwrap()), &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "the deputy did not start");
    Deputy(deputy)
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_root_deputy_on_a_unix_socket_is_out_of_reach() {
    let d = daemon();
    let script = harness::helper("sideways.py");
    for (name, kind) in
        [("/run/warrant-deputy.sock", "stream"), ("@warrant-deputy", "stream"), ("/run/warrant-deputy.dgram", "dgram")]
    {
        let mut deputy = start_deputy(name, kind);
        let marker = format!("/run/deputy-ran-{}", kind);
        let _ = std::fs::remove_file(&marker);
        // The route is real: root's request runs.
        let root = Command::new("python3").args([&script, "ask", name, kind, &format!("touch {marker}")]).status();
        assert!(root.unwrap().success(), "root could not reach the deputy at {name}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !std::path::Path::new(&marker).exists() {
            assert!(std::time::Instant::now() < deadline, "the deputy at {name} did not run root's command");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::fs::remove_file(&marker).unwrap();
        // The agent asks it to flush the firewall: refused at connect or send.
        let mark = d.audit_len();
        let out = sideways(&["ask", name, kind, &format!("touch {marker}; nft flush ruleset")]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", out.stderr);
        d.expect_record(mark, "ipc.connect", name, "denied");
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(!std::path::Path::new(&marker).exists(), "the deputy at {name} ran the agent's command");
        let _ = deputy.kill();
        let _ = deputy.wait();
    }
    // The journal's socket is allowed for every profile.
    std::fs::create_dir_all("/run/systemd/journal").unwrap();
    let mut journal = start_deputy("/run/systemd/journal/socket", "dgram");
    let mark = d.audit_len();
    let out = sideways(&["ask", "/run/systemd/journal/socket", "dgram", "true"]);
    assert!(out.status.success(), "the journal's socket: {}", out.stderr);
    d.expect_record(mark, "ipc.connect", "/run/systemd/journal/socket", "allowed");
    let _ = journal.kill();
    let _ = journal.wait();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_root_deputy_on_a_loopback_port_is_out_of_reach() {
    let d = daemon();
    let script = harness::helper("sideways.py");
    let mut deputy = start_deputy("2375", "tcp");
    let marker = "/run/deputy-ran-tcp";
    let _ = std::fs::remove_file(marker);
    // The route is real: root's request runs.
    let root =
        Command::new("python3").args([&script, "tcp-ask", "127.0.0.1", "2375", &format!("touch {marker}")]).status();
    assert!(root.unwrap().success(), "root could not reach the deputy on 127.0.0.1:2375");
    assert!(std::path::Path::new(marker).exists(), "the deputy did not run root's command");
    std::fs::remove_file(marker).unwrap();
    // The agent asks it by every loopback spelling: refused at connect.
    let flush = format!("touch {marker}; nft flush ruleset");
    for host in ["127.0.0.1", "127.1.2.3", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1"] {
        let mark = d.audit_len();
        let out = sideways(&["tcp-ask", host, "2375", &flush]);
        assert_eq!(out.status.code(), Some(1), "{host}: {}", out.stderr);
        d.expect_record(mark, "ipc.loopback", "2375", "denied");
    }
    // SMC connects a TCP socket of its own (falling back to plain TCP
    // when the peer speaks no SMC), which passes no hook: root's reaches
    // the deputy, the agent's is decided at its connect.
    let smc_module = Command::new("modprobe").arg("smc").status().unwrap().success();
    let touch = format!("touch {marker}");
    let root = Command::new("python3").args([&script, "smc-ask", "127.0.0.1", "2375", &touch]).status().unwrap();
    const EAFNOSUPPORT: i32 = 97;
    if root.code() == Some(EAFNOSUPPORT) {
        // Debian's 7.2 builds no SMC: there is no such route to close.
        assert!(!smc_module, "smc loaded, yet AF_SMC is not supported");
        println!("deputies: this kernel has no AF_SMC (no smc module): the SMC route does not exist here");
        let out = sideways(&["smc-ask", "127.0.0.1", "2375", &flush]);
        assert_eq!(out.status.code(), Some(EAFNOSUPPORT), "SMC on a kernel without it: {}", out.stderr);
    } else {
        assert!(root.success(), "root's SMC connect to the deputy");
        assert!(std::path::Path::new(marker).exists(), "the deputy did not run root's command over SMC");
        std::fs::remove_file(marker).unwrap();
        let mark = d.audit_len();
        let out = sideways(&["smc-ask", "127.0.0.1", "2375", &flush]);
        assert_eq!(out.status.code(), Some(1), "SMC: {}", out.stderr);
        d.expect_record(mark, "ipc.loopback", "2375", "denied");
    }
    // TCP Fast Open connects from sendto, and UDP sends without a connect
    // (an AF_UNSPEC address too, which UDP takes as AF_INET).
    for (how, args) in [
        ("tfo-ask", vec!["127.0.0.1", "2375", "nft flush ruleset"]),
        ("udp-send", vec!["127.0.0.1", "2375"]),
        ("udp-send-unspec", vec!["127.0.0.1", "2375"]),
    ] {
        let mark = d.audit_len();
        let mut command = vec![how];
        command.extend(args);
        let out = sideways(&command);
        assert_eq!(out.status.code(), Some(1), "{how}: {}", out.stderr);
        d.expect_record(mark, "ipc.loopback", "2375", "denied");
    }
    // A connection root made, held by the subject it starts: decided at its
    // first send, on its peer (TCP ignores an address given with it).
    let d_config = d.config.to_str().unwrap().to_owned();
    let bin = harness::warrant_bin();
    for address in ["-", "8.8.8.8:53"] {
        let mark = d.audit_len();
        let mut held = vec!["connect-keep", "127.0.0.1", "2375", bin.to_str().unwrap(), "--config", &d_config];
        held.extend(["run", "--profile", "agent", "--keep-fd", "7", "--", "python3", &script]);
        held.extend(["send-fd", "7", &flush, address]);
        let out = Command::new("python3").arg(&script).args(&held).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "a held connection, {address}: {out:?}");
        d.expect_record(mark, "ipc.loopback", "2375", "denied");
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!std::path::Path::new(marker).exists(), "the deputy ran the agent's command");
    let _ = deputy.kill();
    let _ = deputy.wait();
    // A local DNS resolver's port is allowed for every profile.
    let mut resolver = start_deputy("53", "tcp");
    let mark = d.audit_len();
    let out = sideways(&["tcp-ask", "127.0.0.1", "53", "true"]);
    assert!(out.status.success(), "the resolver's port: {}", out.stderr);
    d.expect_record(mark, "ipc.loopback", "53", "allowed");
    let _ = resolver.kill();
    let _ = resolver.wait();
}

/// A dummy interface for a test's addresses, deleted when dropped.
struct Interface(&'static str);

impl Interface {
    fn new(name: &'static str) -> Self {
        let _ = Command::new("ip").args(["link", "delete", name]).output();
        let _ = Command::new("modprobe").arg("dummy").status();
        ip_root(&["link", "add", name, "type", "dummy"]);
        ip_root(&["link", "set", name, "up"]);
        Interface(name)
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "delete", self.0]).output();
    }
}

/// Runs `sideways` as a subject until it exits with `code`: the daemon
/// follows the host's addresses within a moment of their change.
fn sideways_until(args: &[&str], code: i32) -> harness::Ran {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = sideways(args);
        if out.status.code() == Some(code) || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A connection to an allowed loopback port is decided once, at its
/// connect: its sends, whose route is lo, are not decided (and recorded)
/// again each.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn sends_on_an_allowed_loopback_connection_are_decided_once() {
    let d = daemon();
    for kind in ["udp", "tcp"] {
        let mark = d.audit_len();
        // Port 53 (a local resolver) is allowed for every profile.
        let out = sideways(&["loopback-sends", kind, "53", "20"]);
        assert!(out.status.success(), "{kind}: {}", out.stderr);
        d.expect_record(mark, "ipc.loopback", "53", "allowed");
        let decisions = d
            .records_since(mark)
            .into_iter()
            .filter(|r| r["kind"] == "decision" && r["action"] == "ipc.loopback")
            .count();
        assert_eq!(decisions, 1, "{kind}: the connect and 20 sends made {decisions} decisions");
    }
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_root_deputy_on_the_hosts_other_addresses_is_out_of_reach() {
    let d = daemon();
    // Addresses the host gains while the daemon runs.
    let interface = Interface::new("wlocal0");
    ip_root(&["addr", "add", "10.77.0.1/24", "dev", interface.0]);
    ip_root(&["addr", "add", "10.77.0.9/32", "dev", interface.0]);
    ip_root(&["addr", "add", "fd77::1/64", "dev", interface.0, "nodad"]);
    let mut deputy = start_deputy("2375", "tcp");
    let marker = "/run/deputy-ran-tcp";
    let _ = std::fs::remove_file(marker);
    // The route is real: root's request through the interface's address runs.
    let root = Command::new("python3")
        .args([&harness::helper("sideways.py"), "tcp-ask", "10.77.0.1", "2375", &format!("touch {marker}")])
        .status();
    assert!(root.unwrap().success(), "root could not reach the deputy on 10.77.0.1:2375");
    assert!(std::path::Path::new(marker).exists(), "the deputy did not run root's command");
    std::fs::remove_file(marker).unwrap();
    // The agent asks it by the host's other addresses: refused at connect.
    let flush = format!("touch {marker}; nft flush ruleset");
    let mark = d.audit_len();
    let out = sideways_until(&["tcp-ask", "10.77.0.1", "2375", &flush], 1);
    assert_eq!(out.status.code(), Some(1), "10.77.0.1: {}", out.stderr);
    d.expect_record(mark, "ipc.loopback", "2375", "denied");
    for host in ["10.77.0.9", "fd77::1", "::ffff:10.77.0.1"] {
        let mark = d.audit_len();
        let out = sideways(&["tcp-ask", host, "2375", &flush]);
        assert_eq!(out.status.code(), Some(1), "{host}: {}", out.stderr);
        d.expect_record(mark, "ipc.loopback", "2375", "denied");
    }
    // Datagrams to what local sockets hear: the subnet's broadcast, a
    // multicast group, IPv6 all-nodes.
    for host in ["10.77.0.255", "224.0.0.1", "ff02::1"] {
        let mark = d.audit_len();
        let out = sideways(&["udp-send", host, "2375"]);
        assert_eq!(out.status.code(), Some(1), "{host}: {}", out.stderr);
        d.expect_record(mark, "ipc.loopback", "2375", "denied");
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!std::path::Path::new(marker).exists(), "the deputy ran the agent's command");
    let _ = deputy.kill();
    let _ = deputy.wait();
    // Another host on the interface's network is not the host itself.
    let out = sideways(&["udp-send", "10.77.0.2", "2375"]);
    assert!(out.status.success(), "a datagram to 10.77.0.2: {}", out.stderr);
    // An address the host gives up is another host's from then on.
    ip_root(&["addr", "delete", "10.77.0.9/32", "dev", interface.0]);
    let out = sideways_until(&["udp-send", "10.77.0.9", "2375"], 0);
    assert!(out.status.success(), "10.77.0.9 after it was deleted: {}", out.stderr);
}

/// An IPv4 datagram the kernel routes out through lo is delivered to the
/// host itself, whatever address it is sent to: a wildcard UDP deputy
/// hears it. The device can be the socket's (SO_BINDTODEVICE,
/// SO_BINDTOIFINDEX, IP_UNICAST_IF, bound after a connect), a send's
/// (IP_PKTINFO, IPV6_PKTINFO for a v4-mapped address), or a route's.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_datagram_routed_out_through_lo_reaches_the_host_whatever_its_address() {
    let d = daemon();
    // 10.78.0.2 is a neighbour, reached through the dummy interface.
    let interface = Interface::new("wlocal1");
    ip_root(&["addr", "add", "10.78.0.1/24", "dev", interface.0]);
    let mut deputy = start_deputy("2375", "udp");
    let script = harness::helper("sideways.py");
    let hows = ["bindtodevice", "bindtoifindex", "unicast-if", "pktinfo", "ipv6-pktinfo", "connect-then-bind"];
    let marker = "/run/deputy-ran-udp";
    // The route is real: root's datagram to the neighbour's address, out
    // through lo, runs at the deputy.
    for how in hows {
        let _ = std::fs::remove_file(marker);
        let sent = Command::new("python3")
            .args([&script, "udp-through-lo", how, "10.78.0.2", "2375", &format!("echo {how} > {marker}")])
            .status();
        assert!(sent.unwrap().success(), "root's {how} datagram was not sent");
        harness::wait_for_text(std::path::Path::new(marker), how);
    }
    std::fs::remove_file(marker).unwrap();
    let flush = format!("touch {marker}; nft flush ruleset");
    for how in hows {
        let mark = d.audit_len();
        let out = sideways(&["udp-through-lo", how, "10.78.0.2", "2375", &flush]);
        assert_eq!(out.status.code(), Some(1), "{how} as a subject: {}", out.stderr);
        d.expect_record(mark, "ipc.loopback", "2375", "denied");
    }
    // A connected socket keeps the route its connect looked up: one made
    // while IP_UNICAST_IF named lo goes on through lo once the option is
    // cleared. Root's socket, sending as root and held by a subject.
    let (config, bin) = (d.config.to_str().unwrap().to_owned(), harness::warrant_bin());
    let keep = ["udp-keep-through-lo", "10.78.0.2", "2375"];
    let root_send = ["/usr/bin/python3", &script, "send-fd", "7", &format!("echo kept > {marker}"), "-"];
    let sent = Command::new("python3").arg(&script).args(keep).args(root_send).status().unwrap();
    assert!(sent.success(), "root's send on the kept route");
    harness::wait_for_text(std::path::Path::new(marker), "kept");
    std::fs::remove_file(marker).unwrap();
    let mark = d.audit_len();
    let mut held = vec![bin.to_str().unwrap(), "--config", &config, "run", "--profile", "agent", "--keep-fd", "7"];
    held.extend(["--", "python3", &script, "send-fd", "7", &flush, "-"]);
    let out = Command::new("python3").arg(&script).args(keep).args(&held).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a held socket on a kept route through lo: {out:?}");
    d.expect_record(mark, "ipc.loopback", "2375", "denied");
    // A route of the main table out through lo, added while the daemon runs.
    let _ = Command::new("ip").args(["route", "del", "10.79.0.0/16"]).output();
    ip_root(&["route", "add", "10.79.0.0/16", "dev", "lo"]);
    let mark = d.audit_len();
    let out = sideways_until(&["udp-send", "10.79.0.5", "2375"], 1);
    ip_root(&["route", "del", "10.79.0.0/16"]);
    assert_eq!(out.status.code(), Some(1), "10.79.0.5 by a route through lo: {}", out.stderr);
    d.expect_record(mark, "ipc.loopback", "2375", "denied");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!std::path::Path::new(marker).exists(), "the deputy ran the agent's command");
    let _ = deputy.kill();
    let _ = deputy.wait();
    // The same datagram out through the neighbour's interface goes.
    let out = sideways(&["udp-send", "10.78.0.2", "2375"]);
    assert!(out.status.success(), "a datagram to 10.78.0.2: {}", out.stderr);
}

/// Packets a subject makes itself reach a local deputy from any address
/// and port, past `ipc.loopback`: a send on a raw IP socket or a packet
/// socket is `net.raw`, and so is setting up what sends with no send
/// hook (an XDP socket, vhost-net's backend). Capture is not an action.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn crafted_packets_are_an_action() {
    let d = daemon();
    let script = harness::helper("sideways.py");
    for how in ["raw-send", "packet-send"] {
        let mark = d.audit_len();
        let out = sideways(&[how, "2375"]);
        assert_eq!(out.status.code(), Some(1), "{how} as a subject: {}", out.stderr);
        d.expect_record(mark, "net.raw", "*", "denied");
        let root = Command::new("python3").args([&script, how, "2375"]).status().unwrap();
        assert!(root.success(), "root's {how}");
    }
    let _ = Command::new("modprobe").arg("vhost_net").status();
    for (how, roots) in [("xdp-setup", None), ("vhost-backend", Some(14))] {
        let mark = d.audit_len();
        let out = sideways(&[how]);
        assert_eq!(out.status.code(), Some(1), "{how} as a subject: {}", out.stderr);
        d.expect_record(mark, "net.raw", "*", "denied");
        if let Some(code) = roots {
            let root = Command::new("python3").args([&script, how]).status().unwrap();
            assert_eq!(root.code(), Some(code), "root's {how}");
        }
    }
    let out = sideways(&["packet-capture"]);
    assert!(out.status.success(), "a subject's capture on lo: {}", out.stderr);
    // ping's ICMP datagram socket (where ping_group_range lets it: systemd
    // sets it) is the kernel's own: not an action.
    let range = "/proc/sys/net/ipv4/ping_group_range";
    let before = std::fs::read_to_string(range).unwrap();
    std::fs::write(range, "0 2147483647").unwrap();
    let out = sideways(&["icmp-echo"]);
    std::fs::write(range, before).unwrap();
    assert!(out.status.success(), "a subject's echo on an ICMP datagram socket: {}", out.stderr);
}
