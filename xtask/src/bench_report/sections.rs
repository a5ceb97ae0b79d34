//! The report's sections beside the ratio table: the host's own apply
//! figures and where each loop's time goes inside the programs.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{NativeApply, ProgramCost, first_and_best};

/// The host's figures for an apply's verification and walk (no kernel
/// maps, so no target is checked against them).
pub(super) fn write_native_applies(table: &mut String, applies: &[NativeApply]) -> Vec<Value> {
    if applies.is_empty() {
        return Vec::new();
    }
    let _ = writeln!(
        table,
        "\npolicy apply on the host's CPU, without the kernel's maps (ms: first run, best of {})\n\
         {:<18} {:>16} {:>14} {:>14}",
        applies[0].verify_ms.len(),
        "rules",
        "inodes walked",
        "verify",
        "walk"
    );
    let mut rows = Vec::new();
    for apply in applies {
        let (verify_first, verify_best) = first_and_best(&apply.verify_ms);
        let (walk_first, walk_best) = first_and_best(&apply.walk_ms);
        let _ = writeln!(
            table,
            "{:<18} {:>16} {:>6.1} {:>7.1} {:>6.1} {:>7.1}",
            apply.rules, apply.inodes, verify_first, verify_best, walk_first, walk_best
        );
        rows.push(json!({"rules": apply.rules, "inodes": apply.inodes,
                         "verify_ms": {"first": verify_first, "best": verify_best},
                         "walk_ms": {"first": walk_first, "best": walk_best}}));
    }
    rows
}

/// The table of where each loop's time goes inside the programs.
pub(super) fn write_program_costs(table: &mut String, costs: &[ProgramCost]) -> Vec<Value> {
    if costs.is_empty() {
        return Vec::new();
    }
    let _ = writeln!(
        table,
        "\nin the programs (BPF run-time statistics on: loops slower than above; trampolines not counted)\n\
         {:<18} {:<10} {:>10} {:>12}  costliest: runs per step, ns per run",
        "syscall loop", "who", "ns/step", "programs ns"
    );
    let mut rows = Vec::new();
    for cost in costs {
        let inside = cost.programs_ns_per_op();
        let top: Vec<String> =
            cost.programs.iter().take(3).map(|(name, runs, ns)| format!("{name} {runs:.2} x {ns:.0}")).collect();
        let _ = writeln!(
            table,
            "{:<18} {:<10} {:>10.0} {:>7.0} {:>3.0}%  {}",
            cost.workload,
            cost.state,
            cost.ns_per_op,
            inside,
            100.0 * inside / cost.ns_per_op.max(1.0),
            top.join(", ")
        );
        rows.push(json!({
            "workload": cost.workload, "state": cost.state, "ns_per_op": cost.ns_per_op, "programs_ns_per_op": inside,
            "programs": cost.programs.iter().map(|(p, runs, ns)| json!({"program": p, "runs_per_op": runs, "ns_per_run": ns})).collect::<Vec<_>>(),
        }));
    }
    rows
}
