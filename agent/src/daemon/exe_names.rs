//! Names of the executables in decision records. The kernel sends, with
//! each decision, the inode of the executable the process ran when it was
//! decided; the daemon reads the path from `/proc/PID/exe` once per
//! process and executable, and keeps it.
//!
//! A path is kept only when the file it names is the event's inode: the
//! name and the inode are read from one open of `/proc/PID/exe`, so a
//! process that exec'd or exited before its event was read (or a pid
//! reused since) leaves no name to be reused for another. Its record names
//! what `/proc` shows then, as every record did before, and carries the
//! inode the kernel decided (`exe_inode`). A kept name is checked again
//! once per drain of the event ring.
//!
//! The check opens the executable (`O_PATH`: no file system's open runs)
//! and reads its inode without asking its file system to refresh
//! (`AT_STATX_DONT_SYNC`); the open's path walk may still ask a network
//! file system to revalidate (NFS does). An executable on a network or
//! FUSE file system, or on one the daemon cannot see, is not checked: its
//! name is read from the link alone, every time, as before; a server a
//! subject stalls cannot stall the daemon here.

use std::{
    collections::HashMap,
    os::fd::{AsRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use warrant_common::FileKey;

use crate::{marks::Mounts, protect};

/// Most names kept; the cache starts again empty when full.
const KEPT: usize = 4096;

pub(super) struct ExeNames {
    /// `/proc`, or a directory laid out like it (tests).
    proc: PathBuf,
    /// Names by process and inode, with the drain they were checked in.
    kept: HashMap<(u32, FileKey), (String, u64)>,
    /// The daemon's mounts, read again when an id is not in them or gives
    /// another device than the kernel's (mount ids are reused).
    mounts: Mounts,
}

impl ExeNames {
    pub(super) fn new(proc: &Path) -> Self {
        Self { proc: proc.to_owned(), kept: HashMap::new(), mounts: Mounts::current() }
    }

    /// The path of the executable of process `tgid`, which ran inode `exe`
    /// at the decision (zero: not known), named in drain `drain`.
    pub(super) fn name(&mut self, tgid: u32, exe: FileKey, drain: u64) -> ExeName {
        // No super block has device 0: a key read in part is not known.
        let known = exe.dev != 0;
        if known && let Some((name, checked_in)) = self.kept.get(&(tgid, exe)) {
            if *checked_in == drain {
                return ExeName { path: Some(name.clone()), other_than_decided: false };
            }
            // Checked once a drain: read again below, and kept again if it still is.
            self.kept.remove(&(tgid, exe));
        }
        let link = self.proc.join(tgid.to_string()).join("exe");
        if !known || !self.checkable(exe.dev, tgid) {
            let name = std::fs::read_link(&link).ok().map(|name| name.display().to_string());
            return ExeName { path: name, other_than_decided: false };
        }
        let Some((name, file)) = open_named(&link) else {
            return ExeName { path: None, other_than_decided: known };
        };
        let decided = self.is_inode(&file, tgid, exe);
        if decided == Some(true) {
            if self.kept.len() >= KEPT {
                self.kept.clear();
            }
            self.kept.insert((tgid, exe), (name.clone(), drain));
        }
        // Unchecked (the file system would not say): no claim either way.
        ExeName { path: Some(name), other_than_decided: decided == Some(false) }
    }

    /// Whether an executable on device `dev` may be opened to check it: its
    /// file system is local (not NFS, SMB, Ceph, 9p, FUSE or virtiofs)
    /// as the daemon's mounts or process `tgid`'s say.
    fn checkable(&mut self, dev: u64, tgid: u32) -> bool {
        if self.mounts.fs_type(dev).is_none() {
            self.mounts = Mounts::current();
        }
        let theirs;
        let fs_type = match self.mounts.fs_type(dev) {
            Some(fs_type) => fs_type,
            None => {
                let text = std::fs::read_to_string(self.proc.join(tgid.to_string()).join("mountinfo"));
                theirs = Mounts::parse(&text.unwrap_or_default());
                let Some(fs_type) = theirs.fs_type(dev) else { return false };
                fs_type
            }
        };
        let remote = ["nfs", "nfs4", "cifs", "smb3", "ceph", "9p", "afs", "virtiofs", "glusterfs", "lustre"];
        !remote.contains(&fs_type) && !fs_type.starts_with("fuse")
    }

    /// Whether `file` is inode `exe` as the kernel keys it (the device of
    /// its mount's super block: `stat` gives a layer's on overlayfs, a
    /// subvolume's on btrfs). None: it could not be told.
    fn is_inode(&mut self, file: &OwnedFd, tgid: u32, exe: FileKey) -> Option<bool> {
        let stat = protect::stat_with_mount(file.as_raw_fd(), Path::new(""), true)?;
        let Some(id) = stat.mount else {
            return Some(stat.key == exe);
        };
        let is = |dev: Option<u64>| Some(FileKey { dev: dev.unwrap_or(stat.key.dev), ino: stat.key.ino } == exe);
        if let Some(dev) = self.mounts.device_of_mount(id)
            && is(Some(dev)) == Some(true)
        {
            return Some(true);
        }
        // Not in the table, or the id was reused: read it again, then the
        // process's own (a mount of another namespace is not in ours).
        self.mounts = Mounts::current();
        let dev = self.mounts.device_of_mount(id).or_else(|| {
            let theirs = std::fs::read_to_string(self.proc.join(tgid.to_string()).join("mountinfo")).ok()?;
            Mounts::parse(&theirs).device_of_mount(id)
        });
        is(dev)
    }
}

/// `link` opened (`O_PATH`: no file system's open runs), and the path of
/// what was opened: name and inode come from the one file.
fn open_named(link: &Path) -> Option<(String, OwnedFd)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_CLOEXEC).open(link).ok()?;
    let file = OwnedFd::from(file);
    let name = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    Some((name.display().to_string(), file))
}

