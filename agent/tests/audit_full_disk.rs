//! Plain tier: a record the disk has no room for leaves no torn line in the
//! chain. In a binary of its own: the file size limit that stands in for a
//! full disk is the whole process's.

use warrant::audit::{self, AuditLog};

fn record(n: u64) -> serde_json::Map<String, serde_json::Value> {
    let mut record = serde_json::Map::new();
    record.insert("kind".into(), "test".into());
    record.insert("n".into(), n.into());
    record
}

fn set_file_size_limit(bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: a valid rlimit for this process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
}

#[test]
fn a_record_that_does_not_fit_leaves_no_torn_line() {
    // SAFETY: ignoring SIGXFSZ makes an over-limit write fail with EFBIG.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = std::env::temp_dir().join(format!("warrant-audit-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path, audit::DEFAULT_MAX_BYTES).unwrap();
    for n in 0..3 {
        log.append(record(n)).unwrap();
    }
    let before = std::fs::metadata(&path).unwrap().len();
    // Room for part of the next line only: the write is cut short.
    set_file_size_limit(before + 40);
    assert!(log.append(record(3)).is_err(), "a record past the limit was written");
    set_file_size_limit(libc::RLIM_INFINITY);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before, "a part of the failed record stayed in the log");
    // The next record follows the last whole one, and the chain holds.
    assert_eq!(log.append(record(4)).unwrap(), 4);
    let summary = audit::verify(&path).expect("the chain verifies");
    assert_eq!(summary.records, 4);
    let _ = std::fs::remove_dir_all(&dir);
}
