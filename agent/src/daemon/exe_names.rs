//! Names of the executables in decision records. The kernel sends, with
//! each decision, the inode of the executable the process ran when it was
//! decided; the daemon reads the path from `/proc/PID/exe` once per
//! process and executable, and keeps it.
//!
//! A path is kept only when `/proc` still shows the event's inode after
//! the read: a process that exec'd or exited before its event was read
//! (or a pid reused since) leaves no name to be reused for another. Its
//! record names what `/proc` shows then, as every record did before, and
//! carries the inode the kernel decided (`exe_inode`).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use warrant_common::FileKey;

use crate::{marks::Mounts, protect};

/// Most names kept; the cache starts again empty when full.
const KEPT: usize = 4096;

pub(super) struct ExeNames {
    /// `/proc`, or a directory laid out like it (tests).
    proc: PathBuf,
    kept: HashMap<(u32, FileKey), String>,
    /// The mounts, read again when a file is on one not in it.
    mounts: Mounts,
}

impl ExeNames {
    pub(super) fn new(proc: &Path) -> Self {
        Self { proc: proc.to_owned(), kept: HashMap::new(), mounts: Mounts::current() }
    }

    /// The key of the file `link` leads to as the kernel has it: with the
    /// device of its mount's super block (on overlayfs, `stat` gives a
    /// layer's).
    fn kernel_key(&mut self, link: &Path) -> Option<FileKey> {
        let stat = protect::stat_with_mount(link, true)?;
        let Some(id) = stat.mount else {
            return Some(stat.key);
        };
        if self.mounts.device_of_mount(id).is_none() {
            self.mounts = Mounts::current();
        }
        let dev = self.mounts.device_of_mount(id).unwrap_or(stat.key.dev);
        Some(FileKey { dev, ino: stat.key.ino })
    }

    /// The path of the executable of process `tgid`, which ran inode `exe`
    /// at the decision (zero: not known). None: the process is gone.
    pub(super) fn name(&mut self, tgid: u32, exe: FileKey) -> ExeName {
        let known = exe != FileKey::default();
        if known && let Some(name) = self.kept.get(&(tgid, exe)) {
            return ExeName { path: Some(name.clone()), other_than_decided: false };
        }
        let link = self.proc.join(tgid.to_string()).join("exe");
        let Ok(name) = std::fs::read_link(&link) else {
            return ExeName { path: None, other_than_decided: known };
        };
        let name = name.display().to_string();
        // Read after the name: when it is still the event's inode, the
        // name read before it was that inode's too.
        let still = self.kernel_key(&link) == Some(exe);
        if known && still {
            if self.kept.len() >= KEPT {
                self.kept.clear();
            }
            self.kept.insert((tgid, exe), name.clone());
        }
        ExeName { path: Some(name), other_than_decided: known && !still }
    }
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
    fn a_name_is_kept_only_while_proc_shows_the_events_executable() {
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

        // Decided running `first`, and /proc still shows it: kept.
        assert_eq!(names.name(42, key_of(&first)), shown(&first, false));
        std::fs::remove_file(&exe).unwrap();
        std::os::unix::fs::symlink(&second, &exe).unwrap();
        assert_eq!(names.name(42, key_of(&first)), shown(&first, false), "the name kept for first's inode");
        // Decided running `first` and read after an exec of `second`, with
        // nothing kept: /proc's name, as before, and not kept for `first`.
        let mut fresh = ExeNames::new(&proc);
        assert_eq!(fresh.name(42, key_of(&first)), shown(&second, true));
        assert!(fresh.kept.is_empty());
        // An inode the kernel could not read: /proc's name, never kept.
        assert_eq!(fresh.name(42, FileKey::default()), shown(&second, false));
        assert!(fresh.kept.is_empty());
        // Gone.
        assert_eq!(fresh.name(7, key_of(&first)), ExeName { path: None, other_than_decided: true });
        assert_eq!(fresh.name(7, FileKey::default()), ExeName { path: None, other_than_decided: false });
        std::fs::remove_dir_all(&root).unwrap();
    }
}
