//! Mounts: no subject reshapes the file system views Warrant relies on
//! (see `selfprotect`, whose refusals these are): mount, umount,
//! move_mount, pivot_root, chroot and the new mount API's superblock steps
//! are refused, but for pinning a network namespace as `ip netns add` does.
//! A file system going takes its PROTECTED entries with it
//! ([`forget_unmounted`]).

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{
        bpf_for_each_map_elem, bpf_get_current_task_btf, bpf_probe_read_kernel_str, bpf_task_pt_regs,
    },
    macros::{fentry, lsm},
    programs::{FEntryContext, LsmContext},
};
use warrant_common::{FileKey, TMPFS_MAGIC, action, mount_api, netns, zero_words};

use crate::{
    maps::{PROTECTED, offset},
    policy::{btf_load, read_kernel, read_kernel_or_zero},
    selfprotect::{refuse, refuse_subjects},
    subjects,
};

#[lsm(hook = "sb_mount")]
pub fn sb_mount(ctx: LsmContext) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let source: *const u8 = ctx.arg(0);
    let target: *const u8 = ctx.arg(1);
    let flags: u64 = ctx.arg(3);
    if !is_netns_pin(source, target, flags) {
        return refuse(&subject, action::SELF_MOUNT);
    }
    // The name the namespace is pinned under is the subject's: a later
    // policy naming it does not resolve it (see `marks`).
    let dentry = read_kernel::<u64>(target, offset!(path_dentry)).unwrap_or(0) as *const u8;
    let inode = read_kernel::<u64>(dentry, offset!(dentry_d_inode)).unwrap_or(0) as *const u8;
    crate::marks::note_write(&subject, inode)
}

/// Whether a mount is one of the two steps of pinning a network namespace
/// (see `warrant_common::netns`): making a tmpfs directory named `netns`
/// shared, or bind-mounting a /proc namespace file onto a file in one. The
/// namespace itself was created under `netns.create`.
#[inline(always)]
fn is_netns_pin(source: *const u8, target: *const u8, flags: u64) -> bool {
    let Some(dentry) = read_kernel::<u64>(target, offset!(path_dentry)) else {
        return false;
    };
    let dentry = dentry as *const u8;
    if !dentry_on(dentry, TMPFS_MAGIC) {
        return false;
    }
    if netns::is_propagation_change(flags) {
        return dentry_named_netns(dentry);
    }
    if !netns::is_plain_bind(flags) {
        return false;
    }
    let Some(parent) = read_kernel::<u64>(dentry, offset!(dentry_d_parent)) else {
        return false;
    };
    if !dentry_named_netns(parent as *const u8) {
        return false;
    }
    // Zeroed word by word: `[0u8; N]` would be a memset call.
    let mut words = [0u64; netns::SOURCE_LEN / 8];
    unsafe { zero_words(words.as_mut_ptr(), words.len()) };
    let read = unsafe { bpf_probe_read_kernel_str(words.as_mut_ptr().cast(), netns::SOURCE_LEN as u32, source.cast()) };
    // SAFETY: same size, and u8 has no alignment or validity requirement.
    let path = unsafe { &*words.as_ptr().cast::<[u8; netns::SOURCE_LEN]>() };
    read > 0 && netns::is_proc_netns_path(path)
}

#[inline(always)]
pub fn dentry_on(dentry: *const u8, magic: u64) -> bool {
    dentry_magic(dentry) == magic
}

/// The magic number of `dentry`'s file system (0 if it cannot be read).
#[inline(always)]
pub fn dentry_magic(dentry: *const u8) -> u64 {
    let Some(sb) = read_kernel::<u64>(dentry, offset!(dentry_d_sb)) else {
        return 0;
    };
    read_kernel::<u64>(sb as *const u8, offset!(super_block_s_magic)).unwrap_or(0)
}

#[inline(always)]
fn dentry_named_netns(dentry: *const u8) -> bool {
    let Some(name) = read_kernel::<u64>(dentry, offset!(dentry_d_name_name)) else {
        return false;
    };
    let mut bytes = [0u8; 8];
    let read = unsafe { bpf_probe_read_kernel_str(bytes.as_mut_ptr().cast(), 8, name as *const u8 as *const _) };
    read > 0 && netns::is_netns_dir_name(&bytes)
}

