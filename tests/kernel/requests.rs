//! Kernel tier: change requests under a flood, the warrant bound to the
//! request its approver was shown, and refusals on the record whichever
//! way they came.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, daemon, repo, run_subject, run_subject_as};

/// The demo policy plus a profile `flooder` that needs a warrant for input
/// rules and may open 3 new requests a minute.
fn flooder_policy() -> String {
    let demo = std::fs::read_to_string(repo().join("policies/demo.toml")).unwrap();
    format!(
        "{demo}\n[[profile]]\nname = \"flooder\"\nrequests_per_minute = 3\n\n\
         [[profile.rule]]\naction = \"nft.rule.add\"\ntarget = \"inet filter input\"\ntier = \"approve\"\n"
    )
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_flood_of_distinct_requests_is_bounded_counted_and_notified_in_batches() {
    let d = daemon();
    d.apply_next_policy(&flooder_policy());
    let mark = d.audit_len();
    // Twelve different rules: twelve distinct would-be requests.
    let script = "for p in $(seq 3001 3012); do nft add rule inet filter input tcp dport $p accept 2>/dev/null && exit 9; done; exit 0";
    let ran = run_subject_as("flooder", &["sh", "-c", script]);
    assert!(ran.status.success(), "a flooder's rule was applied: {}", ran.stderr);

    let flooded = |r: &Value| r["kind"] == "decision" && r["profile"] == "flooder";
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.records_since(mark).iter().filter(|r| flooded(r)).count() < 12 {
        assert!(Instant::now() < deadline, "twelve decisions were not audited");
    }
    // The drops are reported at the daemon's next 2 s tick.
    std::thread::sleep(Duration::from_secs(3));
    let records = d.records_since(mark);
    let decisions: Vec<&Value> = records.iter().filter(|r| flooded(r)).collect();
    assert_eq!(decisions.len(), 12, "every attempt is decided and audited once: {decisions:?}");
    assert!(decisions.iter().all(|r| r["verdict"] == "denied-needs-warrant"), "{decisions:?}");
    let opened: Vec<&str> = decisions.iter().filter_map(|r| r["request"].as_str()).collect();
    assert_eq!(opened.len(), 3, "three requests a minute: {decisions:?}");
    let refused_request: Vec<&Value> = decisions.iter().copied().filter(|r| r["request_dropped"].is_string()).collect();
    assert_eq!(refused_request.len(), 9);
    assert!(refused_request[0]["request_dropped"].as_str().unwrap().contains("flooder opened 3"));
    let reported: u64 = records
        .iter()
        .filter(|r| r["kind"] == "requests.dropped" && r["profile"] == "flooder")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(reported, 9, "requests.dropped records count every drop");

    // One notify run carries the three; the dropped are shown by status and metrics.
    let notified = harness::wait_for_text(&d.dir.join("notified.jsonl"), opened[2]);
    for id in &opened {
        let runs = notified.lines().filter(|l| l.contains(id)).count();
        assert_eq!(runs, 1, "request {id} notified {runs} times");
    }
    for batch in notified.lines().filter(|l| opened.iter().any(|id| l.contains(id))) {
        let batch: Value = serde_json::from_str(batch).expect("a batch is one JSON line");
        assert!(batch["requests"].as_array().is_some_and(|r| !r.is_empty()), "{batch}");
    }
    let status: Value = serde_json::from_str(&d.cli_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["requests"]["dropped"]["flooder"], 9, "{}", status["requests"]);
    assert!(d.cli_ok(&["status"]).contains("dropped past the limits: flooder 9"));
    assert!(d.cli_ok(&["metrics"]).contains("warrant_requests_dropped_total{profile=\"flooder\"} 9"));
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_warrant_binds_the_request_its_approver_saw() {
    let d = daemon();
    let mark = d.audit_len();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "3101", "accept"];
    let denied = run_subject(&rule);
    assert!(denied.stderr.contains("Operation not permitted"), "{}", denied.stderr);
    let decision = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let id = decision["request"].as_str().expect("a change request id").to_owned();
    let warrant = d.approve(&id, "alice", "10m", 1);

    // The request on this host is not what alice was shown: refused, on the record.
    let file = d.dir.join(format!("state/requests/{id}.json"));
    let original = std::fs::read_to_string(&file).unwrap();
    let mut changed: Value = serde_json::from_str(&original).unwrap();
    changed["rendering"] = "[ immediate reg 0 drop ]".into();
    std::fs::write(&file, changed.to_string()).unwrap();
    let mark = d.audit_len();
    let (ok, text) = d.run_cli_status(&["install", warrant.to_str().unwrap()]);
    assert!(!ok && text.contains("is not the one approved"), "{text}");
    let refused = d.expect_record_where(mark, "warrant.refused", |r| r["kind"] == "warrant.refused");
    assert_eq!(refused["via"], "control");
    assert!(refused["warrant_id"].as_str().unwrap().starts_with("w-"), "{refused}");

    std::fs::write(&file, original).unwrap();
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let mark = d.audit_len();
    let applied = run_subject(&rule);
    assert!(applied.status.success(), "{}", applied.stderr);
    d.expect_record(mark, "nft.rule.add", "inet filter input", "allowed-by-warrant");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn every_refused_bundle_is_on_the_record_whichever_way_it_came() {
    let d = daemon();
    let mark = d.audit_len();
    let junk = d.write_file("junk.bundle", "not a bundle");
    let (ok, _) = d.run_cli_status(&["policy", "apply", junk.to_str().unwrap()]);
    assert!(!ok);
    let refused = d.expect_record_where(mark, "policy.refused via control", |r| {
        r["kind"] == "policy.refused" && r["via"] == "control"
    });
    assert!(refused["reason"].as_str().unwrap().contains("bundle refused"), "{refused}");

    // Signed, but by no key this host trusts: too few trusted signatures.
    let (_, stranger) = d.next_bundle_signed_by(
        &std::fs::read_to_string(repo().join("policies/demo.toml")).unwrap(),
        &repo().join("policies/demo-keys/mallory.key"),
    );
    let (ok, text) = d.run_cli_status(&["policy", "apply", stranger.to_str().unwrap()]);
    assert!(!ok && text.contains("no valid signature from a trusted key"), "{text}");
    d.expect_record_where(mark, "policy.refused for too few signatures", |r| {
        r["kind"] == "policy.refused" && r["reason"].as_str().is_some_and(|t| t.contains("need 1, found 0"))
    });

    let dropped_in = d.dir.join("bundles.d/zz-junk.bundle");
    std::fs::write(&dropped_in, "still not a bundle").unwrap();
    d.expect_record_where(mark, "policy.refused via bundle_dir", |r| {
        r["kind"] == "policy.refused"
            && r["via"].as_str().is_some_and(|v| v.starts_with("bundle_dir ") && v.ends_with("zz-junk.bundle"))
    });
    std::fs::remove_file(dropped_in).unwrap();
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_ri_approves_with_an_ssh_key_and_the_kernel_honours_it() {
    let d = daemon();
    let mark = d.audit_len();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "3201", "accept"];
    assert!(run_subject(&rule).stderr.contains("Operation not permitted"));
    let decision = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let id = decision["request"].as_str().expect("a change request id").to_owned();
    // ssh-keygen wants the private key readable by its owner only.
    let key = d.dir.join("dana-ssh");
    std::fs::copy(repo().join("policies/demo-keys/dana-ssh"), &key).unwrap();
    std::fs::copy(repo().join("policies/demo-keys/dana-ssh.pub"), d.dir.join("dana-ssh.pub")).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let warrant = d.dir.join(format!("{id}-dana.warrant"));
    let args = ["approve", &id, "--ssh-key", key.to_str().unwrap(), "--ttl", "10m", "--reason", "kernel tier", "--yes"];
    d.cli_ok(&[&args[..], &["--out", warrant.to_str().unwrap()]].concat());
    assert!(std::fs::read_to_string(&warrant).unwrap().contains("BEGIN SSH SIGNATURE"));
    let installed = d.cli_ok(&["install", warrant.to_str().unwrap()]);
    assert!(installed.contains("approved by dana"), "{installed}");
    let mark = d.audit_len();
    let applied = run_subject(&rule);
    assert!(applied.status.success(), "{}", applied.stderr);
    let used = d.expect_record(mark, "nft.rule.add", "inet filter input", "allowed-by-warrant");
    assert_eq!(used["approver"], "dana");
}

/// `warrant ARGS` run as a subject of the agent profile: (exit code, stdout).
fn agent_warrant(args: &[&str]) -> (i32, String) {
    let d = daemon();
    let bin = harness::warrant_bin();
    let mut full = vec![bin.to_str().unwrap(), "--config", d.config.to_str().unwrap()];
    full.extend_from_slice(args);
    let out = harness::subject_command(&full).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout + &String::from_utf8_lossy(&out.stderr))
}

/// Connects to the query socket (argv[1]) in a child that exits at once,
/// then asks `why` on the connection and prints the answer line.
const ASKED_BY_A_CHILD_GONE: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
child = os.fork()
if child == 0:
    s.connect(sys.argv[1])
    os._exit(0)
os.waitpid(child, 0)
s.sendall(b'{"op":"why","v":2}\n')
print(s.makefile().readline())
"#;

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_agent_learns_why_it_was_refused_and_waits_for_its_approval() {
    let d = daemon();
    let mark = d.audit_len();
    let rule = ["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "3301", "accept"];
    assert!(run_subject(&rule).stderr.contains("Operation not permitted"));
    let decision = d.expect_record(mark, "nft.rule.add", "inet filter input", "denied-needs-warrant");
    let id = decision["request"].as_str().expect("a change request id").to_owned();

    // The agent asks, through the query socket, why.
    let (code, text) = agent_warrant(&["why", "--last", "--json"]);
    assert_eq!(code, 0, "{text}");
    let why: Value = serde_json::from_str(&text).expect("why --json is JSON");
    assert_eq!(why["profile"], "agent");
    let last = &why["denials"][0];
    assert_eq!(last["request"], id.as_str(), "{why}");
    assert_eq!((last["verdict"].as_str(), last["tier"].as_str()), (Some("denied-needs-warrant"), Some("approve")));
    assert!(last["rule"].as_str().unwrap().contains("inet filter input"), "{last}");
    let (code, mine) = agent_warrant(&["requests", "mine", "--json"]);
    assert_eq!(code, 0, "{mine}");
    let mine: Value = serde_json::from_str(&mine).unwrap();
    assert!(mine["requests"].as_array().unwrap().iter().all(|r| r["profile"] == "agent"));
    assert!(mine["requests"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str()));
    // Not a subject: the query socket says nothing.
    let (ok, text) = d.run_cli_status(&["why"]);
    assert!(!ok && text.contains("not a subject"), "{text}");
    // The caller is the connection's maker, as the kernel saw it, not a
    // pid: a child connects and is gone (its pid free for any process)
    // before its parent sends the question.
    let socket = d.dir.join("query/query.sock");
    let asked =
        harness::subject_command(&["python3", "-c", ASKED_BY_A_CHILD_GONE, socket.to_str().unwrap()]).output().unwrap();
    let answer: Value = serde_json::from_slice(&asked.stdout).unwrap_or_else(|_| panic!("{asked:?}"));
    assert_eq!(answer["reply"]["body"]["profile"], "agent", "{answer}");
    // No subject replaces the socket to answer (or reach) other agents.
    let query = d.dir.join("query");
    let swap = format!(
        "rm -f {q}/query.sock; python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"{q}/other.sock\")'",
        q = query.display()
    );
    let ran = run_subject(&["sh", "-c", &swap]);
    assert!(ran.stderr.matches("Operation not permitted").count() >= 2, "{}", ran.stderr);
    assert!(query.join("query.sock").exists() && !query.join("other.sock").exists());

    // The agent waits; an RI approves; the wait ends 0 and the retry applies.
    let bin = harness::warrant_bin();
    let waiting = harness::subject_command(&[
        bin.to_str().unwrap(),
        "--config",
        d.config.to_str().unwrap(),
        "wait",
        &id,
        "--timeout",
        "120s",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let warrant = d.approve(&id, "alice", "10m", 1);
    d.cli_ok(&["install", warrant.to_str().unwrap()]);
    let out = waiting.wait_with_output().unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).expect("wait --json is JSON");
    assert_eq!(out.status.code(), Some(0), "{answer}");
    assert_eq!(answer["status"]["state"], "approved", "{answer}");
    assert!(run_subject(&rule).status.success(), "the approved retry failed");
    // Its one use spent, the request's warrant is expired for the agent.
    assert_eq!(agent_warrant(&["wait", &id, "--timeout", "1s"]).0, 4);

    // Declined by an RI: 3. Nobody answers: 5 at the timeout.
    let mark = d.audit_len();
    assert!(
        run_subject(&["nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "3302", "accept"])
            .stderr
            .contains("Operation not permitted")
    );
    let declined =
        d.expect_record_where(mark, "a request for 3302", |r| r["kind"] == "decision" && r["request"].is_string());
    let declined = declined["request"].as_str().unwrap().to_owned();
    let (code, text) = agent_warrant(&["wait", &declined, "--timeout", "3s"]);
    assert_eq!(code, 5, "{text}");
    d.cli_ok(&["requests", "decline", &declined, "--reason", "use the bastion instead"]);
    let (code, text) = agent_warrant(&["wait", &declined, "--timeout", "10s"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("use the bastion instead"), "{text}");
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_dead_event_reader_is_audited_and_ends_the_daemon() {
    let d = daemon();
    d.kill();
    let mark = d.audit_len();
    // Whatever happens, the daemon runs again for the tests after this one.
    let outcome = std::panic::catch_unwind(|| {
        // A debug build's fault (the daemon under test is the release
        // build): the reader loses its input soon after start.
        let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
            .arg("--config")
            .arg(&d.config)
            .arg("daemon")
            .env("WARRANT_TEST_FAULT", "event-reader")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        while daemon.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = daemon.kill();
                let _ = daemon.wait();
                panic!("the daemon went on without its event reader for 180 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let out = daemon.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "the daemon went on without its event reader: {stderr}");
        assert!(stderr.contains("event reader task stopped"), "{stderr}");
        let failed = d.expect_record_where(mark, "daemon.task_failed", |r| r["kind"] == "daemon.task_failed");
        assert_eq!(failed["task"], "event reader", "{failed}");
        d.expect_record_where(mark, "daemon.stopped", |r| r["kind"] == "daemon.stopped");
    });
    // (That enforcement holds with no daemon: enforcement_survives_sigkill_of_the_daemon_and_a_restart_picks_up.)
    d.restart();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `dev ino` of the file `path` leads to, as the kernel keys inodes (the
/// device of its mount's super block: the VM's /usr is an overlay).
fn kernel_inode(path: &str) -> String {
    let key = warrant::protect::super_block_file_key(std::path::Path::new(path)).unwrap();
    format!("{} {}", warrant::protect::dev_text(key.dev), key.ino)
}

/// Continues a stopped daemon when dropped, whatever the test did.
struct Stopped(u32);

impl Stopped {
    fn daemon(pid: u32) -> Self {
        assert!(std::process::Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap().success());
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
    }
}

#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_decision_names_the_executable_the_kernel_decided() {
    let d = daemon();
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap().display().to_string();
    // A UDP connect to port 53 (allowed for every profile), then an exec
    // of sleep; the daemon reads the decision while the process runs
    // python, or (stopped meanwhile) only after the exec, when /proc
    // names sleep: the record's exe_inode is still python's.
    let script = "import os, socket, sys, time\n\
                  open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n\
                  while not os.path.exists(sys.argv[1] + '.go'): time.sleep(0.02)\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('127.0.0.1', 53))\n\
                  if sys.argv[2] == 'execs': os.execv('/bin/sleep', ['sleep', '60'])\n\
                  else: time.sleep(60)\n";
    for (run, exec) in [("stays", false), ("execs", true)] {
        let pid_file = format!("/run/exe-name-{run}");
        let go = format!("{pid_file}.go");
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&go);
        let mark = d.audit_len();
        // (`warrant run` registers with the daemon: stopped only after.)
        let mut subject = harness::subject_command(&["python3", "-c", script, &pid_file, run]).spawn().unwrap();
        let pid: u32 = harness::wait_for_file(std::path::Path::new(&pid_file)).trim().parse().unwrap();
        let stopped = exec.then(|| Stopped::daemon(d.pid()));
        std::fs::write(&go, "").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let expected = if exec { "sleep" } else { "python" };
        while !std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p.display().to_string().contains(expected))
        {
            assert!(Instant::now() < deadline, "{run}: process {pid} never ran {expected}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The process runs sleep now, if it execs: the daemon reads its event.
        drop(stopped);
        let record = d.expect_record_where(mark, "the subject's loopback decision", |r| {
            r["kind"] == "decision" && r["pid"] == pid && r["action"] == "ipc.loopback"
        });
        let _ = subject.kill();
        let _ = subject.wait();
        // The inode the kernel decided is python's either way; the path is
        // what /proc showed when the daemon read the event.
        assert_eq!(record["exe_inode"], kernel_inode(&python), "{run}: {record}");
        let exe = record["exe"].as_str().unwrap_or_default();
        assert!(if exec { exe.contains("sleep") } else { exe == python }, "{run}: {record}");
    }
}
