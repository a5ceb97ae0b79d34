//! What a process holds when it becomes a subject. Most of it is decided
//! when it is used (a write through an fd held open, a send on a connected
//! socket: see files.rs and ipc.rs). An io_uring ring is not: a ring set up
//! with SQPOLL submits from its creator's kernel thread, which is not the
//! subject, so every hook would see someone else. A process that would
//! become a subject at exec while holding an io_uring fd is refused the
//! exec, and stays what it was. A ring fd marked close-on-exec (as every
//! ring is made) does not count, unless another task shares the fd table
//! and could clear the mark before the exec closes it. A ring made after
//! the exec is the subject's own, and its poller thread inherits the marker.
//!
//! A ptrace attachment is not decided again either: PTRACE_POKE* on a
//! task already traced pass no hook. A process that would become a subject
//! at exec while it traces a task is refused the exec too.
//!
//! A running process picked up is looked at by the daemon (agent/src/held.rs),
//! and so is every process it makes until the daemon has looked (PICKUPS,
//! PICKUP_CHILDREN): a child keeps what its parent held. The daemon learns
//! whom it traces from [`traced_tasks`].

use aya_ebpf::{
    bindings::task_struct,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task,
        generated::{bpf_get_current_task_btf, bpf_ktime_get_boot_ns, bpf_seq_write, bpf_task_storage_get},
    },
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{Pickup, action};

use crate::{
    files,
    maps::{PICKUP_CHILDREN, PICKUPS, PICKUPS_UNTIL, offset},
    policy::{read_kernel, repeat},
    selfprotect, subjects,
    subjects::TaskIteratorContext,
};

/// How long a pickup notes new processes, at most: the daemon looks at
/// them within it.
const PICKUP_NOTE_NS: u64 = 10_000_000_000;

/// Notes the process of `task` (`tgid`), just made a subject of
/// `profile_id` by a cgroup move: its new processes are noted for the
/// daemon (see PICKUPS). If the daemon never hears of it (a lost event),
/// the entry stays until its deadline, tied to that process, not its tgid.
#[inline(always)]
pub fn note_pickup(task: *const u8, tgid: u32, profile_id: u32) {
    let deadline_ns = unsafe { bpf_ktime_get_boot_ns() } + PICKUP_NOTE_NS;
    // Unreadable: 0, not checked, rather than no noting at all.
    let leader_start_ns = subjects::leader_start(task).unwrap_or(0);
    let pickup = Pickup { deadline_ns, leader_start_ns, profile_id, _reserved: 0 };
    if PICKUPS.insert(&tgid, &pickup, 0).is_ok()
        && let Some(until) = PICKUPS_UNTIL.get_ptr_mut(0)
    {
        // Racing writers each write a deadline ten seconds from now.
        unsafe { core::ptr::write_volatile(until, deadline_ns) };
    }
}

