//! A protected file's attributes: mode, owner and size (`inode_setattr`),
//! extended attributes and ACLs, decided as `file.chmod`, `file.chown`,
//! `file.write` and `file.xattr`.

use aya_ebpf::{EbpfContext as _, macros::lsm, programs::LsmContext};
use warrant_common::action;

use crate::{
    files::{check_at, decide_file, is_writable_file, protected_at},
    maps::offset,
    policy::read_kernel,
    subjects,
};

const ATTR_MODE: u32 = 1;
const ATTR_UID: u32 = 2;
const ATTR_GID: u32 = 4;
const ATTR_SIZE: u32 = 8;
const ATTR_FILE: u32 = 1 << 13;

/// Context slot `n` read with a volatile load, which LLVM never merges with
/// another into one load at a computed offset.
#[inline(always)]
fn context_slot(ctx: &LsmContext, n: usize) -> u64 {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u64).add(n)) }
}

/// `inode_setattr([idmap,] dentry, attr)`: chmod, chown, truncate.
#[lsm(hook = "inode_setattr")]
pub fn inode_setattr(ctx: LsmContext) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    // The verifier refuses a context read at a computed offset, so all three
    // slots are read at fixed ones (on 6.1 the third is the earlier verdict)
    // and the pointers picked among the values.
    let slots = [context_slot(&ctx, 0), context_slot(&ctx, 1), context_slot(&ctx, 2)];
    let (dentry, attr) =
        if offset!(inode_setattr_dentry_arg) == 0 { (slots[0], slots[1]) } else { (slots[1], slots[2]) };
    let (dentry, attr) = (dentry as *const u8, attr as *const u8);
    let valid = read_kernel::<u32>(attr, offset!(iattr_ia_valid)).unwrap_or(ATTR_SIZE);
    let action_id = if valid & ATTR_MODE != 0 {
        action::FILE_CHMOD
    } else if valid & (ATTR_UID | ATTR_GID) != 0 {
        action::FILE_CHOWN
    } else if valid & ATTR_SIZE != 0 {
        action::FILE_WRITE
    } else {
        // Timestamps only.
        return 0;
    };
    let Some((key, tree)) = protected_at(dentry) else {
        return 0;
    };
    if action_id == action::FILE_WRITE && valid & ATTR_FILE != 0 {
        // ftruncate or O_TRUNC through a file this subject may write: decided at its open.
        let file = read_kernel::<u64>(attr, offset!(iattr_ia_file)).unwrap_or(0) as *const u8;
        if is_writable_file(file) {
            return 0;
        }
    }
    decide_file(&subject, action_id, key, tree)
}

/// The xattr family: `(idmap, dentry, name, ...)`.
#[inline(always)]
fn xattr_change(dentry: *const u8) -> i32 {
    check_at(action::FILE_XATTR, dentry)
}

#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(ctx: LsmContext) -> i32 {
    xattr_change(ctx.arg(1))
}

#[lsm(hook = "inode_removexattr")]
pub fn inode_removexattr(ctx: LsmContext) -> i32 {
    xattr_change(ctx.arg(1))
}

#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(ctx: LsmContext) -> i32 {
    xattr_change(ctx.arg(1))
}

#[lsm(hook = "inode_remove_acl")]
pub fn inode_remove_acl(ctx: LsmContext) -> i32 {
    xattr_change(ctx.arg(1))
}
