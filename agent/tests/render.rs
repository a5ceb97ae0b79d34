//! What people read: agent-chosen text is escaped, JSON stays exact, the
//! approver's view holds the whole change.

use serde_json::{Value, json};
use warrant::{render, requests::ChangeRequest};

/// A chain name that, printed raw, erases its line and prints a harmless one.
const REPAINT: &str = "input\r\x1b[2K\x1b[1Anft.element.add inet filter blocklist";

#[test]
fn control_and_bidi_characters_are_shown_not_acted_on() {
    assert_eq!(render::escape("inet filter input"), "inet filter input");
    assert_eq!(render::escape("a\x1b[31mb"), "a\\x1b[31mb");
    assert_eq!(render::escape("a\nb\rc\td\x7f"), "a\\nb\\rc\\td\\x7f");
    // C1 CSI, right-to-left override, zero-width space, line separator, BOM.
    assert_eq!(render::escape("\u{9b}x\u{202e}y\u{200b}z\u{2028}\u{feff}"), "\\u009bx\\u202ey\\u200bz\\u2028\\ufeff");
    // A typed backslash cannot pass for an escape.
    assert_eq!(render::escape("\\x1b"), "\\\\x1b");
    // Soft hyphen, Mongolian vowel separator, tag characters, private use, a
    // no-break space, an unassigned code point.
    assert_eq!(
        render::escape("a\u{ad}\u{180e}\u{e0041}\u{e000}\u{a0}\u{378}"),
        "a\\u00ad\\u180e\\U000e0041\\ue000\\u00a0\\u0378"
    );
    // Printable text in any script is left alone.
    assert_eq!(render::escape("überwachung 監査"), "überwachung 監査");
    for c in (0u32..0x110000).filter_map(char::from_u32) {
        let shown = render::escape(&c.to_string()).into_owned();
        assert!(
            !shown.chars().any(|s| s.is_control() || ('\u{202a}'..='\u{202e}').contains(&s)),
            "{c:?} shown as {shown:?}"
        );
    }
}

#[test]
fn json_lines_escape_what_serde_json_leaves_raw_and_stay_json() {
    let value = json!({"target": "a\u{85}b\u{202e}c\x1b\u{ad}\u{e0041}\u{a0}"});
    let line = render::json_line(&value);
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(!line.contains('\u{202e}'), "{line:?}");
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), value);
}

fn record(target: &str, exe: &str) -> serde_json::Map<String, Value> {
    let value = json!({"seq": 7, "kind": "decision", "verdict": "denied_needs_warrant", "action": "nft.rule.add",
                       "target": target, "tier": "approve", "message": "1/1", "exe": exe, "pid": 9,
                       "profile": "agent", "request": "r-1", "rule": null, "content": "meta\u{1b}[8m"});
    value.as_object().unwrap().clone()
}

#[test]
fn audit_lines_and_explanations_escape_every_agent_field() {
    let r = record(&format!("inet filter {REPAINT}"), "/tmp/\u{202e}fdp.sh");
    for text in [render::record_line(&r), render::explain(&r)] {
        assert!(!text.contains('\r') && !text.contains('\x1b') && !text.contains('\u{202e}'), "{text:?}");
        assert!(text.contains("input\\r\\x1b[2K"), "{text:?}");
    }
    let other = json!({"seq": 8, "kind": "warrant.refused", "reason": "x\u{9b}2J"});
    let line = render::record_line(other.as_object().unwrap());
    assert!(!line.contains('\u{9b}'), "{line:?}");
}

fn request() -> ChangeRequest {
    ChangeRequest {
        id: "r-0123456789ab".into(),
        host: "web-1".into(),
        profile: "agent".into(),
        action: "nft.rule.add".into(),
        target: format!("inet filter {REPAINT}"),
        first_seen: 1_800_000_000,
        last_seen: 1_800_000_060,
        attempts: 3,
        pid: 42,
        uid: 0,
        exe: "/opt/agents/ai-agent".into(),
        comm: "nft\x1b]0;owned\x07".into(),
        policy_version: 4,
        content_digest: Some("00000000deadbeef".into()),
        rendering: Some("[ payload load 2b @ transport header + 2 => reg 1 ]\n[ immediate reg 0 accept ]".into()),
        declined: None,
    }
}

#[test]
fn the_approvers_view_shows_the_whole_change_escaped() {
    let r = request();
    let view = render::request_view(&r);
    for part in ["web-1", "agent", "nft.rule.add", "/opt/agents/ai-agent", "pid 42", "attempts", "3 (first ", "v4"] {
        assert!(view.contains(part), "{part} missing from {view}");
    }
    assert!(view.contains("exactly this (digest 00000000deadbeef)"), "{view}");
    assert!(view.contains("[ immediate reg 0 accept ]"), "{view}");
    assert!(view.contains(&r.digest()), "{view}");
    assert!(!view.contains('\x1b') && !view.contains('\r') && !view.contains('\x07'), "{view:?}");
}