/// The pickup the current task's new tasks belong to: its process's own,
/// or the one it was made during.
#[inline(always)]
fn pickup_in_progress() -> Option<Pickup> {
    let until = PICKUPS_UNTIL.get(0).copied().unwrap_or(0);
    if until == 0 {
        return None;
    }
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if now >= until {
        return None;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // An entry of another process that had this tgid and exited is not ours.
    let ours = |pickup: &&Pickup| {
        pickup.leader_start_ns == 0
            || subjects::leader_start(unsafe { bpf_get_current_task() } as *const u8) == Some(pickup.leader_start_ns)
    };
    let pickup = match unsafe { PICKUPS.get(&tgid) }.filter(ours) {
        Some(pickup) => *pickup,
        None => {
            let task = unsafe { bpf_get_current_task_btf() };
            let found =
                unsafe { bpf_task_storage_get(PICKUP_CHILDREN.as_ptr(), task.cast(), core::ptr::null_mut(), 0) };
            if found.is_null() {
                return None;
            }
            unsafe { *found.cast::<Pickup>() }
        }
    };
    (now < pickup.deadline_ns).then_some(pickup)
}

/// At `task_alloc`: a task made during a pickup is noted for the daemon.
/// Some(Ok(profile)): noted, for a pickup into `profile`; Some(Err): it
/// could not be, and the fork must fail; None: no pickup.
#[inline(always)]
pub fn note_if_picking_up(child: *mut task_struct) -> Option<Result<u32, ()>> {
    let mut pickup = pickup_in_progress()?;
    let stored = unsafe {
        bpf_task_storage_get(PICKUP_CHILDREN.as_ptr(), child.cast(), core::ptr::from_mut(&mut pickup).cast(), 1)
    };
    Some(if stored.is_null() { Err(()) } else { Ok(pickup.profile_id) })
}

/// The current task's fd table: its `struct fdtable`, how many fds it
/// has room for, and whether other tasks share it (threads, CLONE_FILES).
#[inline(always)]
fn fd_table() -> Option<(*const u8, u32, bool)> {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let files = read_kernel::<u64>(task, offset!(task_struct_files))? as *const u8;
    let shared = read_kernel::<u32>(files, offset!(files_struct_count))? > 1;
    let table = read_kernel::<u64>(files, offset!(files_struct_fdt))? as *const u8;
    let max_fds = read_kernel::<u32>(table, offset!(fdtable_max_fds))?;
    Some((table, max_fds, shared))
}

/// Calls `visit(fd, file)` for each open file among the first `count` fds
/// of fd table `table`, until `visit` returns false. One `bpf_loop`,
/// checked by the verifier once.
#[inline(always)]
fn each_file_in<F: FnMut(u32, *const u8) -> bool>(table: *const u8, count: u32, mut visit: F) -> Option<()> {
    let fds = read_kernel::<u64>(table, offset!(fdtable_fd))?;
    repeat(count, |fd| {
        let file = read_kernel::<u64>(fds as *const u8, 8 * fd).unwrap_or(0);
        file == 0 || visit(fd, file as *const u8)
    });
    Some(())
}

/// Calls `visit(fd, file)` for each open file of the current task among
/// its first `limit` fds, until `visit` returns false. None: the fd table
/// could not be read.
#[inline(always)]
pub fn each_open_file<F: FnMut(u32, *const u8) -> bool>(limit: u32, visit: F) -> Option<()> {
    let (table, max_fds, _) = fd_table()?;
    each_file_in(table, if max_fds < limit { max_fds } else { limit }, visit)
}

/// Most fds looked at for a ring: `bpf_loop`'s own bound (8M), above the
/// kernel's default `nr_open` (1M). A table with room for more counts as
/// holding a ring.
const ALL_FDS: u32 = 1 << 23;

/// `[io_uring]`, the name of every io_uring file (an anonymous inode's
/// dentry), as two little-endian words: "[io_urin" and "g]\0".
const RING_NAME_HEAD: u64 = u64::from_le_bytes(*b"[io_urin");
const RING_NAME_TAIL: u32 = u32::from_le_bytes([b'g', b']', 0, 0]);

/// What an exec would carry into a subject that no hook sees again.
#[derive(Clone, Copy)]
pub enum KeptFd {
    /// An io_uring ring, at this fd (-1: the table could not be walked).
    Ring(i32),
    /// A `/proc/PID/mem` open for writing, at this fd: its writes run code
    /// in that process (a root one, opened before the exec), unconfined.
    Memory(i32),
}

/// The first io_uring fd, or `/proc/PID/mem` open for writing, the current
/// task may keep across an exec: one not marked close-on-exec or, while
/// another task shares the fd table (and could clear the mark before the
/// exec closes it), any. Fails closed: a table that cannot be read or
/// walked whole counts as holding a ring (-1).
#[inline(always)]
pub fn kept_across_exec() -> Option<KeptFd> {
    let Some((table, max_fds, shared)) = fd_table() else {
        return Some(KeptFd::Ring(-1));
    };
    if max_fds > ALL_FDS {
        return Some(KeptFd::Ring(-1));
    }
    let close_on_exec_at = offset!(fdtable_close_on_exec);
    let close_on_exec = read_kernel::<u64>(table, close_on_exec_at).unwrap_or(0) as *const u8;
    let mut found = None;
    let walked = each_file_in(table, max_fds, |fd, file| {
        let word = read_kernel::<u64>(close_on_exec, 8 * (fd / 64)).unwrap_or(0);
        if !shared && word & (1 << (fd % 64)) != 0 {
            return true;
        }
        if is_io_uring(file) {
            found = Some(KeptFd::Ring(fd as i32));
        } else if is_writable_memory(file) {
            found = Some(KeptFd::Memory(fd as i32));
        }
        found.is_none()
    });
    match walked {
        None => Some(KeptFd::Ring(-1)),
        Some(()) => found,
    }
}

/// `FMODE_WRITE`.
const FMODE_WRITE: u32 = 0x2;
/// "mem" and its NUL, as a little-endian word.
const MEM_NAME: u32 = u32::from_le_bytes(*b"mem\0");

/// Whether `file` is a process's memory (`/proc/PID/mem`,
/// `/proc/PID/task/TID/mem`) open for writing.
#[inline(always)]
fn is_writable_memory(file: *const u8) -> bool {
    let mode_at = offset!(file_f_mode);
    if read_kernel::<u32>(file, mode_at).unwrap_or(0) & FMODE_WRITE == 0 {
        return false;
    }
    let (dentry, name) = dentry_and_name(file);
    read_kernel::<u32>(name, 0) == Some(MEM_NAME) && crate::mounts::dentry_magic(dentry) == files::PROC_SUPER_MAGIC
}

/// `file`'s dentry and the start of its name (null if unreadable).
#[inline(always)]
fn dentry_and_name(file: *const u8) -> (*const u8, *const u8) {
    let name_at = offset!(dentry_d_name_name);
    let dentry_at = offset!(file_f_path_dentry);
    let dentry = read_kernel::<u64>(file, dentry_at).unwrap_or(0) as *const u8;
    (dentry, read_kernel::<u64>(dentry, name_at).unwrap_or(0) as *const u8)
}

/// Whether `file` (a `struct file`) is an io_uring ring: its dentry's name.
#[inline(always)]
fn is_io_uring(file: *const u8) -> bool {
    let (_, name) = dentry_and_name(file);
    let head = read_kernel::<u64>(name, 0).unwrap_or(0);
    let tail = read_kernel::<u32>(name, 8).unwrap_or(0) & 0x00ff_ffff;
    head == RING_NAME_HEAD && tail == RING_NAME_TAIL
}

/// `file_receive(file)`: a subject receiving an fd (SCM_RIGHTS,
/// `pidfd_getfd`) receives no io_uring ring, whoever polls it, and no
/// process's memory open for writing. Kernels
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
    let file: *const u8 = ctx.arg(0);
    if is_io_uring(file) {
        return selfprotect::refuse_on(&subject, action::SELF_IO_URING, [0, 0]);
    }
    // Another process's memory, open for writing by whoever sent it.
    if is_writable_memory(file) { selfprotect::refuse_on(&subject, action::SELF_PTRACE, [0, 0]) } else { 0 }
}

