//! Marks: what a subject writes stays the subject's.
//!
//! Every regular file a subject makes or writes (opened for writing or
//! created, written through any fd, its own or one handed over) is marked
//! with the subject's profile in MARKS. Then:
//! - whoever executes a marked file, directly or as a `#!` script, runs as
//!   a subject of that profile (subjects.rs asks [`of_file`] at exec), so a
//!   binary planted on root's PATH is confined whoever starts it;
//! - no process outside every subject maps a marked file executable (an
//!   `ld.so.preload` entry, `LD_PRELOAD`, a dlopen): [`check_exec_map`].
//!
//! A mark goes with the file's last name (`unlink`; for a process that is
//! not a subject, once the file system has dropped it), or when root outside
//! every subject runs `warrant unmark`. A subject's rename over a marked
//! file leaves its entry behind (the hook cannot tell a rename from an
//! exchange, which would let a subject clear a live file's mark); the
//! inode's generation in the entry keeps a later file that reuses the
//! number from matching it.
//! The map is pinned, and the daemon keeps a copy on disk across reboots.
//!
//! Cost: a subject pays one MARKS lookup per open for writing and per
//! write; anyone pays one per exec, per executable mapping of a file and
//! per unlink of a file's last name.

use warrant_common::{FileKey, Mark, Subject, action, subject_flag};

use crate::{
    atomics, files,
    maps::{MARK_CHANGES, MARKS, offset},
    passes,
    policy::{btf_load, read_kernel},
    selfprotect, subjects,
    uapi::{S_IFMT, S_IFREG},
};

const ENOSPC: i32 = 28;
/// `bpf_map_update_elem`'s flag: only a key not there yet.
const BPF_NOEXIST: u64 = 1;

#[inline(always)]
fn generation(inode: *const u8) -> Option<u32> {
    read_kernel::<u32>(inode, offset!(inode_i_generation))
}

/// `inode`'s key and mark, if a subject wrote it.
#[inline(always)]
pub fn of_inode(inode: *const u8) -> Option<(FileKey, Mark)> {
    let key = files::inode_key(inode)?;
    let mark = *unsafe { MARKS.get(&key) }?;
    (Some(mark.generation) == generation(inode)).then_some((key, mark))
}

/// The mark of the file `file` (a `struct file *`).
#[inline(always)]
pub fn of_file(file: *const u8) -> Option<(FileKey, Mark)> {
    of_inode(read_kernel::<u64>(file, offset!(file_f_inode))? as *const u8)
}

/// Marks `inode` as written by `subject` if it is a regular file. Returns
/// the hook's verdict: ENOSPC when MARKS is full (a write left unmarked
/// would be a way around every mark).
#[inline(always)]
pub fn note_write(subject: &Subject, inode: *const u8) -> i32 {
    // Unreadable mode: taken as a regular file (marked) rather than let by.
    let file_type = read_kernel::<u16>(inode, offset!(inode_i_mode)).unwrap_or(S_IFREG) & S_IFMT;
    if file_type != S_IFREG {
        return 0;
    }
    note_key(subject, files::inode_key(inode), generation(inode))
}

/// [`note_write`] with what the write's checks read already (the
/// generation by a BTF load: a subject passes here on every write).
#[inline(always)]
pub fn note_write_of(subject: &Subject, facts: &files::FileFacts) -> i32 {
    if facts.mode.unwrap_or(S_IFREG) & S_IFMT != S_IFREG {
        return 0;
    }
    let generation = (!facts.inode.is_null()).then(|| btf_load::<u32>(facts.inode, offset!(inode_i_generation)));
    note_key(subject, facts.key, generation)
}

/// Marks the regular file of `key` (its inode's `generation`) as written
/// by `subject`.
#[inline(always)]
fn note_key(subject: &Subject, key: Option<FileKey>, generation: Option<u32>) -> i32 {
    let (Some(key), Some(generation)) = (key, generation) else {
        return -ENOSPC;
    };
    let mark = Mark { profile_id: subject.profile_id, generation };
    let replaced = match unsafe { MARKS.get(&key) } {
        Some(found) if *found == mark => return 0,
        found => found.is_some(),
    };
    // A mark replaced voids another profile's pass on the file (see
    // `passes`); a new one voids none: a pass's file had its mark. New only
    // if still none (BPF_NOEXIST): another subject's mark may have come
    // since the lookup, and with it that subject's pass.
    let inserted = if !replaced && MARKS.insert(&key, &mark, BPF_NOEXIST).is_ok() {
        Ok(())
    } else {
        passes::voiding(|| MARKS.insert(&key, &mark, 0))
    };
    if inserted.is_err() {
        return -ENOSPC;
    }
    count_change();
    0
}

