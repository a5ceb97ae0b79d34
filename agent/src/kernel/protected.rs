//! PROTECTED, the inodes of the protected trees, when it is full. The
//! kernel counts each insert that did not fit (PROTECTED_MISSES), and while
//! some are not settled it decides a file with no entry by its names (the
//! programs' `overflow`): by the directories above it and the names they
//! guard. So a file or directory of a tree the kernel protected already
//! may go without an entry; what that lookup stands on may not: the
//! directories above the trees, the names they guard, and the roots it
//! cannot find by those.

use super::policy_maps::StagedPolicy;
use super::*;
use warrant_common::{FILE_STATE_BY_DAEMON, PROTECTED_MISSED, PROTECTED_SETTLED};

/// Whether an entry may find no room, left to the names lookup: a file or
/// directory of one of `staged`'s kept trees, not a root that needs its
/// entry, an ancestor or a guarded name.
pub(super) fn left_to_names(key: &FileKey, entry: &ProtectedEntry, staged: &StagedPolicy) -> bool {
    entry.flags == 0 && !key.is_name() && !staged.roots.contains(key) && staged.kept_trees.contains(&entry.tree)
}

/// What kind of entry `left_to_names` refuses to leave out, for an error.
pub(super) fn needs_entry(key: &FileKey, entry: &ProtectedEntry) -> &'static str {
    match () {
        _ if key.is_name() => "a new guarded name (a new tree's root, or one this host lacks)",
        _ if entry.flags & warrant_common::PROTECTED_ANCESTOR != 0 => "a directory above a new tree",
        _ if entry.flags != 0 => "a directory that guards a new tree's name",
        _ => "a new tree's file, a root no guarded name leads to, or a mount point in a tree",
    }
}

/// `bpf_map_update_elem`'s flag: only a key not there yet.
const BPF_NOEXIST: u64 = 1;

/// Whether a map's insert failed for want of room.
pub(super) fn no_room(error: &aya::maps::MapError) -> bool {
    matches!(error, aya::maps::MapError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::E2BIG))
}

impl Kernel {
    /// Adds protected inodes, leaving the others as they are. One that
    /// does not fit (a full map) is counted as a miss, and the rest still
    /// go in; the first failure is returned.
    pub fn add_protected(&mut self, entries: &StdHashMap<FileKey, ProtectedEntry>) -> Result<(), KernelError> {
        self.insert_protected(entries, 0)
    }

    /// [`Self::add_protected`] of the inodes with no entry only: one the
    /// kernel has (it moves a file's entry to the tree it is moved into)
    /// is newer than the walk that found it.
    pub fn add_missing_protected(&mut self, entries: &StdHashMap<FileKey, ProtectedEntry>) -> Result<(), KernelError> {
        self.insert_protected(entries, BPF_NOEXIST)
    }

    fn insert_protected(
        &mut self,
        entries: &StdHashMap<FileKey, ProtectedEntry>,
        flags: u64,
    ) -> Result<(), KernelError> {
        let mut failed = None;
        self.raise_file_state()?;
        for (key, entry) in entries {
            match self.protected.insert(key, entry, flags) {
                Err(aya::maps::MapError::SyscallError(e))
                    if flags == BPF_NOEXIST && e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => _ = failed.get_or_insert(e),
                Ok(()) => {}
            }
        }
        self.raise_file_state()?;
        let Some(e) = failed else {
            return Ok(());
        };
        self.note_protected_misses(1)?;
        Err(map_err("PROTECTED")(e))
    }

    /// Makes `staged`'s inodes the protected ones once it is in force:
    /// what only the policy before protected leaves, then every entry is
    /// written again (what the change kept stricter for the moment, an
    /// inode the policy before protected whole and this one only as a
    /// directory above a tree, takes its new entry). Those that find no
    /// room are counted as misses, left to the names lookup; returns how
    /// many, with the first other failure.
    ///
    /// Entries of trees still in `trees` stay even when the walk missed
    /// them: the kernel adds files created since, and removing them would
    /// unprotect them. The kernel adds plain entries only: a directory
    /// above trees, or a name, the walk no longer finds is gone (kept, a
    /// stale one would sit on an inode number the file system hands out
    /// again).
    pub(super) fn set_protected(&mut self, staged: &StagedPolicy) -> Result<usize, (usize, KernelError)> {
        let (entries, trees) = (staged.inodes, staged.trees);
        let kept_by_kernel =
            |key: &FileKey, entry: &ProtectedEntry| trees.contains(&entry.tree) && entry.flags == 0 && !key.is_name();
        self.raise_file_state().map_err(|e| (0, e))?;
        let removed = remove_where(&mut self.protected, "PROTECTED", |key, entry| {
            !entries.contains_key(key) && !kept_by_kernel(key, entry)
        });
        let mut missed = 0;
        let mut failed = removed.err();
        for (key, entry) in entries {
            if let Err(e) = self.protected.insert(key, entry, 0) {
                missed += 1;
                if !(no_room(&e) && left_to_names(key, entry, staged)) {
                    failed.get_or_insert(map_err("PROTECTED")(e));
                }
            }
        }
        if let Err(e) = self.raise_file_state() {
            failed.get_or_insert(e);
        }
        // Counted whatever else failed: these files have no entry.
        if missed > 0
            && let Err(e) = self.note_protected_misses(missed as u64)
        {
            failed.get_or_insert(e);
        }
        failed.map_or(Ok(missed), |e| Err((missed, e)))
    }

