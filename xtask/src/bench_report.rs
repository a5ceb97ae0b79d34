//! Turns warrant-bench's JSON lines into ratios: every figure is paired
//! with its baseline from the same round of the same boot, and the median
//! and spread of those per-round ratios are reported. Absolute times (from
//! an emulated CPU) are printed for scale, never compared.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

mod sections;
pub use sections::{NativeApply, NativeRecords};
use sections::{write_audit, write_native_applies, write_native_records, write_program_costs};

/// Ratios a figure is held to (README, issue 13): x1.02 is 2% slower.
pub const NOT_SUBJECT_TARGET: f64 = 1.02;
pub const SUBJECT_TARGET: f64 = 1.05;
pub const NFT_100_TARGET: f64 = 1.05;
pub const RSS_TARGET_KIB: u64 = 25 * 1024;
pub const AUDIT_RATE_TARGET: f64 = 50_000.0;
pub const APPLY_1000_TARGET_MS: f64 = 100.0;

/// (column, measured state, baseline state).
pub const COMPARISONS: [(&str, &str, &str); 4] = [
    ("not a subject", "attached", "detached"),
    ("subject vs unconfined", "subject", "attached"),
    ("subject vs no Warrant", "subject", "detached"),
    ("subject, protected file", "subject_protected", "detached"),
];

/// Median and range of per-round ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub pairs: usize,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Spread { median, min: values[0], max: values[n - 1], pairs: n })
    }

    fn json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max, "pairs": self.pairs})
    }

    fn cell(&self) -> String {
        format!("x{:.3} [{:.2}-{:.2}]", self.median, self.min, self.max)
    }
}

/// The parsed run: samples by (figure, state) then round.
#[derive(Default, Debug)]
pub struct Raw {
    pub samples: BTreeMap<(String, String), BTreeMap<u64, f64>>,
    pub nft: BTreeMap<(u64, String), BTreeMap<u64, f64>>,
    pub verifier: Vec<(String, Option<u64>)>,
    /// (offered rate, 0 = unpaced; opens done; records written; lost; seconds until the last record).
    pub audit: Vec<(u64, u64, u64, u64, f64)>,
    /// The same on the host: its own kernel's ring, CPU and disk.
    pub native_audit: Vec<(u64, u64, u64, u64, f64)>,
    pub scalars: BTreeMap<String, f64>,
    /// (rules, inodes protected, milliseconds the daemon took, by phase).
    pub applies: Vec<(u64, u64, f64, Value)>,
    /// On the host: an apply's verification and walk, no kernel maps.
    pub native_applies: Vec<NativeApply>,
    /// On the host: the daemon's handling and recording of decisions.
    pub native_records: Vec<NativeRecords>,
    pub program_costs: Vec<ProgramCost>,
    /// The VM's clock (`emulated` or `instructions`), from xtask's line;
    /// runs recorded before it was written have none (emulated).
    pub clock: Option<String>,
}

/// The first and the best of `runs`.
fn first_and_best(runs: &[f64]) -> (f64, f64) {
    (runs.first().copied().unwrap_or(0.0), runs.iter().copied().reduce(f64::min).unwrap_or(0.0))
}

/// One sample under the kernel's BPF run-time statistics: the loop's time
/// per step and, per program that ran, its runs per step and time per run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramCost {
    pub workload: String,
    pub state: String,
    pub ns_per_op: f64,
    /// (program, runs per step, ns per run), the costliest first.
    pub programs: Vec<(String, f64, f64)>,
}

impl ProgramCost {
    /// Nanoseconds per step spent inside the programs (their trampolines,
    /// which the kernel's clock does not cover, excluded).
    pub fn programs_ns_per_op(&self) -> f64 {
        self.programs.iter().map(|(_, runs, ns)| runs * ns).sum()
    }
}

