//! `warrant status` for people.

use crate::*;

pub(crate) fn print_status(status: &reply::Status) {
    println!("daemon: {}", render::escape(&status.daemon));
    println!("host: {}", render::escape(&status.host));
    match status.policy_version {
        Some(v) => println!(
            "policy: v{v} (expires {}{})",
            render::escape(status.policy_expires.as_deref().unwrap_or("?")),
            if status.policy_expired == Some(true) { "; EXPIRED, still enforced: apply a new bundle" } else { "" }
        ),
        None => println!("policy: none (subjects are denied every action)"),
    }
    println!("mode: {}", status.mode);
    if status.protected_full {
        println!(
            "protection: PROTECTED is full: files with no entry are decided by their names until a walk finds room \
             (the daemon's, once there is room, or an apply's)"
        );
    }
    for missing in &status.missing_hooks {
        println!("coverage: {}", missing.effect);
    }
    if let Some(profiles) = &status.profiles {
        let names: Vec<_> = profiles.iter().map(|p| render::escape(p)).collect();
        println!("profiles: {}", names.join(", "));
    }
    println!("warrants: {}", status.warrants.len());
    for w in &status.warrants {
        println!(
            "  {} {} {} ({}), uses left {}, by {}",
            render::escape(&w.id),
            render::escape(&w.action),
            render::escape(&w.target),
            render::escape(&w.profile),
            w.uses_left,
            render::escape(&w.approver)
        );
    }
    let dropped: Vec<String> =
        status.requests.dropped.iter().map(|(profile, n)| format!("{} {n}", render::escape(profile))).collect();
    println!(
        "change requests: {} open{}",
        status.requests.open,
        if dropped.is_empty() { String::new() } else { format!("; dropped past the limits: {}", dropped.join(", ")) }
    );
    let parts: Vec<String> = status.decisions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("decisions: {}", if parts.is_empty() { "none yet".to_owned() } else { parts.join(", ") });
}
