//! Plain tier: the notify examples in deploy/notify/ turn a batch of change
//! requests into one webhook POST, checked against a local HTTP listener.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Accepts one HTTP request, answers 200, returns its path and JSON body.
fn one_post(listener: TcpListener) -> std::thread::JoinHandle<(String, Value)> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        (request_line, serde_json::from_slice(&body).expect("the POST body is JSON"))
    })
}

fn batch() -> Value {
    json!({"host": "web-1", "requests": [{
        "id": "r-0123456789ab", "host": "web-1", "profile": "agent", "action": "nft.rule.add",
        "target": "inet filter input\r\x1b[2K\u{202e}tsilkcolb", "first_seen": 1, "last_seen": 2, "attempts": 3,
        "pid": 42, "uid": 0, "exe": "/opt/<!channel>/ai-agent", "comm": "nft", "policy_version": 4,
        "content_digest": "00000000deadbeef", "rendering": "[ immediate reg 0 accept ]"
    }]})
}

fn run_webhook(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new("python3")
        .arg(repo().join("deploy/notify/webhook.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed (`cargo xtask setup`)");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_batch_becomes_one_chat_message_with_the_change_and_the_approve_command() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/warrant", listener.local_addr().unwrap());
    let received = one_post(listener);
    let out = run_webhook(&["--format", "slack", "--url", &url], &batch().to_string());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (request_line, body) = received.join().unwrap();
    assert!(request_line.starts_with("POST /hooks/warrant "), "{request_line}");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("1 change request(s) on `web-1`"), "{text}");
    assert!(text.contains("warrant approve `r-0123456789ab` --ssh-key"), "{text}");
    // Slack markup from the agent is inert: no mention, no disguised link.
    assert!(text.contains("`/opt/&lt;!channel&gt;/ai-agent`") && !text.contains("<!channel>"), "{text}");
    assert!(text.contains("[ immediate reg 0 accept ]") && text.contains("00000000deadbeef"), "{text}");
    // What the agent chose is shown, not acted on.
    assert!(text.contains("input\\r\\x1b[2K\\u202etsilkcolb"), "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\u{202e}'), "{text:?}");
}

#[test]
fn a_batch_becomes_one_ticket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/intake", listener.local_addr().unwrap());
    let received = one_post(listener);
    let out = run_webhook(&["--format", "ticket", "--url", &url], &batch().to_string());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, body) = received.join().unwrap();
    assert_eq!(body["requests"], json!(["r-0123456789ab"]));
    assert!(body["body"].as_str().unwrap().contains("warrant requests show r-0123456789ab"));
}

#[test]
fn a_failed_post_or_bad_input_says_why_and_exits_1() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = run_webhook(&["--url", &format!("http://127.0.0.1:{port}/")], &batch().to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("webhook.py: POST to") && stderr.lines().count() == 1, "{stderr}");
    let out = run_webhook(&["--url", "http://127.0.0.1:1/"], "not json");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Warrant request batch"));
}