/// A process's executable as a record names it.
#[derive(Debug, PartialEq)]
pub(super) struct ExeName {
    /// Its path, as `/proc` shows it or showed it for this inode; None:
    /// the process is gone.
    pub path: Option<String>,
    /// `/proc` shows (or had) no executable of the inode the kernel
    /// decided: the process exec'd or exited since (or its file system
    /// numbers inodes otherwise, as overlayfs may).
    pub other_than_decided: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(path: &Path) -> FileKey {
        protect::super_block_file_key(path).unwrap()
    }

    #[test]
    fn a_name_is_kept_only_while_proc_shows_the_events_executable_checked_once_a_drain() {
        let root = std::env::temp_dir().join(format!("warrant-exe-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (proc, bin) = (root.join("proc"), root.join("bin"));
        std::fs::create_dir_all(proc.join("42")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let (first, second) = (bin.join("first"), bin.join("second"));
        std::fs::write(&first, "1").unwrap();
        std::fs::write(&second, "2").unwrap();
        let exe = proc.join("42/exe");
        std::os::unix::fs::symlink(&first, &exe).unwrap();
        let mut names = ExeNames::new(&proc);
        let shown = |p: &Path, other_than_decided| ExeName { path: Some(p.display().to_string()), other_than_decided };

        // Decided running `first`, and /proc shows it: kept.
        assert_eq!(names.name(42, key_of(&first), 1), shown(&first, false));
        std::fs::remove_file(&exe).unwrap();
        std::os::unix::fs::symlink(&second, &exe).unwrap();
        assert_eq!(names.name(42, key_of(&first), 1), shown(&first, false), "kept for first's inode in drain 1");
        // The next drain checks it again: /proc shows `second` now.
        assert_eq!(names.name(42, key_of(&first), 2), shown(&second, true));
        assert!(names.kept.is_empty());
        // An inode the kernel could not read, whole or in part: /proc's
        // name, never kept, no claim.
        for unknown in [FileKey::default(), FileKey { dev: 0, ino: key_of(&second).ino }] {
            assert_eq!(names.name(42, unknown, 3), shown(&second, false));
            assert!(names.kept.is_empty());
        }
        // Gone.
        assert_eq!(names.name(7, key_of(&first), 3), ExeName { path: None, other_than_decided: true });
        assert_eq!(names.name(7, FileKey::default(), 3), ExeName { path: None, other_than_decided: false });
        std::fs::remove_dir_all(&root).unwrap();
    }
}
