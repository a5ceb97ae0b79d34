//! Names of the executables in decision records. The kernel sends, with
//! each decision, the inode of the executable the process ran when it was
//! decided: the record's `exe_inode`, what the record stands on. Its
//! `exe` is the path `/proc/PID/exe` shows when the daemon reads the
//! event, read once per process and inode in each drain of the event ring.
//!
//! The path is not checked against the inode: opening the executable to
//! check it walks into its file system, which a subject can serve (FUSE, a
//! detached NFS or 9p mount) and stall, and the daemon must not wait on
//! it. Reading the link asks no file system anything. So a process that
//! exec'd or exited before its event was read is named by what it runs
//! then, or not at all, as before; `exe_inode` still names what ran.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use warrant_common::FileKey;

/// Most names kept in one drain; the cache starts again empty when full.
const KEPT: usize = 4096;

pub(super) struct ExeNames {
    /// `/proc`, or a directory laid out like it (tests).
    proc: PathBuf,
    /// Names read in drain `drain`, by process and inode.
    kept: HashMap<(u32, FileKey), String>,
    drain: u64,
}

impl ExeNames {
    pub(super) fn new(proc: &Path) -> Self {
        Self { proc: proc.to_owned(), kept: HashMap::new(), drain: 0 }
    }

    /// The path `/proc` shows for the executable of process `tgid`, which
    /// ran inode `exe` at the decision, in drain `drain`; None: gone.
    pub(super) fn name(&mut self, tgid: u32, exe: FileKey, drain: u64) -> Option<String> {
        if drain != self.drain {
            self.kept.clear();
            self.drain = drain;
        }
        if known(exe)
            && let Some(name) = self.kept.get(&(tgid, exe))
        {
            return Some(name.clone());
        }
        let name = exe_at(&self.proc, tgid)?;
        if known(exe) {
            if self.kept.len() >= KEPT {
                self.kept.clear();
            }
            self.kept.insert((tgid, exe), name.clone());
        }
        Some(name)
    }
}

/// Whether the kernel read the whole key of an executable (a key read in
/// part has device or inode 0: no super block has device 0).
pub(super) fn known(exe: FileKey) -> bool {
    exe.dev != 0 && exe.ino != 0
}

/// The path `proc`'s link shows for the executable of process `pid`
/// (reading the link asks no file system anything); None: gone.
pub(super) fn exe_at(proc: &Path, pid: u32) -> Option<String> {
    std::fs::read_link(proc.join(pid.to_string()).join("exe")).ok().map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_read_once_per_process_and_inode_in_a_drain() {
        let root = std::env::temp_dir().join(format!("warrant-exe-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (proc, bin) = (root.join("proc"), root.join("bin"));
        std::fs::create_dir_all(proc.join("42")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let (first, second) = (bin.join("first"), bin.join("second"));
        let exe = proc.join("42/exe");
        std::os::unix::fs::symlink(&first, &exe).unwrap();
        let mut names = ExeNames::new(&proc);
        let shown = |p: &Path| Some(p.display().to_string());
        let decided = FileKey { dev: 8 << 20 | 1, ino: 1234 };

        assert_eq!(names.name(42, decided, 1), shown(&first));
        std::fs::remove_file(&exe).unwrap();
        std::os::unix::fs::symlink(&second, &exe).unwrap();
        assert_eq!(names.name(42, decided, 1), shown(&first), "read once in drain 1");
        assert_eq!(names.name(42, decided, 2), shown(&second), "read again in drain 2");
        // A key read in part, or none: read each time.
        for unknown in [FileKey::default(), FileKey { dev: 0, ino: 1234 }, FileKey { dev: 8 << 20 | 1, ino: 0 }] {
            assert_eq!(names.name(42, unknown, 2), shown(&second));
        }
        assert_eq!(names.kept.len(), 1);
        assert_eq!(names.name(7, decided, 2), None, "gone");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
