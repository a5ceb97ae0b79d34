//! Text for people. Chain and set names, file paths, a subject's executable
//! and comm are bytes an agent chooses; printed raw, a carriage return, an
//! escape sequence or a bidi override repaints the approver's terminal (a
//! rule on `inet filter input` shown as a harmless set element). Every such
//! string goes through [`escape`] before it is printed; JSON output stays
//! exact.

use std::{borrow::Cow, fmt::Write as _};

use serde_json::Value;

/// Characters a terminal or a text renderer acts on rather than shows:
/// bidi embeddings, overrides and isolates, zero-width marks and joiners,
/// line and paragraph separators, the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Also what Rust's own Debug would not print as itself (format, private
/// use and unassigned characters, combining marks on their own), and
/// spaces other than ASCII's, which read as a space and are not one.
fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || is_invisible_format(c)
        || (!c.is_ascii() && (c.is_whitespace() || c.escape_debug().nth(1).is_some()))
}

/// `text` with every control character (C0, DEL, C1), every invisible or
/// unprintable character and every non-ASCII space written as a visible
/// escape (`\x1b`, `\u202e`), and a backslash doubled so an escape cannot
/// be forged by typing one.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) && (c as u32) > 0xffff => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A string as [`json_line`] shows it: quoted, escaped.
pub fn quoted(text: &str) -> String {
    json_line(&Value::from(text))
}

/// A JSON value as one line for a person: serde_json already writes C0
/// controls as `\u001b`; C1 controls and format characters, which it leaves
/// raw, are written the same way. The result is still valid JSON.
pub fn json_line(value: &Value) -> String {
    let text = value.to_string();
    // serde_json has escaped `\` and `"` already; anything else `escape`
    // would show is written as JSON escapes (surrogate pairs past U+FFFF).
    let shown = |c: char| c != '\\' && needs_escape(c);
    if !text.chars().any(shown) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if shown(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A record's string field, escaped ("" when absent).
pub fn field<'a>(record: &'a serde_json::Map<String, Value>, name: &str) -> Cow<'a, str> {
    escape(record.get(name).and_then(Value::as_str).unwrap_or(""))
}

/// One audit record on one line.
pub fn record_line(record: &serde_json::Map<String, Value>) -> String {
    let seq = record.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let kind = field(record, "kind");
    if kind != "decision" {
        let mut rest = record.clone();
        for k in ["seq", "prev", "hash", "kind", "time", "host"] {
            rest.remove(k);
        }
        return format!("#{seq} {kind} {}", json_line(&Value::Object(rest)));
    }
    let mut line = format!(
        "#{seq} {} {} {} [{}] {} by {} (pid {}, profile {})",
        field(record, "verdict"),
        field(record, "action"),
        field(record, "target"),
        field(record, "tier"),
        field(record, "message"),
        field(record, "exe"),
        record.get("pid").and_then(Value::as_u64).unwrap_or(0),
        field(record, "profile"),
    );
    if !field(record, "warrant_id").is_empty() {
        let _ = write!(line, " warrant {} approved by {}", field(record, "warrant_id"), field(record, "approver"));
    }
    if !field(record, "request").is_empty() {
        let _ = write!(line, " -> request {}", field(record, "request"));
    }
    line
}

/// `warrant explain`: the record, then why.
pub fn explain(record: &serde_json::Map<String, Value>) -> String {
    let mut out = record_line(record);
    for (label, key) in [
        ("policy version", "policy_version"),
        ("rule", "rule"),
        ("tier", "tier"),
        ("verdict", "verdict"),
        ("warrant", "warrant_id"),
        ("approver", "approver"),
        ("content digest", "content_digest"),
        ("content", "content"),
        ("past its rate", "rate_limited"),
        ("warrant held, not usable", "warrant_unusable"),
        ("change request", "request"),
        ("no change request", "request_dropped"),
        ("mode", "mode"),
    ] {
        match record.get(key) {
            Some(Value::Null) | None => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => {
                let _ = write!(out, "\n  {label}: {}", escape(s));
            }
            Some(v) => {
                let _ = write!(out, "\n  {label}: {}", json_line(v));
            }
        }
    }
    if record.get("rule").is_none_or(Value::is_null) && field(record, "kind") == "decision" {
        out.push_str("\n  no policy rule matched this action and target: unmatched actions are denied");
    }
    out
}

/// Unix seconds as UTC text.
fn time_text(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix)).to_string()
}

/// A change request as the approver reads it before signing: everything the
/// warrant would cover, and who asked how often.
pub fn request_view(request: &crate::requests::ChangeRequest) -> String {
    let r = request;
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "  {label:<14} {value}");
    };
    line("request", &escape(&r.id));
    line("host", &escape(&r.host));
    line("profile", &escape(&r.profile));
    line("action", &escape(&r.action));
    line("target", &escape(&r.target));
    line("requested by", &format!("{} (comm {}, pid {}, uid {})", escape(&r.exe), escape(&r.comm), r.pid, r.uid));
    line("attempts", &format!("{} (first {}, last {})", r.attempts, time_text(r.first_seen), time_text(r.last_seen)));
    line("policy", &format!("v{}", r.policy_version));
    line("digest", &r.digest());
    match (&r.content_digest, &r.rendering) {
        (Some(digest), Some(text)) => {
            line("content", &format!("exactly this (digest {digest}):"));
            for l in text.lines() {
                let _ = writeln!(out, "      {}", escape(l));
            }
        }
        (Some(digest), None) => line("content", &format!("digest {digest} (not rendered: the daemon saw no text)")),
        (None, _) => line("content", "not bound: any content for this action and target"),
    }
    out
}

/// One of an agent's own denials (`warrant why`), with what it can do next.
pub fn denial(view: &crate::query::Denial) -> String {
    let mut out = format!(
        "#{} {} {} {} [{}]",
        view.seq,
        escape(&view.verdict),
        escape(&view.action),
        escape(&view.target),
        escape(&view.tier),
    );
    let rule = view.rule.as_deref().map(escape);
    let _ = write!(out, "\n  rule: {}", rule.as_deref().unwrap_or("none matched: unmatched actions are denied"));
    if let Some(content) = &view.content_digest {
        let _ = write!(out, "\n  content digest: {}", escape(content));
    }
    if let Some(request) = &view.request {
        let request = escape(request);
        let _ = write!(out, "\n  change request: {request} (a person must approve it: `warrant wait {request}`)");
    } else if let Some(dropped) = &view.request_dropped {
        let _ = write!(out, "\n  no change request: {}", escape(dropped));
    } else if view.tier == "deny" || view.tier == "unmatched" {
        out.push_str("\n  not approvable: the policy denies this");
    }
    out
}
