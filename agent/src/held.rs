//! What a running process holds when it is picked up as a subject (by a
//! policy apply, or moved into a matched cgroup) that marking it cannot
//! take back. The kernel decides most holdings when they are used: a write
//! through an fd opened earlier, a send on a socket connected earlier. Two
//! are not decided anywhere:
//! - a shared writable mapping of a protected file: stores through it
//!   reach the file with no hook between;
//! - an io_uring ring polled (SQPOLL) by a thread of another process: what
//!   the subject submits runs in that thread, which is not a subject.
//!
//! The daemon reads them from /proc once the process is marked, and stops
//! a process that holds either (SIGKILL through a pidfd taken first, so a
//! reused pid is never hit). Between the marking and the signal the
//! process runs as it did before the pickup; a process that becomes a
//! subject at exec holds no mappings, and is refused the exec while it
//! holds a ring (agent-ebpf's held.rs).

use std::os::fd::{AsRawFd as _, OwnedFd};

use warrant_common::FileKey;

/// One holding that pickup cannot take back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// A shared writable mapping of protected file `path` (as /proc shows
    /// it, possibly " (deleted)").
    SharedWritableMapping { key: FileKey, path: String },
    /// io_uring fd `fd`, polled by thread `poller` of process `poller_tgid`.
    ForeignRingPoller { fd: u32, poller: i64, poller_tgid: u32 },
}

impl std::fmt::Display for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holding::SharedWritableMapping { path, .. } => {
                write!(f, "a shared writable mapping of protected file {}", path.escape_debug())
            }
            Holding::ForeignRingPoller { fd, poller, poller_tgid } => write!(
                f,
                "io_uring fd {fd}, whose submissions thread {poller} of process {poller_tgid} (not a subject) runs"
            ),
        }
    }
}

/// The file of a shared writable mapping, from one /proc/PID/maps line:
/// `start-end perms offset MAJ:MIN inode path`, with MAJ:MIN in hex.
pub fn shared_writable_mapping(line: &str) -> Option<(FileKey, String)> {
    let mut fields = line.splitn(6, ' ');
    let (_, perms, _, dev, inode) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let perms = perms.as_bytes();
    if perms.len() != 4 || perms[1] != b'w' || perms[3] != b's' {
        return None;
    }
    let ino: u64 = inode.parse().ok()?;
    if ino == 0 {
        return None;
    }
    let (major, minor) = dev.split_once(':')?;
    let (major, minor) = (u64::from_str_radix(major, 16).ok()?, u64::from_str_radix(minor, 16).ok()?);
    let path = fields.next().unwrap_or("").trim_start().to_string();
    // The kernel's own encoding, as PROTECTED is keyed (see protect::kernel_dev).
    Some((FileKey { dev: (major << 20) | minor, ino }, path))
}

/// The poller thread of an io_uring fd, from its /proc/PID/fdinfo text
/// (`SqThread:` is -1 for a ring without SQPOLL, or once its thread is gone).
pub fn ring_poller(fdinfo: &str) -> Option<i64> {
    fdinfo.lines().find_map(|line| line.strip_prefix("SqThread:")?.trim().parse().ok()).filter(|tid| *tid > 0)
}

/// The process a thread belongs to, from /proc/TID/status.
fn tgid_of(tid: i64) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix("Tgid:")?.trim().parse().ok())
}

/// What `pid` holds that pickup cannot take back; `protected` says whether
/// the kernel protects a file. A process whose /proc cannot be read
/// (gone) holds nothing.
pub fn untakeable(pid: u32, protected: impl Fn(&FileKey) -> bool) -> Vec<Holding> {
    let mut found = Vec::new();
    if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        for (key, path) in maps.lines().filter_map(shared_writable_mapping) {
            let holding = Holding::SharedWritableMapping { key, path };
            if protected(&key) && !found.contains(&holding) {
                found.push(holding);
            }
        }
    }
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
        let is_ring =
            std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == "anon_inode:[io_uring]");
        let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if !is_ring {
            continue;
        }
        let fdinfo = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        // A ring whose poller is one of the process's own threads is polled
        // by a subject: pickup marked every thread.
        if let Some(poller) = ring_poller(&fdinfo)
            && let Some(poller_tgid) = tgid_of(poller)
            && poller_tgid != pid
        {
            found.push(Holding::ForeignRingPoller { fd, poller, poller_tgid });
        }
    }
    found
}

/// A handle on `pid` to stop it by, taken before it is inspected.
pub fn handle(pid: u32) -> std::io::Result<OwnedFd> {
    crate::kernel::pidfd_open(pid)
}

/// SIGKILL to the process behind `pidfd` (gone already is not an error).
pub fn stop(pidfd: &OwnedFd) -> std::io::Result<()> {
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0)
    };
    let error = std::io::Error::last_os_error();
    if rc == 0 || error.raw_os_error() == Some(libc::ESRCH) { Ok(()) } else { Err(error) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_writable_file_mappings_are_read_from_proc_maps() {
        let line = "7f1c2a000000-7f1c2a001000 rw-s 00000000 fd:01 1311234                    /etc/hosts";
        let (key, path) = shared_writable_mapping(line).unwrap();
        assert_eq!(key, FileKey { dev: (0xfd << 20) | 1, ino: 1311234 });
        assert_eq!(path, "/etc/hosts");
        let deleted = "7f1c2a000000-7f1c2a001000 rw-s 00000000 103:02 77 /etc/a b (deleted)";
        assert_eq!(shared_writable_mapping(deleted).unwrap().1, "/etc/a b (deleted)");
        // Private, read-only and anonymous mappings are not.
        for other in [
            "7f1c2a000000-7f1c2a001000 rw-p 00000000 fd:01 1311234 /etc/hosts",
            "7f1c2a000000-7f1c2a001000 r--s 00000000 fd:01 1311234 /etc/hosts",
            "7f1c2a000000-7f1c2a001000 rw-s 00000000 00:01 0 /dev/zero (deleted)",
            "7ffd1b3f2000-7ffd1b413000 rw-p 00000000 00:00 0                          [stack]",
            "garbage",
        ] {
            assert_eq!(shared_writable_mapping(other), None, "{other}");
        }
    }

    #[test]
    fn a_ring_poller_is_read_from_fdinfo() {
        let fdinfo =
            "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1055\nSqMask:\t0x3\nSqThread:\t4242\nSqThreadCpu:\t1\n";
        assert_eq!(ring_poller(fdinfo), Some(4242));
        assert_eq!(ring_poller("SqThread:\t-1\nSqThreadCpu:\t-1\n"), None);
        assert_eq!(ring_poller("pos:\t0\n"), None);
    }

    #[test]
    fn holdings_say_what_was_held_with_names_escaped() {
        let holding =
            Holding::SharedWritableMapping { key: FileKey { dev: 1, ino: 2 }, path: "/etc/x\u{1b}[2J".to_string() };
        assert_eq!(holding.to_string(), "a shared writable mapping of protected file /etc/x\\u{1b}[2J");
    }
}
