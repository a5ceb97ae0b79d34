//! `warrant status` for people.

use crate::*;

pub(crate) fn print_status(status: &Value) {
    println!("daemon: {}", status["daemon"].as_str().unwrap_or("?"));
    println!("host: {}", status["host"].as_str().unwrap_or("?"));
    match status["policy_version"].as_u64() {
        Some(v) => println!(
            "policy: v{v} (expires {}{})",
            status["policy_expires"].as_str().unwrap_or("?"),
            if status["policy_expired"] == true { "; EXPIRED, still enforced: apply a new bundle" } else { "" }
        ),
        None => println!("policy: none (subjects are denied every action)"),
    }
    if let Some(mode) = status["mode"].as_str() {
        println!("mode: {mode}");
    }
    for missing in status["missing_hooks"].as_array().into_iter().flatten() {
        println!("coverage: {}", missing["effect"].as_str().unwrap_or("?"));
    }
    if let Some(profiles) = status["profiles"].as_array() {
        let names: Vec<&str> = profiles.iter().filter_map(Value::as_str).collect();
        println!("profiles: {}", names.join(", "));
    }
    let warrants = status["warrants"].as_array().cloned().unwrap_or_default();
    println!("warrants: {}", warrants.len());
    for w in warrants {
        let text = |name: &str| render::escape(w[name].as_str().unwrap_or("?")).into_owned();
        println!(
            "  {} {} {} ({}), uses left {}, by {}",
            text("id"),
            text("action"),
            text("target"),
            text("profile"),
            w["uses_left"],
            text("approver")
        );
    }
    if let Some(requests) = status["requests"].as_object() {
        let dropped: Vec<String> = requests
            .get("dropped")
            .and_then(Value::as_object)
            .map(|d| d.iter().map(|(profile, n)| format!("{} {n}", render::escape(profile))).collect())
            .unwrap_or_default();
        println!(
            "change requests: {} open{}",
            requests.get("open").and_then(Value::as_u64).unwrap_or(0),
            if dropped.is_empty() {
                String::new()
            } else {
                format!("; dropped past the limits: {}", dropped.join(", "))
            }
        );
    }
    if let Some(counters) = status["decisions"].as_object() {
        let parts: Vec<String> = counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("decisions: {}", if parts.is_empty() { "none yet".to_owned() } else { parts.join(", ") });
    }
}