/// Whether the current task traces another (its `ptraced` list is not
/// empty). Unreadable counts as tracing.
#[inline(always)]
pub fn traces_a_task() -> bool {
    let at = offset!(task_struct_ptraced);
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let head = task as u64 + at as u64;
    read_kernel::<u64>(task, at).is_none_or(|next| next != head)
}

/// A task iterator (`iter/task`) the daemon runs when it picks up a running
/// process: writes, for every traced task, its tracer's tgid, its own tgid
/// and its tid (three u32). A process picked up while it traces a task
/// outside its profile is stopped (agent/src/held.rs).
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub extern "C" fn traced_tasks(ctx: *mut TaskIteratorContext) -> i32 {
    // SAFETY: the kernel passes a valid context; `task` may be NULL.
    let (meta, task) = unsafe { ((*ctx).meta, (*ctx).task) };
    if task.is_null() {
        return 0;
    }
    let task = task as *const u8;
    if read_kernel::<u32>(task, offset!(task_struct_ptrace)).unwrap_or(0) == 0 {
        return 0;
    }
    let tracer = read_kernel::<u64>(task, offset!(task_struct_parent)).unwrap_or(0) as *const u8;
    let row = [
        read_kernel::<u32>(tracer, offset!(task_struct_tgid)).unwrap_or(0),
        read_kernel::<u32>(task, offset!(task_struct_tgid)).unwrap_or(0),
        read_kernel::<u32>(task, offset!(task_struct_pid)).unwrap_or(0),
    ];
    // SAFETY: `meta` is the kernel's, valid for this call.
    unsafe { bpf_seq_write((*meta).seq, row.as_ptr().cast(), 12) };
    0
}