/// The new mount API's own steps, which pass no `sb_mount`: fsconfig's
/// FSCONFIG_CMD_CREATE makes the superblock that fsmount(2) turns into a
/// detached mount. A subject's call is refused before, at its
/// CAP_SYS_ADMIN check (`in_mount_api_call`); this hook, after the
/// superblock is built, stays as the second line. (mount(2)'s new mounts
/// come here too, after `sb_mount` allowed them.)
#[lsm(hook = "sb_kern_mount")]
pub fn sb_kern_mount(_ctx: LsmContext) -> i32 {
    refuse_subjects(action::SELF_MOUNT)
}

/// A live superblock's options changed: fspick(2) then fsconfig's
/// FSCONFIG_CMD_RECONFIGURE (read-only, a size, a procfs's hidepid), the
/// remount that mount(2) asks at `sb_mount` first.
#[lsm(hook = "sb_remount")]
pub fn sb_remount(_ctx: LsmContext) -> i32 {
    refuse_subjects(action::SELF_MOUNT)
}

/// Whether the current task is inside a system call of the new mount API
/// (see `warrant_common::mount_api`), by the number it entered with.
#[inline(always)]
pub fn in_mount_api_call() -> bool {
    let task = unsafe { bpf_get_current_task_btf() };
    let regs = unsafe { bpf_task_pt_regs(task) } as *const u8;
    mount_api::is_call(read_kernel_or_zero::<u32>(regs, offset!(pt_regs_orig_ax)))
}

#[lsm(hook = "sb_umount")]
pub fn sb_umount(_ctx: LsmContext) -> i32 {
    refuse_subjects(action::SELF_MOUNT)
}

#[lsm(hook = "move_mount")]
pub fn move_mount(_ctx: LsmContext) -> i32 {
    refuse_subjects(action::SELF_MOUNT)
}

#[lsm(hook = "sb_pivotroot")]
pub fn sb_pivotroot(_ctx: LsmContext) -> i32 {
    refuse_subjects(action::SELF_MOUNT)
}

#[lsm(hook = "path_chroot")]
pub fn path_chroot(_ctx: LsmContext) -> i32 {
    refuse_subjects(action::SELF_CHROOT)
}

/// `RAMFS_MAGIC`.
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// A superblock is going (its file system's last mount gone). If it is a
/// tmpfs or ramfs, its PROTECTED entries go with it, name keys too: its
/// files are gone, and the next such file system may be given its
/// (anonymous) device number again and number its inodes afresh from 1,
/// so a stale entry would give its files the old one's tree. Any other
/// keeps its entries: mounted again (a disk's, and btrfs, NFS or FUSE,
/// whose anonymous number may come back), its files are the same ones.
#[fentry(function = "generic_shutdown_super")]
pub fn forget_unmounted(ctx: FEntryContext) -> u32 {
    let sb: *const u8 = ctx.arg(0);
    let magic = btf_load::<u64>(sb, offset!(super_block_s_magic));
    let dev = btf_load::<u32>(sb, offset!(super_block_s_dev));
    if (magic != TMPFS_MAGIC && magic != RAMFS_MAGIC) || dev == 0 {
        return 0;
    }
    // A pass over the map is ~1.7M instructions (65,536 buckets): only for
    // a file system whose root has an entry, as every one holding a tree
    // (or an apply's mount point in one) has, its root being above the
    // tree or in it. Not one only reached by a bind mount of a directory
    // in it (BYPASS).
    let root = btf_load::<u64>(sb, offset!(super_block_s_root)) as *const u8;
    let root_inode = btf_load::<u64>(root, offset!(dentry_d_inode)) as *const u8;
    if root_inode.is_null() || unsafe { PROTECTED.get(&crate::files::inode_key_btf(root_inode)) }.is_none() {
        return 0;
    }
    let mut dev = u64::from(dev);
    unsafe {
        bpf_for_each_map_elem(
            (&raw const PROTECTED).cast_mut().cast(),
            forget_of_device as *mut c_void,
            (&raw mut dev).cast(),
            0,
        )
    };
    0
}

/// One entry of [`forget_unmounted`]'s pass: removed if it is a file's or
/// a name's on the device `dev` points to.
#[inline(never)]
extern "C" fn forget_of_device(_map: *mut c_void, key: *mut FileKey, _entry: *mut c_void, dev: *mut c_void) -> i64 {
    // SAFETY: the map's key and the caller's device, for this call.
    let (key, dev) = unsafe { (&*key, *dev.cast::<u64>()) };
    if key.dev & u64::from(u32::MAX) == dev {
        let _ = PROTECTED.remove(key);
    }
    0
}
