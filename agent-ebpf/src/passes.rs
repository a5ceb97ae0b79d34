//! A subject's pass: what the write checks of `file_open` and
//! `file_permission` found for the last file it wrote, so that the next
//! open for writing or write of that file skips them while nothing they
//! read has changed. An agent writes a file in many `write` calls; each
//! passed every check (a PROTECTED lookup, a MARKS lookup, the device,
//! cgroup, sysfs and /proc checks) again.
//!
//! A pass is kept only for what those checks decide on the file's key
//! alone: a linked regular file on a plain disk or memory file system (not
//! /proc, sysfs, cgroupfs or binfmt_misc, whose checks read names), with
//! no PROTECTED entry, carrying the subject's own mark, while PROTECTED's
//! misses are settled (else a file with no entry is decided by its names).
//! What could change the outcome is in the pass or in the epoch it was made
//! at: the key and the inode's generation, the profile, and FILE_STATE,
//! counts that the kernel's hooks and the daemon raise before and after
//! every change to PROTECTED or MARKS that could turn a pass's file
//! protected or unmarked (an insert, a mark replaced or removed), and at
//! every PROTECTED miss counted. The policy is not in it: the checks a pass
//! skips read none (an unprotected plain file is no rule's target). The
//! epoch is read before the checks: a change during them leaves the pass
//! void at once. What remains is a change and its count's raise being two
//! steps: a write between them passes on a pass made before the change
//! began and checked after it was done (tests/BYPASS.md).
//!
//! One pass per task, in task storage: the next file replaces it.

use warrant_common::{FILE_STATE_BY_DAEMON, FILE_STATE_BY_KERNEL, FileKey, Subject, TMPFS_MAGIC};

use crate::{
    atomics,
    files::{self, FileFacts},
    maps::{FILE_STATE, offset},
    overflow,
    policy::btf_load,
    uapi::{S_IFMT, S_IFREG},
};

/// What a task's last pass covers. Not shared with the daemon.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pass {
    key: FileKey,
    /// The sum of FILE_STATE's counts when the checks began.
    epoch: u64,
    generation: u32,
    profile_id: u32,
}
const _: () = assert!(core::mem::size_of::<Pass>() == 32);

const EXT4_SUPER_MAGIC: u64 = 0xef53;
const XFS_SUPER_MAGIC: u64 = 0x5846_5342;
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;
const F2FS_SUPER_MAGIC: u64 = 0xf2f5_2010;
const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// File systems whose files the write checks decide by key alone. A list
/// of those known rather than of those not: a file system this does not
/// know is checked in full every time.
#[inline(always)]
fn plain_file_system(magic: u64) -> bool {
    matches!(
        magic,
        TMPFS_MAGIC | EXT4_SUPER_MAGIC | XFS_SUPER_MAGIC | BTRFS_SUPER_MAGIC | F2FS_SUPER_MAGIC | OVERLAYFS_SUPER_MAGIC
    )
}

/// An epoch no pass is kept at.
pub const NO_EPOCH: u64 = u64::MAX;

/// The epoch: FILE_STATE's two counts, each only ever raised, summed (equal
/// sums mean neither moved; they never reach 2^63). Unreadable: NO_EPOCH.
#[inline(always)]
pub fn epoch() -> u64 {
    match (FILE_STATE.get(FILE_STATE_BY_KERNEL), FILE_STATE.get(FILE_STATE_BY_DAEMON)) {
        (Some(kernel), Some(daemon)) => kernel.wrapping_add(*daemon),
        _ => NO_EPOCH,
    }
}

#[inline(always)]
fn note_change() {
    if let Some(count) = FILE_STATE.get_ptr_mut(FILE_STATE_BY_KERNEL) {
        atomics::fetch_add(count, 1);
    }
}

/// Runs `change`, a hook's change to PROTECTED or MARKS that may void a
/// pass, with the kernel's count raised before and after: a pass made
/// before it is void once it starts, and one whose checks ran during it
/// once it is done.
#[inline(always)]
pub fn voiding<R>(change: impl FnOnce() -> R) -> R {
    note_change();
    let result = change();
    note_change();
    result
}

/// The pass the write checks of the file of `facts` would leave, beginning
/// at `epoch` ([`epoch`], read first): [`Pass::NONE`] for a file no pass
/// may cover. It reads the inode afresh rather than the facts' `Option`s:
/// LLVM spilled those with their payload unset, a register the verifier
/// refuses to read.
#[inline(always)]
fn candidate(subject: &Subject, facts: &FileFacts, epoch: u64) -> Pass {
    let inode = facts.inode;
    if inode.is_null() || facts.dentry.is_null() || !plain_file_system(facts.dentry_magic) {
        return Pass::NONE;
    }
    let sb = btf_load::<u64>(inode, offset!(inode_i_sb)) as *const u8;
    if sb.is_null()
        || !plain_file_system(btf_load::<u64>(sb, offset!(super_block_s_magic)))
        || btf_load::<u16>(inode, offset!(inode_i_mode)) & S_IFMT != S_IFREG
        // Unlinked, a file is decided by its directory's tree.
        || btf_load::<u32>(inode, offset!(inode_i_nlink)) == 0
    {
        return Pass::NONE;
    }
    Pass {
        key: files::inode_key_btf(inode),
        epoch,
        generation: btf_load::<u32>(inode, offset!(inode_i_generation)),
        profile_id: subject.profile_id,
    }
}

impl Pass {
    /// No pass: its epoch is one [`epoch`] gives only when it cannot read
    /// the counts, and [`remember`] keeps no pass of it.
    const NONE: Pass = Pass { key: FileKey { dev: 0, ino: 0 }, epoch: NO_EPOCH, generation: 0, profile_id: 0 };
}

/// Whether the current task's pass covers a write to the file of `facts`
/// (read with its mode) now; `epoch` is [`epoch`], read first. The pass is
/// made here and in [`remember`] each, not carried between: the hooks'
/// stacks have no room for it.
#[inline(always)]
pub fn holds(subject: &Subject, facts: &FileFacts, epoch: u64) -> bool {
    let pass = candidate(subject, facts, epoch);
    if pass.epoch == NO_EPOCH {
        return false;
    }
    let Some(kept) = crate::subjects::pass(false) else {
        return false;
    };
    kept.key == pass.key
        && kept.epoch == pass.epoch
        && kept.generation == pass.generation
        && kept.profile_id == pass.profile_id
}

/// Keeps the pass for the file of `facts` as the current task's: the write
/// checks, begun at `epoch`, let it through unprotected, and marked as its
/// profile's. Not while PROTECTED's misses are unsettled (a file with no
/// entry is decided by its names then; the kernel's and the daemon's
/// counting of a miss void every pass).
#[inline(always)]
pub fn remember(subject: &Subject, facts: &FileFacts, epoch: u64) {
    let pass = candidate(subject, facts, epoch);
    if pass.epoch == NO_EPOCH || overflow::unsettled() {
        return;
    }
    if let Some(kept) = crate::subjects::pass(true) {
        *kept = pass;
    }
}