#[inline(always)]
fn count_change() {
    if let Some(counter) = MARK_CHANGES.get_ptr_mut(0) {
        atomics::fetch_add(counter, 1);
    }
}

/// An executable mapping of `file` by the current task: refused when a
/// subject wrote the file and the task is no subject (recorded under the
/// profile that wrote it), or a subject of another profile (recorded under
/// its own: one agent does not plant code for another, stronger one).
#[inline(always)]
pub fn check_exec_map(file: *const u8) -> i32 {
    let Some((key, mark)) = of_file(file) else {
        return 0;
    };
    // Code a subject wrote runs here from now on: no longer only the code
    // of the unconfined parent that moved this task (see `MOVED_BY_PARENT`).
    let runner = subjects::current_mut().map(|subject| {
        subject.flags &= !subject_flag::MOVED_BY_PARENT;
        *subject
    });
    refuse_foreign(runner, key, mark)
}

/// The verdict on running or mapping code marked `mark` (inode `key`) by
/// `runner` (None: no subject).
#[inline(always)]
pub fn refuse_foreign(runner: Option<Subject>, key: FileKey, mark: Mark) -> i32 {
    match runner {
        Some(subject) if subject.profile_id == mark.profile_id => 0,
        _ => refuse_marked(runner, key, mark),
    }
}

/// The verdict on the kernel reading marked `key` as code or firmware:
/// refused for everyone, the current subject's own files included.
#[inline(always)]
pub fn refuse_in_kernel(key: FileKey, mark: Mark) -> i32 {
    refuse_marked(subjects::current(), key, mark)
}

/// Refuses use of marked `key` by `runner`, recorded under its profile or,
/// for a process outside every subject, the profile that wrote the file.
#[inline(always)]
fn refuse_marked(runner: Option<Subject>, key: FileKey, mark: Mark) -> i32 {
    let recorded = runner.unwrap_or(Subject { profile_id: mark.profile_id, ..Subject::default() });
    selfprotect::refuse_on(&recorded, action::SELF_MARKED_EXEC, [key.ino, key.dev])
}

/// Open files of the current task looked at, at most (kmod holds a few).
const OPEN_FILES_LOOKED_AT: u32 = 1024;

/// The first marked file among the current task's files open for reading.
/// For the rare hooks that load kernel code from a buffer.
#[inline(always)]
pub fn among_open_files() -> Option<(FileKey, Mark)> {
    let f_mode_at = offset!(file_f_mode);
    // Plain fields, not an Option of the pair: the verifier refuses the
    // uninitialised payload a `None` store copies.
    let (mut key, mut mark, mut found) = (FileKey { ino: 0, dev: 0 }, Mark { profile_id: 0, generation: 0 }, false);
    crate::held::each_open_file(OPEN_FILES_LOOKED_AT, |_, file| {
        // FMODE_READ: what a loader reads (a log it appends to is not).
        if !read_kernel::<u32>(file, f_mode_at).is_some_and(|mode| mode & 1 != 0) {
            return true;
        }
        match of_file(file) {
            Some((marked_key, marked)) => {
                (key, mark, found) = (marked_key, marked, true);
                false
            }
            None => true,
        }
    })?;
    found.then_some((key, mark))
}

/// The file keyed `key`, of inode generation `generation`, loses its last
/// name: so does its mark. Only its own generation's: on btrfs another
/// live file can have the same key (subvolumes share a device), though a
/// snapshot's copy, or one made in the same transaction, has the same
/// generation too (BYPASS).
#[inline(always)]
pub fn forget(key: &FileKey, generation: u32) {
    // A lookup first: a delete locks its bucket, and most files have none.
    let Some(mark) = (unsafe { MARKS.get(key) }) else {
        return;
    };
    if mark.generation == generation && passes::voiding(|| MARKS.remove(key)).is_ok() {
        count_change();
    }
}
