//! The report's sections beside the ratio table: the audit pipeline's,
//! the host's own apply and record figures, and where each loop's time
//! goes inside the programs.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{APPLY_1000_TARGET_MS, AUDIT_RATE_TARGET, ProgramCost, first_and_best};

/// A policy's verification, walk and commit on the host, each run's ms
/// (no commit runs: the host could not make the maps, or a recording from
/// before session 29).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeApply {
    pub rules: u64,
    pub inodes: u64,
    pub verify_ms: Vec<f64>,
    pub walk_ms: Vec<f64>,
    pub commit_ms: Vec<f64>,
}

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

/// The audit pipeline's figures (the VM's, or the host's), under
/// `heading`, named `what` among the misses: records written and lost at
/// each offered rate; a loss at a rate up to `loss_free_up_to` or an
/// unpaced rate under the target goes to `misses`.
pub(super) fn write_audit(
    table: &mut String,
    (heading, what, loss_free_up_to): (&str, &str, u64),
    audits: &[(u64, u64, u64, u64, f64)],
    misses: &mut Vec<String>,
) -> Vec<Value> {
    let mut audit_json = Vec::new();
    if !audits.is_empty() {
        let _ = writeln!(
            table,
            "\n{:<18} {:>10} {:>10} {:>8} {:>16}",
            heading, "decisions", "written", "lost", "written/s"
        );
    }
    for &(rate, ops, written, lost, last_record_s) in audits {
        let sustained = if last_record_s > 0.0 { written as f64 / last_record_s } else { 0.0 };
        let offered = if rate == 0 { "unpaced".to_owned() } else { rate.to_string() };
        let mark = if (rate != 0 && rate <= loss_free_up_to && lost > 0) || (rate == 0 && sustained < AUDIT_RATE_TARGET)
        {
            misses.push(format!("{what} at {offered}/s: {written} of {ops} written, {lost} lost, {sustained:.0}/s"));
            "!"
        } else {
            " "
        };
        let _ = writeln!(table, "{offered:<18} {ops:>10} {written:>10} {lost:>8} {sustained:>15.0}{mark}");
        audit_json.push(json!({"offered_rate": rate, "decisions": ops, "written": written, "lost": lost,
                               "seconds_to_last_record": last_record_s, "written_per_second": sustained}));
    }
    audit_json
}

/// The daemon's handling and recording of one action's decisions on the
/// host (`warrant-bench records`: no ring, the host's own disk).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeRecords {
    pub action: String,
    pub records: u64,
    pub ms: f64,
    /// Where the audit log was (an fdatasync on tmpfs costs nothing).
    pub log_file_system: String,
}

/// The host's record rates; one under the audit target goes to `misses`.
pub(super) fn write_native_records(
    table: &mut String,
    records: &[NativeRecords],
    misses: &mut Vec<String>,
) -> Vec<Value> {
    if records.is_empty() {
        return Vec::new();
    }
    let _ = writeln!(
        table,
        "\naudit records on the host's CPU and disk (the daemon's handling and writing, one fdatasync a drain; \
         no ring)\n{:<18} {:>10} {:>10} {:>12} {:>10}  log on",
        "action", "records", "ms", "records/s", "us each"
    );
    let mut rows = Vec::new();
    for run in records {
        let per_second = if run.ms > 0.0 { run.records as f64 * 1e3 / run.ms } else { 0.0 };
        let micros = if run.records > 0 { run.ms * 1e3 / run.records as f64 } else { 0.0 };
        let mark = if per_second < AUDIT_RATE_TARGET {
            misses.push(format!("{} records on the host: {per_second:.0}/s", run.action));
            "!"
        } else {
            " "
        };
        let _ = writeln!(
            table,
            "{:<18} {:>10} {:>10.1} {per_second:>12.0}{mark}{micros:>10.2}  {}",
            run.action, run.records, run.ms, run.log_file_system
        );
        rows.push(json!({"action": run.action, "records": run.records, "ms": run.ms,
                         "records_per_second": per_second, "log_file_system": run.log_file_system}));
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
        "\nin the programs (BPF run-time statistics on: loops slower than above; trampolines not counted;\n\
         for `nft -f N` a step is one rule of the batch)\n\
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