#[test]
fn the_request_digest_covers_what_is_approved_not_the_counters() {
    let r = request();
    let mut again = r.clone();
    again.attempts += 1;
    again.last_seen += 60;
    again.pid = 43;
    // A warrant may be for several hosts, each holding its own copy.
    again.host = "web-2".into();
    assert_eq!(r.digest(), again.digest());
    for change in [
        |r: &mut ChangeRequest| r.target = "inet filter input".into(),
        |r: &mut ChangeRequest| r.content_digest = None,
        |r: &mut ChangeRequest| r.rendering = Some("other".into()),
        |r: &mut ChangeRequest| r.profile = "ops-bot".into(),
    ] {
        let mut changed = r.clone();
        change(&mut changed);
        assert_ne!(r.digest(), changed.digest(), "{changed:?}");
    }
    assert_eq!(r.digest().len(), 16);
}

fn warrant_cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn approve_shows_what_it_signs_and_binds_the_requests_digest() {
    let dir = std::env::temp_dir().join(format!("warrant-approve-view-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("warrant.toml");
    std::fs::write(&config, format!("state_dir = \"{}\"\n", dir.join("state").display())).unwrap();
    let r = warrant::requests::record(&dir.join("state"), request()).unwrap();
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/demo-keys/alice.key");
    let out = dir.join("w.warrant");
    let approve = |extra: &[&str]| {
        let mut args = vec!["approve", &r.id, "--key", key, "--ttl", "10m", "--reason", "test", "--approver", "alice"];
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        warrant_cli(&config, &args)
    };

    // No terminal to ask on and no --yes: nothing is signed.
    let refused = approve(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("pass --yes"), "{stderr}");
    assert!(stderr.contains("[ immediate reg 0 accept ]"), "the change was not shown: {stderr}");
    assert!(!stderr.contains('\x1b') && !stderr.contains('\r'), "{stderr:?}");
    assert!(!out.exists());

    let signed = approve(&["--yes"]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let envelope = warrant::trust::Envelope::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let approval: warrant::approval::Approval = serde_json::from_str(&envelope.unverified_text().unwrap()).unwrap();
    assert_eq!(approval.request_digest.as_deref(), Some(r.digest().as_str()));
    assert_eq!(approval.content_digest.as_deref(), Some("00000000deadbeef"));

    // `requests show` renders the same view; --json keeps the record exact.
    let shown = warrant_cli(&config, &["requests", "show", &r.id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&r.digest()) && !text.contains('\x1b'), "{text:?}");
    let json = warrant_cli(&config, &["requests", "show", &r.id, "--json"]);
    let exact: ChangeRequest = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(exact, r);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_agents_denial_says_what_it_can_do_next() {
    let view = json!({"seq": 12, "verdict": "denied-needs-warrant", "action": "nft.rule.add",
                      "target": "inet filter in\u{1b}[2Jput", "tier": "approve", "request": "r-abc",
                      "rule": "agent#1: nft.rule.add inet filter input -> approve"});
    let denial = |view: serde_json::Value| render::denial(&serde_json::from_value(view).unwrap());
    let text = denial(view);
    assert!(text.contains("warrant wait r-abc") && !text.contains('\x1b'), "{text:?}");
    let denied = json!({"seq": 13, "verdict": "denied", "action": "nft.chain.delete", "target": "inet filter input",
                        "tier": "deny", "rule": "agent#2: nft.* inet filter * -> deny"});
    assert!(denial(denied).contains("not approvable"));
    let dropped = json!({"seq": 14, "verdict": "denied-needs-warrant", "tier": "approve",
                         "request_dropped": "profile agent opened 6 new change requests this minute (its limit)"});
    assert!(denial(dropped).contains("no change request: profile agent opened 6"));
}

#[test]
fn a_request_id_that_collides_keeps_the_request_the_approver_was_told_of() {
    let dir = std::env::temp_dir().join(format!("warrant-request-collision-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = warrant::requests::record(&dir, request()).unwrap();
    let again = warrant::requests::record(&dir, request()).unwrap();
    assert_eq!(again.attempts, first.attempts + 1, "the same change counts as another attempt");
    let mut other = request();
    other.target = "inet filter input".into();
    let refused = warrant::requests::record(&dir, other).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AlreadyExists, "{refused}");
    let kept = warrant::requests::load(&dir, &first.id).unwrap();
    assert_eq!((kept.target, kept.attempts), (first.target, again.attempts));
    let _ = std::fs::remove_dir_all(&dir);
}
