//! What a running process holds when it is picked up as a subject (by a
//! policy apply, or moved into a matched cgroup) that marking it cannot
//! take back. The kernel decides most holdings when they are used: a write
//! through an fd opened earlier, a send on a socket connected earlier.
//! These are not decided anywhere:
//! - a shared writable mapping of a protected file: stores through it
//!   reach the file with no hook between;
//! - an io_uring ring polled (SQPOLL) by a thread of another process: what
//!   the subject submits runs in that thread, which is not a subject;
//! - a ptrace attachment to a process outside its profile: PTRACE_POKE*
//!   writes its memory and registers with no hook between (the kernel
//!   says whom it traces: `Kernel::traced_tasks`, one walk per pickup).
//!
//! The daemon reads them from /proc once the process is marked, and stops
//! a process that holds any (SIGKILL through a pidfd taken first, so a
//! reused pid is never hit). Between the marking and the signal the
//! process runs as it did before the pickup; a process that becomes a
//! subject at exec holds no mappings, and is refused the exec while it
//! holds a ring or traces a task (agent-ebpf's held.rs).

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
    /// An io_uring ring (inode `ino`) mapped with no fd left to ask who
    /// polls it.
    RingWithoutFd { ino: u64 },
    /// A shared writable mapping of block device `path`.
    BlockDeviceMapping { path: String },
    /// fd `fd` open for writing on the memory of another process (`owner`):
    /// `/proc/PID/mem`, whose writes run code there, unconfined.
    ProcessMemory { fd: u32, owner: u32 },
    /// A ptrace attachment to thread `tid` of process `tgid`, not a
    /// subject of the same profile: its PTRACE_POKE* run code there,
    /// unconfined, and pass no hook.
    Tracee { tgid: u32, tid: u32 },
    /// What the process holds could not be read.
    Unreadable { reason: String },
    /// Not every thread of it could be marked.
    Unmarked,
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
            Holding::RingWithoutFd { ino } => write!(f, "an io_uring ring (inode {ino}) mapped without its fd"),
            Holding::BlockDeviceMapping { path } => {
                write!(f, "a shared writable mapping of block device {}", path.escape_debug())
            }
            Holding::ProcessMemory { fd, owner } => {
                write!(f, "fd {fd} open for writing on the memory of process {owner}")
            }
            Holding::Tracee { tgid, tid } => write!(f, "a ptrace attachment to thread {tid} of process {tgid}"),
            Holding::Unreadable { reason } => write!(f, "what it holds could not be read ({reason})"),
            Holding::Unmarked => write!(f, "threads that could not all be marked as subjects"),
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

/// What `pid` holds that pickup cannot take back, looked at through every
/// thread (a thread may have its own fd table; a leader that has exited
/// shows none). `protected` says whether the kernel protects a file;
/// `subject_poller` whether a process is a subject of the same profile (a
/// ring its thread polls is the subject's own). Err: a thread that still
/// exists could not be read, which the caller treats as holding something;
/// one that is gone holds nothing.
pub fn untakeable(
    pid: u32,
    protected: impl Fn(&FileKey) -> bool,
    subject_poller: impl Fn(u32) -> bool,
) -> Result<Vec<Holding>, String> {
    // A thread (or the process) that is gone holds nothing.
    let unreadable = |dir: &std::path::Path, what: &str, e: std::io::Error| {
        if dir.exists() { Err(format!("{}/{what}: {e}", dir.display())) } else { Ok(()) }
    };
    let mut found = Vec::new();
    let mut ring_files = Vec::new();
    let mut mapped_rings = Vec::new();
    let process = std::path::PathBuf::from(format!("/proc/{pid}"));
    let threads = match std::fs::read_dir(process.join("task")) {
        Ok(threads) => threads,
        Err(e) => return unreadable(&process, "task", e).map(|()| found),
    };
    for thread in threads.flatten() {
        let dir = thread.path();
        // As bytes: a mapped path need not be UTF-8, and one that is not
        // must not make the process unreadable (and so stopped).
        match std::fs::read(dir.join("maps")).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()) {
            Ok(maps) => {
                for line in maps.lines() {
                    if let Some(ino) = ring_mapping(line) {
                        mapped_rings.push(ino);
                    }
                    let Some((key, path)) = shared_writable_mapping(line) else { continue };
                    // A block device's mapping writes under every file check.
                    let holding = if protected(&key) {
                        Holding::SharedWritableMapping { key, path }
                    } else if maps_block_device(&dir, line) {
                        Holding::BlockDeviceMapping { path }
                    } else {
                        continue;
                    };
                    if !found.contains(&holding) {
                        found.push(holding);
                    }
                }
            }
            Err(e) => unreadable(&dir, "maps", e)?,
        }
        let fds = match std::fs::read_dir(dir.join("fd")) {
            Ok(fds) => fds,
            Err(e) => {
                unreadable(&dir, "fd", e)?;
                continue;
            }
        };
        for entry in fds.flatten() {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            let is_ring = target.as_os_str() == "anon_inode:[io_uring]";
            let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
            let fdinfo = || std::fs::read_to_string(dir.join("fdinfo").join(fd.to_string())).unwrap_or_default();
            if let Some(owner) = memory_of(&target)
                && owner != pid
                && opened_for_writing(&fdinfo())
            {
                let holding = Holding::ProcessMemory { fd, owner };
                if !found.contains(&holding) {
                    found.push(holding);
                }
            }
            if !is_ring {
                continue;
            }
            let fdinfo = fdinfo();
            ring_files.extend(fdinfo_inode(&fdinfo));
            // A ring polled by a subject of the same profile (the process's
            // own thread, once marked, or its parent's in a child made
            // during the pickup) is the subject's.
            if let Some(poller) = ring_poller(&fdinfo)
                && let Some(poller_tgid) = tgid_of(poller)
                && !subject_poller(poller_tgid)
            {
                let holding = Holding::ForeignRingPoller { fd, poller, poller_tgid };
                if !found.contains(&holding) {
                    found.push(holding);
                }
            }
        }
    }
    // A ring still mapped after its fd was closed: its poller cannot be named.
    for ino in mapped_rings {
        let holding = Holding::RingWithoutFd { ino };
        if !ring_files.contains(&ino) && !found.contains(&holding) {
            found.push(holding);
        }
    }
    Ok(found)
}