pub fn parse(output: &str) -> Result<Raw> {
    let mut raw = Raw::default();
    for (number, line) in output.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("line {}: not JSON: {line}", number + 1))?;
        let text =
            |key: &str| v[key].as_str().map(str::to_owned).with_context(|| format!("line {}: no {key}", number + 1));
        let num = |key: &str| v[key].as_f64().with_context(|| format!("line {}: no number {key}", number + 1));
        match v["kind"].as_str() {
            Some("sample") => {
                let key = (text("workload")?, text("state")?);
                raw.samples.entry(key).or_default().insert(num("round")? as u64, num("ns_per_op")?);
            }
            Some("nft") => {
                let key = (num("batch")? as u64, text("state")?);
                raw.nft.entry(key).or_default().insert(num("round")? as u64, num("ns")?);
            }
            Some(kind @ ("audit" | "native_audit")) => {
                let row = (
                    num("offered_rate")? as u64,
                    num("ops")? as u64,
                    num("written")? as u64,
                    num("lost")? as u64,
                    num("last_record_s")?,
                );
                if kind == "audit" { raw.audit.push(row) } else { raw.native_audit.push(row) }
            }
            Some("verifier") => raw.verifier.push((text("program")?, v["instructions"].as_u64())),
            Some("daemon_start") => _ = raw.scalars.insert("daemon_start_ms".into(), num("ms")?),
            Some("policy_apply") => {
                let mut phases = v["phases_ms"].clone();
                if let Some(running) = v["running_matched"].as_u64().filter(|n| *n > 0)
                    && let Some(p) = phases.as_object_mut()
                {
                    p.insert("running_matched".into(), running.into());
                }
                raw.applies.push((num("rules")? as u64, num("protected_inodes")? as u64, num("ms")?, phases))
            }
            Some("warranted_rule") => _ = raw.scalars.insert("warranted rule end to end, ms".into(), num("ms")?),
            Some("native_apply") => {
                let runs = |key: &str| -> Result<Vec<f64>> {
                    let runs: Vec<f64> = v[key].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
                    if runs.is_empty() {
                        bail!("line {}: no runs in {key}", number + 1);
                    }
                    Ok(runs)
                };
                raw.native_applies.push(NativeApply {
                    rules: num("rules")? as u64,
                    inodes: num("inodes")? as u64,
                    verify_ms: runs("verify_ms")?,
                    walk_ms: runs("walk_ms")?,
                    commit_ms: runs("commit_ms").unwrap_or_default(),
                });
            }
            Some("native_records") => raw.native_records.push(NativeRecords {
                action: text("action")?,
                records: num("records")? as u64,
                ms: num("ms")?,
                log_file_system: text("log_file_system")?,
            }),
            Some("toggle") => {
                for (name, key) in
                    [("detaching every link, ms (max)", "detach_ms"), ("attaching again, ms (max)", "attach_ms")]
                {
                    let slowest = raw.scalars.entry(name.into()).or_default();
                    *slowest = slowest.max(num(key)?);
                }
            }
            Some("program_cost") => {
                let mut programs: Vec<(String, f64, f64)> = v["programs"]
                    .as_object()
                    .with_context(|| format!("line {}: no programs", number + 1))?
                    .iter()
                    .map(|(name, cost)| {
                        (
                            name.clone(),
                            cost["calls_per_op"].as_f64().unwrap_or(0.0),
                            cost["ns_per_call"].as_f64().unwrap_or(0.0),
                        )
                    })
                    .collect();
                programs.sort_by(|a, b| (b.1 * b.2).total_cmp(&(a.1 * a.2)));
                raw.program_costs.push(ProgramCost {
                    workload: text("workload")?,
                    state: text("state")?,
                    ns_per_op: num("ns_per_op")?,
                    programs,
                });
            }
            Some("clock") => raw.clock = Some(text("clock")?),
            // `--protected-full`: every loop ran with files with no entry decided by names.
            Some("protected_full") => {
                _ = raw
                    .scalars
                    .insert("PROTECTED full: keys added to fill it (misses unsettled)".into(), num("filled")?)
            }
            Some("rss") => _ = raw.scalars.insert(format!("rss_kib {}", text("when")?), num("kib")?),
            // Recorded before session 28: the host's walk alone, now part of native_apply.
            Some("native_walk") => {}
            other => bail!("line {}: unknown kind {other:?}", number + 1),
        }
    }
    if raw.samples.is_empty() {
        bail!("the bench printed no samples");
    }
    Ok(raw)
}

/// Per-round ratios of `measured` over `baseline`, for rounds that have both.
pub fn paired(measured: &BTreeMap<u64, f64>, baseline: &BTreeMap<u64, f64>) -> Option<Spread> {
    Spread::of(
        measured.iter().filter_map(|(round, m)| baseline.get(round).filter(|b| **b > 0.0).map(|b| m / b)).collect(),
    )
}

fn median_of(values: &BTreeMap<u64, f64>) -> Option<f64> {
    Spread::of(values.values().copied().collect()).map(|s| s.median)
}

