//! Subjects by match: resolving a policy's matchers to the kernel's MATCHES
//! entries, and picking up processes that were already running when the
//! policy was applied (the kernel catches the rest at exec and at cgroup
//! moves; see agent-ebpf's subjects.rs), and the fds `warrant run` lets a
//! new subject keep.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use warrant_common::{MatchKey, match_kind};

use crate::{policy::Matcher, protect};

/// The kernel's entries for `matchers`, the bitmask of kinds they use, and
/// the matchers that name nothing on this host.
pub struct Resolved {
    pub entries: HashMap<MatchKey, u32>,
    /// Matched cgroup paths by `cgroup_path_hash`, for cgroups made again.
    pub cgroup_paths: HashMap<u64, u32>,
    pub kinds: u32,
    pub unresolved: Vec<String>,
}

fn key(kind: u32, value: [u64; 2]) -> MatchKey {
    MatchKey { kind, _pad: 0, value }
}

/// Where cgroup v2 is mounted, from /proc/self/mounts.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, mount_point, fs_type) = (fields.next()?, fields.next()?, fields.next()?);
        (fs_type == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// A cgroup's id: its directory's inode number on cgroup2.
fn cgroup_id(root: &Path, path: &str) -> Option<u64> {
    std::fs::metadata(root.join(path.trim_start_matches('/'))).ok().map(|m| m.ino())
}

pub fn resolve(matchers: &[(Matcher, u32)]) -> Resolved {
    let mut resolved =
        Resolved { entries: HashMap::new(), cgroup_paths: HashMap::new(), kinds: 0, unresolved: Vec::new() };
    let cgroups = cgroup2_root();
    for (matcher, profile) in matchers {
        if let Matcher::Cgroup(path) = matcher {
            let normal = format!("/{}", path.trim_matches('/'));
            resolved.cgroup_paths.insert(warrant_common::cgroup_path_hash(normal.as_bytes()), *profile);
            // A cgroup made later at this path matches, even if none exists now.
            resolved.kinds |= 1 << match_kind::CGROUP;
        }
        let keys: Vec<MatchKey> = match matcher {
            Matcher::Exe(path) => std::fs::metadata(path)
                .map(|m| vec![key(match_kind::EXE, [protect::kernel_dev(m.dev()), m.ino()])])
                .unwrap_or_default(),
            Matcher::Uid(uid) => vec![key(match_kind::UID, [*uid as u64, 0])],
            // The cgroup and every cgroup under it (the kernel adds later ones).
            Matcher::Cgroup(path) => cgroups
                .as_deref()
                .map(|root| root.join(path.trim_start_matches('/')))
                .filter(|dir| dir.is_dir())
                .map(|dir| {
                    let mut ids = Vec::new();
                    let mut pending = vec![dir];
                    while let Some(dir) = pending.pop() {
                        if let Ok(meta) = std::fs::metadata(&dir) {
                            ids.push(key(match_kind::CGROUP, [meta.ino(), 0]));
                        }
                        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                                pending.push(entry.path());
                            }
                        }
                    }
                    ids
                })
                .unwrap_or_default(),
        };
        if keys.is_empty() {
            resolved.unresolved.push(format!("{matcher:?} names nothing on this host"));
        }
        for k in keys {
            resolved.kinds |= 1 << k.kind;
            resolved.entries.entry(k).or_insert(*profile);
        }
    }
    resolved
}

/// A running process and the profile a matcher gives it.
#[derive(Debug)]
pub struct Pickup {
    pub pid: u32,
    pub profile_id: u32,
    /// `exe`, `cgroup` or `uid`.
    pub by: &'static str,
}

/// The processes running now that `entries` match, in the kernel's order of
/// precedence (executable, cgroup, uid). Kernel threads and `skip` are left out.
pub fn running_matches(entries: &HashMap<MatchKey, u32>, skip: u32) -> Vec<Pickup> {
    if entries.is_empty() {
        return Vec::new();
    }
    let cgroups = cgroup2_root();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == skip {
            continue;
        }
        let proc_dir = entry.path();
        // Kernel threads have no executable.
        let Ok(exe) = std::fs::metadata(proc_dir.join("exe")) else { continue };
        let by_exe =
            entries.get(&key(match_kind::EXE, [protect::kernel_dev(exe.dev()), exe.ino()])).map(|p| (*p, "exe"));
        let by_cgroup = || {
            let text = std::fs::read_to_string(proc_dir.join("cgroup")).ok()?;
            let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
            let id = cgroup_id(cgroups.as_deref()?, path)?;
            entries.get(&key(match_kind::CGROUP, [id, 0])).map(|p| (*p, "cgroup"))
        };
        let by_uid = || {
            let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
            let uid: u64 =
                status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()?;
            entries.get(&key(match_kind::UID, [uid, 0])).map(|p| (*p, "uid"))
        };
        if let Some((profile_id, by)) = by_exe.or_else(by_cgroup).or_else(by_uid) {
            found.push(Pickup { pid, profile_id, by });
        }
    }
    found
}

/// The thread ids of process `pid`.
/// Every process id in /proc.
pub fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

pub fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Of the fds `warrant run` passes on (0-2 and `keep`), those that are
/// io_uring rings. A ring made outside the subject would submit for it
/// from a context that is not a subject (an SQPOLL thread, its io-wq
/// workers): the kernel refuses one received or carried across a matched
/// exec, and `warrant run` refuses to hand one over (a check in user
/// space, by the starter: it stops a mistake, not a starter that means it).
pub fn passed_rings(keep: &[i32]) -> Vec<i32> {
    [0, 1, 2]
        .iter()
        .chain(keep)
        .copied()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|target| target.as_os_str() == "anon_inode:[io_uring]")
        })
        .collect()
}

/// Marks every open fd from 3 up close-on-exec, but those in `keep`: a
/// command started as a subject gets only what it opens itself, not an
/// io_uring ring (whose SQPOLL thread would not be a subject), a netlink
/// socket or a writable file its starter held.
pub fn close_inherited_fds_at_exec(keep: &[i32]) -> std::io::Result<()> {
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: F_SETFD on an fd number; one that is gone (the directory
        // listing's own) fails harmlessly with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
