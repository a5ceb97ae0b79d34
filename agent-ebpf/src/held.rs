//! What a process holds when it becomes a subject. Most of it is decided
//! when it is used (a write through an fd held open, a send on a connected
//! socket: see files.rs and ipc.rs). An io_uring ring is not: a ring set up
//! with SQPOLL submits from its creator's kernel thread, which is not the
//! subject, so every hook would see someone else. A process that would
//! become a subject at exec while holding an io_uring fd is refused the
//! exec, and stays what it was. A ring fd marked close-on-exec (as every
//! ring is made) does not count: the exec closes it before the new program
//! runs. A ring made after the exec is the subject's own, and its poller
//! thread inherits the marker.

use aya_ebpf::{helpers::bpf_get_current_task, macros::lsm, programs::LsmContext};
use warrant_common::action;

use crate::{
    maps::{KERNEL_OFFSETS, kernel_offsets},
    policy::{read_kernel, repeat},
    selfprotect, subjects,
};

/// Calls `visit(fd, file, fdtable)` for each open file of the current task
/// among its first `limit` fds, until `visit` returns false. One
/// `bpf_loop`, checked by the verifier once. None: the fd table could not
/// be read.
#[inline(always)]
pub fn each_open_file<F: FnMut(u32, *const u8, *const u8) -> bool>(limit: u32, mut visit: F) -> Option<()> {
    let offsets = kernel_offsets();
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let files = read_kernel::<u64>(task, offsets.task_struct_files)? as *const u8;
    let table = read_kernel::<u64>(files, offsets.files_struct_fdt)? as *const u8;
    let max_fds = read_kernel::<u32>(table, offsets.fdtable_max_fds)?;
    let fds = read_kernel::<u64>(table, offsets.fdtable_fd)?;
    let count = if max_fds < limit { max_fds } else { limit };
    repeat(count, |fd| {
        let file = read_kernel::<u64>(fds as *const u8, 8 * fd).unwrap_or(0);
        file == 0 || visit(fd, file as *const u8, table)
    });
    Some(())
}

/// Most fds looked at for a ring: `bpf_loop`'s own bound (8M), above the
/// kernel's default `nr_open` (1M), so no fd is out of reach.
const ALL_FDS: u32 = 1 << 23;

/// `[io_uring]`, the name of every io_uring file (an anonymous inode's
/// dentry), as two little-endian words: "[io_urin" and "g]\0".
const RING_NAME_HEAD: u64 = u64::from_le_bytes(*b"[io_urin");
const RING_NAME_TAIL: u32 = u32::from_le_bytes([b'g', b']', 0, 0]);

/// The first io_uring fd the current task keeps across an exec. Fails
/// closed: an fd table that cannot be read counts as holding one (fd -1).
#[inline(always)]
pub fn io_uring_fd() -> Option<i32> {
    // Single fields, not the offsets' copy (see marks::among_open_files).
    let close_on_exec_at = unsafe { core::ptr::read_volatile(&raw const KERNEL_OFFSETS.fdtable_close_on_exec) };
    let mut found = -1;
    let walked = each_open_file(ALL_FDS, |fd, file, table| {
        let close_on_exec = read_kernel::<u64>(table, close_on_exec_at).unwrap_or(0) as *const u8;
        let word = read_kernel::<u64>(close_on_exec, 8 * (fd / 64)).unwrap_or(0);
        if word & (1 << (fd % 64)) != 0 || !is_io_uring(file) {
            return true;
        }
        found = fd as i32;
        false
    });
    match walked {
        None => Some(-1),
        Some(()) => (found >= 0).then_some(found),
    }
}

/// Whether `file` (a `struct file`) is an io_uring ring: its dentry's name.
#[inline(always)]
fn is_io_uring(file: *const u8) -> bool {
    let name_at = unsafe { core::ptr::read_volatile(&raw const KERNEL_OFFSETS.dentry_d_name_name) };
    let dentry_at = unsafe { core::ptr::read_volatile(&raw const KERNEL_OFFSETS.file_f_path_dentry) };
    let dentry = read_kernel::<u64>(file, dentry_at).unwrap_or(0) as *const u8;
    let name = read_kernel::<u64>(dentry, name_at).unwrap_or(0) as *const u8;
    let head = read_kernel::<u64>(name, 0).unwrap_or(0);
    let tail = read_kernel::<u32>(name, 8).unwrap_or(0) & 0x00ff_ffff;
    head == RING_NAME_HEAD && tail == RING_NAME_TAIL
}

/// `file_receive(file)`: a subject receiving an fd (SCM_RIGHTS,
/// `pidfd_getfd`) receives no io_uring ring, whoever polls it. Kernels
/// since 6.7 refuse to pass rings over SCM_RIGHTS themselves; this holds
/// on the others.
#[lsm(hook = "file_receive")]
pub fn file_receive(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(1);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    if is_io_uring(ctx.arg(0)) { selfprotect::refuse_on(&subject, action::SELF_IO_URING, [0, 0]) } else { 0 }
}
