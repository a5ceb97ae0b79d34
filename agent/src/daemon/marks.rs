//! Marks (files subjects wrote; see `warrant_common::Mark`): kept on disk
//! across reboots, cleared by root with `warrant unmark`, and consulted
//! when a policy's names are resolved.

use super::*;

impl State {
    /// Puts back the marks saved before a reboot (the pinned map survives
    /// a restart, not a reboot). A mark the disk copy cannot restore is an
    /// error for the start: files subjects wrote would run unconfined.
    pub(super) fn restore_marks(&mut self) -> Result<(), DaemonError> {
        let saved = crate::marks::load(&self.config.state_dir).doing(|| "cannot read the saved marks".into())?;
        // Best effort: a full map must not keep the daemon from starting.
        match self.kernel.restore_marks(&saved) {
            Ok(restored) if restored > 0 => {
                self.record("marks.restored", json!({"restored": restored, "saved": saved.len()}));
            }
            Ok(_) => {}
            Err(e) => {
                error!("cannot restore every saved mark: {e}");
                self.record("marks.restore_failed", json!({"reason": e.to_string(), "saved": saved.len()}));
            }
        }
        self.save_marks(true);
        Ok(())
    }

    /// Saves the kernel's marks when they changed since the last save (or
    /// when `now`). A failed save is recorded and tried again next tick.
    pub(super) fn save_marks(&mut self, now: bool) {
        let Ok(changes) = self.kernel.mark_changes() else { return };
        if !now && Some(changes) == self.marks_saved_at {
            return;
        }
        let saved = self.kernel.marks().map_err(|e| e.to_string()).and_then(|marks| {
            crate::marks::save(&self.config.state_dir, &marks).map_err(|e| e.to_string()).map(|()| marks.len())
        });
        match saved {
            Ok(count) => {
                self.marks_saved_at = Some(changes);
                self.marks_count = count;
            }
            Err(reason) => {
                error!("cannot save the marks: {reason}");
                if self.marks_saved_at.is_some() {
                    self.record("marks.save_failed", json!({"reason": reason}));
                }
                self.marks_saved_at = None;
            }
        }
    }

    /// `warrant unmark PATH`: the file at `path` is no longer a subject's.
    pub(super) fn unmark(&mut self, path: &str, pid: u32) -> Result<reply::Unmarked, MarkRefused> {
        // A pinned namespace's name: the file under the namespace is marked.
        let pinned = path.strip_prefix(policy::NETNS_RUN_DIR).and_then(|rest| rest.strip_prefix('/'));
        let key = match pinned {
            Some(name) => netns_mountpoint(name),
            None => protect::super_block_file_key(Path::new(path)),
        };
        let key = key.ok_or_else(|| MarkRefused::NoSuchFile { path: path.to_owned() })?;
        let Some(mark) = self.kernel.remove_mark(&key)? else {
            return Err(MarkRefused::NotMarked { path: path.to_owned() });
        };
        let profile = self.profile_label(mark.profile_id);
        let inode = format!("{}:{}", protect::dev_text(key.dev), key.ino);
        let unmarked = reply::Unmarked { path: path.to_owned(), inode, profile, by_pid: pid };
        self.record_reply("marks.cleared", &unmarked);
        self.save_marks(true);
        Ok(unmarked)
    }

    /// Every mark, by mount point and inode (a file has no path in the
    /// kernel; `find MOUNT -xdev -inum INODE` names it).
    pub(super) fn list_marks(&self) -> Result<Vec<reply::Mark>, MarkRefused> {
        let marks = self.kernel.marks()?;
        let mounts = crate::marks::Mounts::current();
        let mut listed: Vec<reply::Mark> = marks
            .iter()
            .map(|(key, mark)| reply::Mark {
                mount: mounts.mount_point(key.dev).map(str::to_owned),
                device: protect::dev_text(key.dev),
                inode: key.ino,
                profile: self.profile_label(mark.profile_id),
            })
            .collect();
        // Mounted first, by mount point and inode.
        listed.sort_by(|a, b| (a.mount.is_none(), &a.mount, a.inode).cmp(&(b.mount.is_none(), &b.mount, b.inode)));
        Ok(listed)
    }