    /// Whether `key` has an entry.
    pub fn is_protected(&self, key: &FileKey) -> bool {
        self.protected.get(key, 0).is_ok()
    }

    /// Gives `key` `entry` unless it has one (see
    /// [`Self::add_missing_protected`]).
    pub fn add_missing_protected_entry(&mut self, key: FileKey, entry: ProtectedEntry) -> Result<(), KernelError> {
        self.add_missing_protected(&StdHashMap::from([(key, entry)]))
    }

    /// Whether PROTECTED has room for one more entry now: a key no file has
    /// (above every tree, were a lookup to find it) goes in and out.
    pub fn protected_has_room(&mut self) -> bool {
        let probe = FileKey { dev: u64::MAX, ino: u64::MAX };
        let entry = ProtectedEntry { tree: 0, flags: warrant_common::PROTECTED_ANCESTOR };
        if self.protected.insert(probe, entry, 0).is_err() {
            return false;
        }
        let _ = remove_key(&mut self.protected, "PROTECTED", &probe);
        true
    }

    /// PROTECTED's inserts that failed so far, the kernel's and the
    /// daemon's: until a walk settles them, the kernel decides a file with
    /// no entry by its names (see the programs' `overflow`).
    pub fn protected_misses(&self) -> Result<u64, KernelError> {
        self.protected_miss_count(PROTECTED_MISSED)
    }

    /// Whether some failed insert is not settled (or the counts cannot be read).
    pub fn protected_misses_unsettled(&self) -> bool {
        match (self.protected_miss_count(PROTECTED_MISSED), self.protected_miss_count(PROTECTED_SETTLED)) {
            (Ok(missed), Ok(settled)) => missed > settled,
            _ => true,
        }
    }

    /// Counts `count` inserts of the daemon's that failed. Not atomic with
    /// the kernel's counting: one of theirs meanwhile may be lost, but the
    /// count only ever lands above what was read, so above every settled
    /// count.
    pub fn note_protected_misses(&mut self, count: u64) -> Result<(), KernelError> {
        // A file with no entry is decided by its names from now on: no
        // subject's pass on one holds.
        self.raise_file_state()?;
        let missed = self.protected_miss_count(PROTECTED_MISSED)?;
        self.set_protected_miss_count(PROTECTED_MISSED, missed + count)?;
        self.raise_file_state()
    }

    /// Settles the misses counted up to `missed`, read before a walk of the
    /// trees whose every file then went in. True if that settled them all
    /// (some were not, and none were counted since).
    pub fn settle_protected_misses(&mut self, missed: u64) -> Result<bool, KernelError> {
        if missed <= self.protected_miss_count(PROTECTED_SETTLED)? {
            return Ok(false);
        }
        self.set_protected_miss_count(PROTECTED_SETTLED, missed)?;
        Ok(!self.protected_misses_unsettled())
    }

    /// Raises FILE_STATE's daemon count. Called before and after each of
    /// the daemon's changes to PROTECTED or MARKS: a subject's pass on a
    /// file (the programs' `passes`) made before the change, or while it
    /// ran, is void after it. The Kernel's owner task is its only writer.
    pub(super) fn raise_file_state(&mut self) -> Result<(), KernelError> {
        let map = self.maps.map_mut("FILE_STATE").ok_or(KernelError::MissingMap("FILE_STATE"))?;
        let mut counts: Array<&mut MapData, u64> = Array::try_from(map).map_err(map_err("FILE_STATE"))?;
        let count = counts.get(&FILE_STATE_BY_DAEMON, 0).map_err(map_err("FILE_STATE"))?;
        counts.set(FILE_STATE_BY_DAEMON, count.wrapping_add(1), 0).map_err(map_err("FILE_STATE"))
    }

    /// PROTECTED_MISSES' count at `index`.
    fn protected_miss_count(&self, index: u32) -> Result<u64, KernelError> {
        let map = self.maps.map("PROTECTED_MISSES").ok_or(KernelError::MissingMap("PROTECTED_MISSES"))?;
        let counts: Array<&MapData, u64> = Array::try_from(map).map_err(map_err("PROTECTED_MISSES"))?;
        counts.get(&index, 0).map_err(map_err("PROTECTED_MISSES"))
    }

    fn set_protected_miss_count(&mut self, index: u32, count: u64) -> Result<(), KernelError> {
        let map = self.maps.map_mut("PROTECTED_MISSES").ok_or(KernelError::MissingMap("PROTECTED_MISSES"))?;
        let mut counts: Array<&mut MapData, u64> = Array::try_from(map).map_err(map_err("PROTECTED_MISSES"))?;
        counts.set(index, count, 0).map_err(map_err("PROTECTED_MISSES"))
    }
}
