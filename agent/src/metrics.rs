//! Prometheus text exposition of the daemon's counters: served on
//! `metrics_listen` (HTTP) and printed by `warrant metrics`.

use std::{collections::BTreeMap, fmt::Write as _};

/// Decisions by (verdict, action, profile).
pub type DecisionCounts = BTreeMap<(&'static str, &'static str, String), u64>;

/// What the metrics report, read by the thread that owns the daemon's state.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub decisions: DecisionCounts,
    pub warrants_active: u64,
    pub lost_events: u64,
    pub policy_version: Option<u64>,
    pub policy_expired: bool,
    /// The programs are loaded and attached (the daemon runs only then).
    pub enforcement_available: bool,
    pub audit_records: u64,
    /// Change requests on disk.
    pub requests_open: u64,
    /// Approve-tier attempts that opened no request (past the limits), by profile.
    pub requests_dropped: BTreeMap<String, u64>,
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// The Prometheus text format (version 0.0.4) of `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    out.push_str("# HELP warrant_decisions_total Kernel decisions on subjects' actions.\n");
    out.push_str("# TYPE warrant_decisions_total counter\n");
    for ((verdict, action, profile), count) in &snapshot.decisions {
        let _ = writeln!(
            out,
            "warrant_decisions_total{{verdict=\"{}\",action=\"{}\",profile=\"{}\"}} {count}",
            label(verdict),
            label(action),
            label(profile)
        );
    }
    out.push_str("# HELP warrant_lost_events_total Decisions the kernel enforced but could not report (ring full).\n");
    let _ =
        writeln!(out, "# TYPE warrant_lost_events_total counter\nwarrant_lost_events_total {}", snapshot.lost_events);
    gauge(
        &mut out,
        "warrant_warrants_active",
        "Installed warrants not revoked, expired or used up.",
        snapshot.warrants_active,
    );
    gauge(
        &mut out,
        "warrant_policy_version",
        "Version of the policy bundle in force (0: none).",
        snapshot.policy_version.unwrap_or(0),
    );
    gauge(
        &mut out,
        "warrant_policy_expired",
        "1 when the policy in force is past its expiry (still enforced).",
        snapshot.policy_expired as u64,
    );
    gauge(
        &mut out,
        "warrant_enforcement_available",
        "1 when the BPF-LSM programs are loaded and attached.",
        snapshot.enforcement_available as u64,
    );
    gauge(&mut out, "warrant_audit_records", "Records in the audit log chain.", snapshot.audit_records);
    gauge(&mut out, "warrant_requests_open", "Change requests waiting on this host.", snapshot.requests_open);
    out.push_str(
        "# HELP warrant_requests_dropped_total Approve-tier attempts that opened no change request (past the limits).\n",
    );
    out.push_str("# TYPE warrant_requests_dropped_total counter\n");
    for (profile, count) in &snapshot.requests_dropped {
        let _ = writeln!(out, "warrant_requests_dropped_total{{profile=\"{}\"}} {count}", label(profile));
    }
    out
}