    /// Refuses to run the program at `path` if a subject wrote it: run by
    /// the daemon it would be a subject's code with the daemon's rights
    /// (the kernel would confine it at exec; this says why it did not run).
    pub(super) fn check_program(&self, path: &Path) -> Result<(), ProgramRefused> {
        // The file that runs, not a symlink to it (/bin/sh is one to dash).
        let target = fs::canonicalize(path)
            .map_err(|source| ProgramRefused::Unresolved { path: path.display().to_string(), source })?;
        let Some(mark) = protect::super_block_file_key(&target).and_then(|key| self.kernel.mark_of(&key)) else {
            return Ok(());
        };
        Err(ProgramRefused::WrittenBySubject {
            path: path.display().to_string(),
            profile: self.profile_label(mark.profile_id),
        })
    }

    /// [`Self::check_program`] for the nft that rollback snapshots run.
    pub(super) fn check_nft(&self) -> Result<(), ProgramRefused> {
        crate::programs::find("nft").map_or(Ok(()), |path| self.check_program(&path))
    }

    /// A profile's name, or `#ID` for one no policy here names.
    pub(super) fn profile_label(&self, profile_id: u32) -> String {
        self.policy.as_ref().map(|p| p.profile_name(profile_id)).unwrap_or_else(|| format!("profile#{profile_id}"))
    }
}

/// Who made a name Warrant cannot trace to root: not resolved either.
const UNKNOWN_MAKER: &str = "unknown: not a name `ip netns` makes";

/// This host's names, with those a subject made refused (see
/// [`policy::HostNames::made_by_subject`]).
pub(super) struct MarkedNames<'a> {
    pub(super) state: &'a State,
}

impl policy::HostNames for MarkedNames<'_> {
    fn netns(&self, name: &str) -> Option<u64> {
        policy::ThisHost.netns(name)
    }

    fn file(&self, path: &str) -> Option<FileKey> {
        policy::ThisHost.file(path)
    }

    fn made_by_subject(&self, name: policy::Named) -> Option<String> {
        let key = match name {
            policy::Named::File(path) => protect::super_block_file_key(Path::new(path))?,
            policy::Named::Netns(name) if name == policy::HOST_NETNS => return None,
            policy::Named::Netns(name) => {
                // `ip netns` makes a name a file with a namespace bound onto
                // it; anything else there (a symlink to another namespace),
                // or a name that cannot be looked beneath, is not resolved.
                let path = Path::new(policy::NETNS_RUN_DIR).join(name);
                match fs::symlink_metadata(&path) {
                    Ok(meta) if meta.file_type().is_symlink() => return Some(UNKNOWN_MAKER.to_owned()),
                    Err(_) => return None,
                    Ok(_) => {}
                }
                match netns_mountpoint(name) {
                    Some(key) => key,
                    None => return Some(UNKNOWN_MAKER.to_owned()),
                }
            }
        };
        self.state.kernel.mark_of(&key).map(|mark| self.state.profile_label(mark.profile_id))
    }
}

/// The file a /run/netns name is, under the namespace bound onto it: the
/// kernel marks it when a subject pins a namespace there. Looked up in a
/// detached copy of /run/netns's mount without the mounts under it.
fn netns_mountpoint(name: &str) -> Option<FileKey> {
    use std::os::fd::FromRawFd as _;
    if name == policy::HOST_NETNS || name.contains('/') || name.starts_with('.') {
        return None;
    }
    /// `OPEN_TREE_CLONE`: a detached copy of the mount, without submounts
    /// (AT_RECURSIVE is not given).
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let dir = std::ffi::CString::new(policy::NETNS_RUN_DIR).ok()?;
    // SAFETY: a plain syscall on a NUL-terminated path; the fd is owned below.
    let fd = unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, dir.as_ptr(), OPEN_TREE_CLONE | libc::O_CLOEXEC as u32)
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: open_tree returned a new fd that nothing else owns.
    let tree = unsafe { std::fs::File::from_raw_fd(fd as i32) };
    let meta = nix::sys::stat::fstatat(&tree, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    Some(FileKey { dev: protect::kernel_dev(meta.st_dev), ino: meta.st_ino })
}