/// The report: a table for people and the same figures as JSON.
pub struct Report {
    pub table: String,
    pub json: Value,
    pub misses: Vec<String>,
}

pub fn report(raw: &Raw) -> Report {
    let mut table = String::new();
    if raw.clock.as_deref() == Some("instructions") {
        let _ = writeln!(
            table,
            "the VM's clock counts instructions (qemu icount): a loop's ns below are instructions the whole VM \
             executed (either vCPU; the us column thousands of them), so its ratios are ratios of instructions, \
             not of time; idle waits (9p reads under exec, the daemon's waits) jump the clock to the next timer, \
             so exec and the daemon's figures (ms, rates a second) are not instruction counts\n"
        );
    }
    let mut misses = Vec::new();
    let mut workloads_json = Vec::new();
    let mut best_lines = Vec::new();
    // Keys are sorted, so each workload's states are next to each other.
    let mut workloads: Vec<&String> = raw.samples.keys().map(|(w, _)| w).collect();
    workloads.dedup();
    let _ = write!(table, "{:<18} {:>12}", "syscall loop", "baseline");
    for (column, _, _) in COMPARISONS {
        let _ = write!(table, " {:>26}", column);
    }
    table.push('\n');
    for workload in workloads {
        let get = |state: &str| raw.samples.get(&(workload.clone(), state.to_owned()));
        let baseline_us = get("detached").and_then(median_of).map(|ns| ns / 1e3);
        let _ =
            write!(table, "{:<18} {:>10}", workload, baseline_us.map(|us| format!("{us:.2}us")).unwrap_or("-".into()));
        let mut ratios = serde_json::Map::new();
        for (column, measured, baseline) in COMPARISONS {
            let spread = get(measured).zip(get(baseline)).and_then(|(m, b)| paired(m, b));
            let target = match column {
                "not a subject" => Some(NOT_SUBJECT_TARGET),
                "subject vs no Warrant" => Some(SUBJECT_TARGET),
                _ => None,
            };
            let mark = match (spread, target) {
                (Some(s), Some(t)) if s.median > t => {
                    misses.push(format!("{workload}, {column}: x{:.3} (target x{t:.2})", s.median));
                    "!"
                }
                _ => " ",
            };
            let _ = write!(table, " {:>25}{mark}", spread.map(|s| s.cell()).unwrap_or("-".into()));
            ratios.insert(measured.to_owned() + "/" + baseline, spread.map(|s| s.json()).unwrap_or(Value::Null));
        }
        table.push('\n');
        let best = |state: &str| get(state).and_then(|m| m.values().copied().reduce(f64::min));
        let best_ratios: serde_json::Map<String, Value> = ["attached", "subject", "subject_protected"]
            .into_iter()
            .filter_map(|state| Some((state.to_owned(), json!(best(state)? / best("detached")?))))
            .collect();
        best_lines.push(format!(
            "{:<18} {}",
            workload,
            best_ratios
                .iter()
                .map(|(k, v)| format!("{k} x{:.3}", v.as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join("  ")
        ));
        workloads_json.push(
            json!({"workload": workload, "baseline_us": baseline_us, "ratios": ratios, "best_of_rounds_vs_detached": best_ratios}),
        );
    }

    let _ = writeln!(table, "\nbest of rounds over best detached (noise only ever slows a loop down):");
    for line in &best_lines {
        let _ = writeln!(table, "  {line}");
    }

    let program_costs_json = write_program_costs(&mut table, &raw.program_costs);

    let mut nft_json = Vec::new();
    let mut batches: Vec<u64> = raw.nft.keys().map(|(b, _)| *b).collect();
    batches.dedup();
    if !batches.is_empty() {
        let _ = writeln!(
            table,
            "\n{:<18} {:>12} {:>12} {:>26} {:>14}",
            "nft -f, rules", "not subject", "subject", "ratio", "us/message"
        );
    }
    for batch in batches {
        let (Some(not), Some(sub)) =
            (raw.nft.get(&(batch, "not_subject".into())), raw.nft.get(&(batch, "subject".into())))
        else {
            continue;
        };
        let spread = paired(sub, not);
        let per_message =
            Spread::of(sub.iter().filter_map(|(r, s)| not.get(r).map(|n| (s - n) / batch as f64 / 1e3)).collect());
        let ms = |m: &BTreeMap<u64, f64>| median_of(m).map(|ns| ns / 1e6).unwrap_or(0.0);
        let mark = match spread {
            Some(s) if batch == 100 && s.median > NFT_100_TARGET => {
                misses
                    .push(format!("nft -f of 100 rules as a subject: x{:.3} (target x{NFT_100_TARGET:.2})", s.median));
                "!"
            }
            _ => " ",
        };
        let _ = writeln!(
            table,
            "{:<18} {:>10.1}ms {:>10.1}ms {:>25}{mark} {:>14}",
            batch,
            ms(not),
            ms(sub),
            spread.map(|s| s.cell()).unwrap_or("-".into()),
            per_message.map(|s| format!("{:.1}", s.median)).unwrap_or("-".into())
        );
        nft_json.push(json!({
            "rules": batch, "not_subject_ms": ms(not), "subject_ms": ms(sub),
            "ratio": spread.map(|s| s.json()), "us_per_message": per_message.map(|s| s.json()),
        }));
    }

    let audit_json = write_audit(&mut table, ("audit, offered/s", "audit", 10_000), &raw.audit, &mut misses);

    let mut applies_json = Vec::new();
    if !raw.applies.is_empty() {
        let _ =
            writeln!(table, "\n{:<18} {:>16} {:>12}  by phase, ms", "policy apply, rules", "inodes protected", "ms");
    }
    for (rules, inodes, ms, phases) in &raw.applies {
        let (rules, inodes, ms) = (*rules, *inodes, *ms);
        let by_phase: Vec<String> = phases
            .as_object()
            .map(|p| p.iter().map(|(name, ms)| format!("{name} {:.0}", ms.as_f64().unwrap_or(0.0))).collect())
            .unwrap_or_default();
        let mark = if rules == 1000 && ms > APPLY_1000_TARGET_MS {
            misses.push(format!("applying {rules} rules: {ms:.0} ms (target {APPLY_1000_TARGET_MS} ms)"));
            "!"
        } else {
            " "
        };
        let _ = writeln!(table, "{rules:<18} {inodes:>16} {ms:>12.1}{mark} {}", by_phase.join(", "));
        applies_json.push(json!({"rules": rules, "protected_inodes": inodes, "ms": ms, "phases_ms": phases}));
    }

    let native_json = write_native_applies(&mut table, &raw.native_applies, &mut misses);
    let records_json = write_native_records(&mut table, &raw.native_records, &mut misses);
    if !raw.native_audit.is_empty() {
        let _ = write!(
            table,
            "\nthe audit pipeline on the host (its kernel's ring, fed by a test-run program; the daemon's reader and records)"
        );
    }
    let native_audit_json =
        write_audit(&mut table, ("offered/s", "audit on the host", 50_000), &raw.native_audit, &mut misses);

    let _ = writeln!(table, "\ndaemon");
    let width = raw.scalars.keys().map(String::len).max().unwrap_or(0);
    for (name, value) in &raw.scalars {
        let _ = writeln!(table, "  {name:<width$} {value:.0}");
        if name.starts_with("rss_kib") && *value as u64 > RSS_TARGET_KIB {
            misses.push(format!("daemon {name}: {value:.0} KiB (target {RSS_TARGET_KIB} KiB)"));
        }
    }
    let mut verifier = raw.verifier.clone();
    verifier.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let total: u64 = verifier.iter().filter_map(|(_, n)| *n).sum();
    let _ = writeln!(table, "  verifier, instructions processed: {total} over {} programs; largest:", verifier.len());
    for (program, n) in verifier.iter().take(5) {
        let _ = writeln!(table, "    {program:<26} {}", n.map(|n| n.to_string()).unwrap_or("unknown".into()));
    }
    if !misses.is_empty() {
        let _ = writeln!(table, "\nmissed targets (marked !):");
        for miss in &misses {
            let _ = writeln!(table, "  {miss}");
        }
    }
    let json = json!({
        "workloads": workloads_json,
        "program_costs": program_costs_json,
        "nft": nft_json,
        "audit": audit_json,
        "audit_records_on_the_host": records_json,
        "audit_on_the_host": native_audit_json,
        "policy_apply": applies_json,
        "policy_apply_on_the_host": native_json,
        "daemon": raw.scalars,
        "clock": raw.clock.as_deref().unwrap_or("emulated"),
        "verifier": verifier.iter().map(|(p, n)| json!({"program": p, "instructions": n})).collect::<Vec<_>>(),
        "missed_targets": misses,
    });
    Report { table, json, misses }
}

#[cfg(test)]
mod tests;
