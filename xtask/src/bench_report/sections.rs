//! The report's sections beside the ratio table: the host's own apply
//! figures and where each loop's time goes inside the programs.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{APPLY_1000_TARGET_MS, NativeApply, ProgramCost, first_and_best};

/// The host's figures for an apply's verification, walk and, where the
/// host could make the maps, the commit's writes into them; a 1000-rule
/// apply whose best runs add up past the target goes to `misses`.
pub(super) fn write_native_applies(
    table: &mut String,
    applies: &[NativeApply],
    misses: &mut Vec<String>,
) -> Vec<Value> {
    if applies.is_empty() {
        return Vec::new();
    }
    let _ = writeln!(
        table,
        "\npolicy apply on the host's CPU and kernel (ms: first run, best of {}; the commit into maps the \
         bench made, pinned nowhere, no program loaded, matchers resolved, the bundle not persisted)\n\
         {:<18} {:>16} {:>14} {:>14} {:>14} {:>8}",
        applies[0].verify_ms.len(),
        "rules",
        "inodes walked",
        "verify",
        "walk",
        "commit",
        "sum"
    );
    let mut rows = Vec::new();
    for apply in applies {
        let (verify_first, verify_best) = first_and_best(&apply.verify_ms);
        let (walk_first, walk_best) = first_and_best(&apply.walk_ms);
        let commit = (!apply.commit_ms.is_empty()).then(|| first_and_best(&apply.commit_ms));
        let commit_text = match commit {
            Some((first, best)) => format!("{first:>6.1} {best:>7.1}"),
            None => format!("{:>14}", "-"),
        };
        let sum = commit.map(|(_, best)| verify_best + walk_best + best);
        let mark = match sum {
            Some(sum) if apply.rules == 1000 && sum > APPLY_1000_TARGET_MS => {
                misses.push(format!("applying 1000 rules on the host: {sum:.0} ms (target {APPLY_1000_TARGET_MS} ms)"));
                "!"
            }
            _ => " ",
        };
        let sum_text = sum.map_or("-".to_owned(), |sum| format!("{sum:.1}"));
        let _ = writeln!(
            table,
            "{:<18} {:>16} {:>6.1} {:>7.1} {:>6.1} {:>7.1} {commit_text} {sum_text:>8}{mark}",
            apply.rules, apply.inodes, verify_first, verify_best, walk_first, walk_best
        );
        let commit_json = commit.map(|(first, best)| json!({"first": first, "best": best}));
        rows.push(json!({"rules": apply.rules, "inodes": apply.inodes,
                         "verify_ms": {"first": verify_first, "best": verify_best},
                         "walk_ms": {"first": walk_first, "best": walk_best},
                         "commit_ms": commit_json, "sum_of_best_ms": sum}));
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