/// Whether the mapping of maps `line` (shown by thread directory `dir`)
/// is of a block device: its map_files entry leads to the file itself.
fn maps_block_device(dir: &std::path::Path, line: &str) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    let Some(range) = line.split(' ').next() else { return false };
    // map_files is per process: the thread's directory has none.
    let process = dir.parent().and_then(|tasks| tasks.parent()).unwrap_or(dir);
    std::fs::metadata(process.join("map_files").join(range)).is_ok_and(|m| m.file_type().is_block_device())
}

/// The process whose memory `target` (an fd's link) is: `/proc/PID/mem`
/// or `/proc/PID/task/TID/mem`.
fn memory_of(target: &std::path::Path) -> Option<u32> {
    let mut parts = target.to_str()?.strip_prefix("/proc/")?.split('/');
    let pid = parts.next()?.parse().ok()?;
    match (parts.next()?, parts.next(), parts.next(), parts.next()) {
        ("mem", None, ..) => Some(pid),
        ("task", Some(tid), Some("mem"), None) if tid.parse::<u32>().is_ok() => Some(pid),
        _ => None,
    }
}

/// Whether an fdinfo text's `flags:` (octal) open the file for writing.
fn opened_for_writing(fdinfo: &str) -> bool {
    let flags = fdinfo.lines().find_map(|line| line.strip_prefix("flags:")).map(str::trim);
    flags.and_then(|octal| u32::from_str_radix(octal, 8).ok()).is_none_or(|flags| flags & 3 != 0)
}

/// The inode of an io_uring ring mapped by one /proc/PID/maps line.
fn ring_mapping(line: &str) -> Option<u64> {
    let mut fields = line.splitn(6, ' ');
    let inode = fields.nth(4)?;
    (fields.next()?.trim_start() == "anon_inode:[io_uring]").then(|| inode.parse().ok()).flatten()
}

/// The `ino:` line of an fdinfo text.
fn fdinfo_inode(fdinfo: &str) -> Option<u64> {
    fdinfo.lines().find_map(|line| line.strip_prefix("ino:")?.trim().parse().ok())
}

/// A handle on `pid` to stop it by, taken before it is inspected.
pub fn handle(pid: u32) -> std::io::Result<OwnedFd> {
    crate::kernel::pidfd_open(pid)
}

/// A handle on process `pid` if it is the one the kernel saw at boot-clock
/// time `seen_ns`: a process started later reuses the pid of one that is
/// gone. (Start times are in clock ticks: one tick of slack.)
pub fn handle_if_seen(pid: u32, seen_ns: u64) -> std::io::Result<OwnedFd> {
    let pidfd = handle(pid)?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = start_ticks(&stat).ok_or_else(|| std::io::Error::other("unreadable /proc/PID/stat"))?;
    let tick_ns = 1_000_000_000 / (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64);
    if ticks.saturating_sub(1) * tick_ns > seen_ns {
        return Err(std::io::Error::other(format!("pid {pid} is another process now")));
    }
    Ok(pidfd)
}

/// Field 22 of /proc/PID/stat, the start time in clock ticks since boot
/// (the name before it may hold spaces and parentheses).
pub(crate) fn start_ticks(stat: &str) -> Option<u64> {
    stat.rsplit_once(") ")?.1.split(' ').nth(19)?.parse().ok()
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
    fn the_start_time_is_read_past_any_name() {
        let stat = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(start_ticks(stat), Some(123456));
        assert_eq!(start_ticks("garbage"), None);
    }

    #[test]
    fn ring_mappings_and_ring_inodes_are_read() {
        let line = "7f00d0a00000-7f00d0a01000 rw-s 10000000 00:0f 2071                       anon_inode:[io_uring]";
        assert_eq!(ring_mapping(line), Some(2071));
        assert_eq!(ring_mapping("7f1c2a000000-7f1c2a001000 rw-s 00000000 fd:01 1311234 /etc/hosts"), None);
        assert_eq!(fdinfo_inode("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2071\n"), Some(2071));
    }

    #[test]
    fn another_process_memory_open_for_writing_is_read_from_fds() {
        use std::path::Path;
        assert_eq!(memory_of(Path::new("/proc/1/mem")), Some(1));
        assert_eq!(memory_of(Path::new("/proc/42/task/43/mem")), Some(42));
        for other in ["/proc/1/maps", "/proc/1/mem/x", "/proc/self/mem", "/tmp/proc/1/mem", "/proc/1/task/x/mem"] {
            assert_eq!(memory_of(Path::new(other)), None, "{other}");
        }
        assert!(opened_for_writing("pos:\t0\nflags:\t0100002\nmnt_id:\t20\n"));
        assert!(opened_for_writing("pos:\t0\nflags:\t02000001\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t0100000\n"));
        assert!(opened_for_writing(""), "unreadable flags count as writing");
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
