//! PROTECTED, the inodes of the protected trees, when it is full. The
//! kernel counts each insert that did not fit (PROTECTED_MISSES), and while
//! some are not settled it decides a file with no entry by its names (the
//! programs' `overflow`): by the directories above it and the names they
//! guard. So a tree's file or directory may go without an entry; what
//! that lookup stands on may not: the directories above the trees, the
//! names they guard, and the roots themselves (Warrant's own guard no
//! name).

use super::*;
use warrant_common::{PROTECTED_MISSED, PROTECTED_SETTLED};

/// Whether an entry may find no room, left to the names lookup: a file or
/// directory in a tree, not one of its `roots`, an ancestor or a guarded
/// name.
pub(super) fn left_to_names(key: &FileKey, entry: &ProtectedEntry, roots: &std::collections::HashSet<FileKey>) -> bool {
    entry.flags == 0 && !key.is_name() && !roots.contains(key)
}

/// Whether a map's insert failed for want of room.
pub(super) fn no_room(error: &aya::maps::MapError) -> bool {
    matches!(error, aya::maps::MapError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::E2BIG))
}

impl Kernel {
    /// Adds protected inodes, leaving the others as they are. One that
    /// does not fit (a full map) is counted as a miss, and the rest still
    /// go in; the first failure is returned.
    pub fn add_protected(&mut self, entries: &StdHashMap<FileKey, ProtectedEntry>) -> Result<(), KernelError> {
        let mut failed = None;
        for (key, entry) in entries {
            if let Err(e) = self.protected.insert(key, entry, 0) {
                failed.get_or_insert(e);
            }
        }
        let Some(e) = failed else {
            return Ok(());
        };
        self.note_protected_misses(1)?;
        Err(map_err("PROTECTED")(e))
    }

    /// Makes `entries` the protected inodes once a policy is in force:
    /// what only the policy before protected leaves, then `missed` (the
    /// entries that found no room when the policy was written) are tried
    /// again. Those that still find none are counted as misses, left to
    /// the names lookup; returns how many.
    ///
    /// Entries of trees still in `trees` stay even when the walk missed
    /// them: the kernel adds files created since, and removing them would
    /// unprotect them. The kernel adds plain entries only: a directory
    /// above trees, or a name, the walk no longer finds is gone (kept, a
    /// stale one would sit on an inode number the file system hands out
    /// again).
    pub(super) fn set_protected(
        &mut self,
        entries: &StdHashMap<FileKey, ProtectedEntry>,
        trees: &std::collections::HashSet<u32>,
        missed: &[FileKey],
    ) -> Result<usize, KernelError> {
        let kept_by_kernel =
            |key: &FileKey, entry: &ProtectedEntry| trees.contains(&entry.tree) && entry.flags == 0 && !key.is_name();
        let removed = remove_where(&mut self.protected, "PROTECTED", |key, entry| {
            !entries.contains_key(key) && !kept_by_kernel(key, entry)
        });
        let mut left = 0;
        let mut failed = None;
        for (key, entry) in missed.iter().filter_map(|key| Some((key, entries.get(key)?))) {
            if let Err(e) = self.protected.insert(key, entry, 0) {
                left += 1;
                if !no_room(&e) {
                    failed.get_or_insert(map_err("PROTECTED")(e));
                }
            }
        }
        // Counted whatever else failed: these files have no entry.
        if left > 0 {
            self.note_protected_misses(left as u64)?;
        }
        removed?;
        failed.map_or(Ok(left), Err)
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
        let missed = self.protected_miss_count(PROTECTED_MISSED)?;
        self.set_protected_miss_count(PROTECTED_MISSED, missed + count)
    }

    /// Settles the misses counted up to `missed`, read before a walk of the
    /// trees whose every file then went in. True if some were unsettled.
    pub fn settle_protected_misses(&mut self, missed: u64) -> Result<bool, KernelError> {
        if missed <= self.protected_miss_count(PROTECTED_SETTLED)? {
            return Ok(false);
        }
        self.set_protected_miss_count(PROTECTED_SETTLED, missed)?;
        Ok(true)
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
