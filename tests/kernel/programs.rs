//! Kernel tier: the programs as the kernel verified them. Each must leave
//! headroom under the verifier's budget of 1M processed instructions on
//! every kernel of the matrix, so that a kernel whose verifier explores a
//! little more (as 7.2's did with the old unrolled walks) still loads them.

use std::collections::BTreeMap;

use crate::harness::daemon;

/// Half the budget: what a program may use, at most.
const HEADROOM_BOUND: u64 = 500_000;

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn every_program_keeps_half_the_verifier_budget_free() {
    let d = daemon();
    let log = std::fs::read_to_string(d.dir.join("daemon.log")).expect("the daemon's log");
    // `warrant daemon --verbose`: `... loaded program="NAME" verified_instructions=N budget=1000000`.
    let field = |line: &str, name: &str| -> Option<String> {
        let rest = &line[line.find(&format!("{name}="))? + name.len() + 1..];
        Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
    };
    let mut counts = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("verified_instructions=")) {
        let (Some(program), Some(count)) = (field(line, "program"), field(line, "verified_instructions")) else {
            panic!("unreadable line: {line}");
        };
        let count: u64 = count.parse().unwrap_or_else(|_| panic!("unreadable count: {line}"));
        let most = counts.entry(program).or_insert(0);
        *most = count.max(*most);
    }
    // Back to the host, which prints the heaviest (`cargo xtask test`).
    if let Ok(results) = std::env::var("WARRANT_RESULTS_DIR") {
        let table: String = counts.iter().map(|(program, count)| format!("{program} {count}\n")).collect();
        std::fs::write(std::path::Path::new(&results).join("verified-instructions.txt"), table).unwrap();
    }
    // Every refusing hook program is there (the netlink ones above all).
    assert!(counts.len() >= 30, "only {} programs logged their count: {counts:?}", counts.len());
    let netlink = counts.keys().filter(|p| p.contains("netlink")).count();
    assert!(netlink >= 1, "no netlink program logged its count: {counts:?}");
    let over: Vec<_> = counts.iter().filter(|(_, c)| **c > HEADROOM_BOUND).collect();
    assert!(over.is_empty(), "programs past half the verifier's budget: {over:?}");
}
