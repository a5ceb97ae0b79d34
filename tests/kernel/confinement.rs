//! Kernel tier: routes around the firewall that go through something else
//! the kernel does for the subject: signals by the SIGIO route, typing into
//! a terminal, and setting the clock that warrants are checked against.

use std::process::Command;

use crate::harness::{self, daemon, run_subject};

fn sideways(args: &[&str]) -> harness::Ran {
    let script = harness::helper("sideways.py");
    let mut command = vec!["python3", script.as_str()];
    command.extend_from_slice(args);
    run_subject(&command)
}

/// The state letter of process `pid` (`R`, `S`, `T` for stopped, ...).
fn process_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(") ").next().unwrap_or_default().chars().take(1).collect()
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn the_daemon_gets_no_signal_by_the_sigio_route() {
    let d = daemon();
    // The route is real: root stops an ordinary process with it.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let script = harness::helper("sideways.py");
    let root = Command::new("python3").args([&script, "sigio", &sleeper.id().to_string(), "19"]).status().unwrap();
    assert!(root.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(process_state(sleeper.id()), "T", "SIGSTOP by the SIGIO route did not arrive");
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    let mark = d.audit_len();
    let out = sideways(&["sigio", &d.pid().to_string(), "19"]);
    assert!(out.status.success(), "{}", out.stderr);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_ne!(process_state(d.pid()), "T", "a subject stopped the daemon through F_SETOWN/F_SETSIG");
    d.cli_ok(&["status"]);
    d.expect_record(mark, "self.signal", "*", "denied");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_type_into_a_terminal() {
    let d = daemon();
    let script = harness::helper("sideways.py");
    let root = Command::new("python3").args([&script, "tiocsti"]).output().unwrap();
    assert!(root.status.success(), "root's TIOCSTI: {}", String::from_utf8_lossy(&root.stderr));
    let mark = d.audit_len();
    let out = sideways(&["tiocsti"]);
    assert_eq!(out.status.code(), Some(1), "TIOCSTI as a subject: {}", out.stderr);
    d.expect_record(mark, "self.tty", "*", "denied");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn setting_the_clock_is_an_action_the_policy_decides() {
    let d = daemon();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mark = d.audit_len();
    let back = format!("@{}", now() - 86_400);
    let out = run_subject(&["date", "-s", &back]);
    assert!(!out.status.success(), "a subject set the clock back a day");
    assert!(now() > 1_700_000_000 && out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    d.expect_record(mark, "system.clock", "*", "denied");
    // Root, not a subject, still can (to the time it already is).
    let root = Command::new("date").args(["-s", &format!("@{}", now())]).output().unwrap();
    assert!(root.status.success(), "{}", String::from_utf8_lossy(&root.stderr));
}
