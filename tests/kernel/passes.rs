//! Kernel tier: a subject's pass (the programs' `passes`), the checks of
//! its last file it skips on the next write, ends when what the checks
//! read changes: the file moved into a tree, its mark cleared, a mount
//! that puts it in a tree, an apply that protects it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use crate::harness::{self, daemon};

/// A subject (python) that holds files open and writes them on command,
/// one answer line each: `open PATH` opens PATH for appending (made if
/// missing: an open that makes its file leaves the pass to the writes)
/// and writes it three times, `write PATH` once more through that fd. An
/// open or write answers `ok` or its errno.
struct Writer {
    child: Child,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
}

const WRITER: &str = r#"
import os, sys
def w(fd):
    try:
        os.write(fd, b'x\n')
        return 'ok'
    except OSError as e:
        return str(e.errno)
fds = {}
for line in sys.stdin:
    verb, path = line.split()
    if verb == 'open':
        try:
            fds[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as e:
            print(e.errno, flush=True)
            continue
        print(' '.join(w(fds[path]) for _ in range(3)), flush=True)
    else:
        print(w(fds[path]), flush=True)
"#;

impl Writer {
    fn spawn() -> Self {
        let mut child = harness::subject_command(&["python3", "-c", WRITER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("warrant run");
        let commands = child.stdin.take().unwrap();
        let answers = BufReader::new(child.stdout.take().unwrap());
        Self { child, commands, answers }
    }

    fn ask(&mut self, verb: &str, path: &str) -> String {
        writeln!(self.commands, "{verb} {path}").unwrap();
        let mut answer = String::new();
        self.answers.read_line(&mut answer).unwrap();
        assert!(!answer.is_empty(), "the writing subject ended: {:?}", self.child.try_wait());
        answer.trim().to_owned()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A subject writes a file three times (the second and third on the pass
/// the first left), then something changes the file's protection or mark
/// while it holds the fd: its next write is checked again. On a tmpfs, a
/// file system passes are kept for.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_subjects_pass_on_its_file_ends_when_the_file_is_protected_or_unmarked() {
    let d = daemon();
    let (base, tree, out) = ("/mnt/96-pass", "/mnt/96-pass/tree", "/mnt/96-pass/out");
    let (source, point) = ("/mnt/96-pass/source", "/mnt/96-pass/tree/point");
    harness::as_root(&format!(
        "mkdir -p {base} && mount -t tmpfs warrant-96 {base} && mkdir {tree} {out} {source} {point}"
    ));
    let (demo, with_tree) = harness::demo_policy_with(&[tree], &[]);
    d.apply_next_policy(&with_tree);
    let mut writer = Writer::spawn();
    let denied_write = |mark: usize, what: &str| {
        d.expect_record_where(mark, what, |r| {
            r["action"] == "file.write" && r["verdict"].as_str().is_some_and(|v| v.starts_with("denied"))
        });
    };

    // Root moves the file into the tree (the kernel gives it the tree's entry).
    let moved = format!("{out}/96-moved.conf");
    assert_eq!(writer.ask("open", &moved), "ok ok ok");
    harness::as_root(&format!("mv {moved} {tree}/96-moved.conf"));
    let mark = d.audit_len();
    assert_eq!(writer.ask("write", &moved), "1", "a subject wrote a file root moved into a protected tree");
    denied_write(mark, "the write after root's move into the tree");

    // Another profile's subject writes the file: its mark replaces the
    // agent's, and the agent's next write takes the file back.
    let shared = format!("{out}/96-shared");
    assert_eq!(writer.ask("open", &shared), "ok ok ok");
    let other = harness::run_subject_as("observer", &["sh", "-c", &format!("echo observer >> {shared}")]);
    assert!(other.status.success(), "observer's write: {}", other.stderr);
    assert_eq!(writer.ask("write", &shared), "ok");
    crate::marks::listed_mark(d, &shared);

    // Root clears the file's mark (the daemon's delete): the next write marks it again.
    let unmarked = format!("{out}/96-unmarked");
    assert_eq!(writer.ask("open", &unmarked), "ok ok ok");
    crate::marks::listed_mark(d, &unmarked);
    d.cli_ok(&["unmark", &unmarked]);
    assert_eq!(writer.ask("write", &unmarked), "ok");
    crate::marks::listed_mark(d, &unmarked);

    // Its directory bind-mounted into the tree: the daemon's mount watcher
    // gives the file its entry, a change no hook makes (and nothing is
    // made in a tree meanwhile, which a hook would count).
    let mounted = format!("{source}/96-mounted.conf");
    assert_eq!(writer.ask("open", &mounted), "ok ok ok");
    // Opened again (the file is there: a pass may cover the open too).
    assert_eq!(writer.ask("open", &mounted), "ok ok ok");
    let mark = d.audit_len();
    harness::as_root(&format!("mount --bind {source} {point}"));
    d.expect_record_where(mark, "the bind mount walked", |r| {
        r["kind"] == "protected.mounts" && r["mounted"].as_array().is_some_and(|p| p.iter().any(|p| p == point))
    });
    let mark = d.audit_len();
    assert_eq!(
        writer.ask("write", &mounted),
        "1",
        "a subject wrote a file mounted into a protected tree since its open"
    );
    denied_write(mark, "the write after the bind mount");
    let mark = d.audit_len();
    assert_eq!(writer.ask("open", &mounted), "1", "a subject opened a file mounted into a protected tree");
    denied_write(mark, "the open after the bind mount");
    harness::as_root(&format!("umount {point}"));

    // An apply that protects the file's directory (the daemon's inserts).
    let applied = format!("{out}/96-applied.conf");
    assert_eq!(writer.ask("open", &applied), "ok ok ok");
    let (_, with_both) = harness::demo_policy_with(&[tree, out], &[]);
    d.apply_next_policy(&with_both);
    let mark = d.audit_len();
    assert_eq!(writer.ask("write", &applied), "1", "a subject wrote a file an apply protected since its open");
    denied_write(mark, "the write after the apply");

    drop(writer);
    d.apply_next_policy(&demo);
    harness::as_root(&format!("umount {base} && rmdir {base}"));
}
