//! Self-protection: what a subject may never do, whatever the policy says.
//! No rule or warrant is consulted; every refusal is an audit event.
//!
//! - bpf(): no subject touches programs, maps or links (detach, update, pin).
//! - mount, umount, move_mount, pivot_root, chroot, the new mount API
//!   (every privileged step, at its CAP_SYS_ADMIN check: see
//!   `warrant_common::mount_api`),
//!   freezing or shutting down a file system: no subject reshapes or stops
//!   the file system views Warrant relies on (bpffs pins, config paths, the
//!   audit log's file system). The one exception is pinning a network
//!   namespace the way `ip netns add` does. The mount hooks are in
//!   `mounts`.
//! - signals and ptrace aimed at the daemon; ptrace attach (and /proc/PID/mem,
//!   process_vm_writev, pidfd_getfd) on any process outside the profile.
//! - loading kernel modules or kexec images.
//! - SIGIO-route signals (F_SETOWN + F_SETSIG) to the daemon, from anyone.
//! - TIOCSTI and TIOCLINUX on any terminal (this and the other ioctls are
//!   in `ioctls`).
//! - writing cgroup control files (files.rs asks [`is_cgroup_control_at`]),
//!   but for one: the `cgroup.procs` of its own cgroup, while it still runs
//!   the code of the unconfined parent that moved it there
//!   ([`may_write_own_procs`]).
//! - opening block devices for writing (files.rs), and what goes under
//!   them: SCSI and NVMe passthrough, extent swaps, device-mapper, loop
//!   and partition changes, persistent reservations
//!   (`warrant_common::disk_ioctl`); writing the sysfs attributes that
//!   stop a device (`sysfs`).
//! - unlinking, renaming or making anything on bpffs (the pins that keep
//!   enforcement attached while the daemon is down, and the names the
//!   daemon pins at); the hooks are in names.rs, which they share with
//!   protected files.

use aya_ebpf::{
    bindings::task_struct,
    helpers::generated::{bpf_get_current_cgroup_id, bpf_get_current_task_btf, bpf_ktime_get_ns},
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{BPF_FS_MAGIC, NO_WARRANT, SETTINGS_INDEX, Subject, action, subject_flag, tier, verdict};

use crate::{
    maps::{SETTINGS, offset},
    policy::{btf_load, emit_events, read_kernel},
    subjects,
    uapi::{FUSE_DEVICE, S_IFBLK, S_IFCHR, S_IFMT},
};

const EPERM: i32 = 1;
/// `PTRACE_MODE_ATTACH`.
const PTRACE_MODE_ATTACH: u32 = 0x02;

/// Whether `id` (a `kernel_read_file_id` or `kernel_load_data_id`) may be
/// kernel code: every id but those the daemon found harmless by name
/// (firmware), so that ids a newer kernel adds (7.x's compressed modules)
/// are refused until known.
fn loads_kernel_code(id: i32, harmless_ids: u32) -> bool {
    !(0..32).contains(&id) || harmless_ids & (1 << id) == 0
}

/// Denies `action` for the current subject and records it.
#[inline(always)]
pub fn refuse(subject: &Subject, action_id: u32) -> i32 {
    refuse_on(subject, action_id, [0, 0])
}

/// [`refuse`], with `object_words` as the record's object (see
/// `warrant_common::action::TargetKind`).
#[inline(always)]
pub fn refuse_on(subject: &Subject, action_id: u32, object_words: [u64; 2]) -> i32 {
    if let Some(scratch) = subjects::scratch() {
        let message = &mut scratch.messages[0];
        message.key.clear_table();
        message.key.clear_object();
        unsafe {
            let object = (&raw mut message.key.object).cast::<u64>();
            object.write_volatile(object_words[0]);
            object.add(1).write_volatile(object_words[1]);
        }
        message.key.profile_id = subject.profile_id;
        message.key.action = action_id;
        message.key.family = 0;
        message.tier = tier::DENY;
        message.verdict = verdict::DENIED;
        message.rule_index = 0;
        message.warrant_index = NO_WARRANT;
        unsafe { core::ptr::write_volatile(&mut scratch.count, 1) };
        emit_events(subject, scratch);
    }
    -EPERM
}

#[inline(always)]
pub(crate) fn refuse_subjects(action_id: u32) -> i32 {
    match subjects::current() {
        Some(subject) => refuse(&subject, action_id),
        None => 0,
    }
}

#[lsm(hook = "bpf")]
pub fn bpf(_ctx: LsmContext) -> i32 {
    refuse_subjects(action::SELF_BPF)
}

/// The daemon's tgid and start (see `Settings::daemon_started`), once it
/// has said them (tgid 0 before, and after it stops).
#[inline(always)]
fn daemon_process() -> (u32, u32) {
    SETTINGS.get(SETTINGS_INDEX).map_or((0, 0), |settings| (settings.daemon_tgid, settings.daemon_started))
}

/// `nsec_to_clock_t` for USER_HZ 100, as /proc/PID/stat computes it.
const NS_PER_USER_TICK: u64 = 10_000_000;

/// Whether `task`'s process started when the daemon's did: a process that
/// took a dead daemon's pid did not.
#[inline(always)]
fn started_with_daemon(task: *const u8, started: u32) -> bool {
    let Some(leader) = read_kernel::<u64>(task, offset!(task_struct_group_leader)) else {
        return false;
    };
    read_kernel::<u64>(leader as *const u8, offset!(task_struct_start_boottime))
        .is_some_and(|boot_ns| (boot_ns / NS_PER_USER_TICK) as u32 == started)
}

/// Whether the current task is one of the daemon's threads.
#[inline(always)]
pub(crate) fn current_is_daemon() -> bool {
    let (daemon, started) = daemon_process();
    daemon != 0
        && (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32 == daemon
        && started_with_daemon(unsafe { bpf_get_current_task_btf() } as *const u8, started)
}

/// Whether `task` is the daemon.
#[inline(always)]
pub(crate) fn is_daemon(task: *const u8) -> bool {
    let (daemon, started) = daemon_process();
    daemon != 0
        && read_kernel::<i32>(task, offset!(task_struct_tgid)) == Some(daemon as i32)
        && started_with_daemon(task, started)
}

#[lsm(hook = "task_kill")]
pub fn task_kill(ctx: LsmContext) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let target: *const u8 = ctx.arg(0);
    let signal: i32 = ctx.arg(2);
    // Signal 0 only asks whether the process exists.
    if signal != 0 && is_daemon(target) { refuse(&subject, action::SELF_SIGNAL) } else { 0 }
}

/// `uring_cmd(ioucmd)`: a ring's URING_CMD hands a command to a driver,
/// past its ioctl: NVMe passthrough (a write under every file check, on
/// `/dev/ng*` opened for writing), ublk's control device (which makes
/// block devices). A subject's is refused for a device, but FUSE's
/// (/dev/fuse serves the subject's own file system); a socket's commands
/// are its options (hooked there), a regular file's go with its open.
#[lsm(hook = "uring_cmd")]
pub fn uring_cmd(ctx: LsmContext) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let command: *const u8 = ctx.arg(0);
    let file = read_kernel::<u64>(command, offset!(io_uring_cmd_file)).unwrap_or(0) as *const u8;
    let inode = crate::files::file_inode(file);
    let file_type = read_kernel::<u16>(inode, offset!(inode_i_mode)).unwrap_or(S_IFCHR) & S_IFMT;
    let fuse = file_type == S_IFCHR && read_kernel::<u32>(inode, offset!(inode_i_rdev)) == Some(FUSE_DEVICE);
    if (file_type == S_IFCHR || file_type == S_IFBLK) && !fuse {
        return refuse(&subject, action::SELF_BLOCKDEV);
    }
    0
}

/// `task_setrlimit(p, resource, new_rlim)`, which prlimit(2) on another
/// process passes: a subject's limit on the daemon has the kernel signal it
/// (RLIMIT_CPU's SIGXCPU then SIGKILL, RLIMIT_FSIZE's SIGXFSZ at its next
/// audit write), through no `task_kill`.
#[lsm(hook = "task_setrlimit")]
pub fn task_setrlimit(ctx: LsmContext) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let target: *const u8 = ctx.arg(0);
    if is_daemon(target) { refuse(&subject, action::SELF_SIGNAL) } else { 0 }
}

/// A subject's change to the daemon's scheduling (`task_setnice`,
/// `task_setscheduler`, `task_setioprio`): SCHED_IDLE, nice 19 or the idle
/// I/O class would starve its audit writes.
#[inline(always)]
fn refuse_for_daemon(target: *const u8) -> i32 {
    match subjects::current() {
        Some(subject) if is_daemon(target) => refuse(&subject, action::SELF_PTRACE),
        _ => 0,
    }
}

#[lsm(hook = "task_setnice")]
pub fn task_setnice(ctx: LsmContext) -> i32 {
    refuse_for_daemon(ctx.arg(0))
}

#[lsm(hook = "task_setscheduler")]
pub fn task_setscheduler(ctx: LsmContext) -> i32 {
    refuse_for_daemon(ctx.arg(0))
}

#[lsm(hook = "task_setioprio")]
pub fn task_setioprio(ctx: LsmContext) -> i32 {
    refuse_for_daemon(ctx.arg(0))
}

/// The daemon never asks for SIGIO, so a signal that reaches it by that
/// route (`fcntl(F_SETOWN, daemon)` with `F_SETSIG(SIGSTOP)` on an O_ASYNC
/// fd) was aimed at it by someone else: it is dropped, whoever's I/O set it
/// off, and recorded when that is a subject's.
#[lsm(hook = "file_send_sigiotask")]
pub fn file_send_sigiotask(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    if !is_daemon(target) {
        return 0;
    }
    match subjects::current() {
        Some(subject) => refuse(&subject, action::SELF_SIGNAL),
        None => -EPERM,
    }
}

#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let child: *mut task_struct = ctx.arg(0);
    let mode: u32 = ctx.arg(1);
    if is_daemon(child.cast()) {
        return refuse(&subject, action::SELF_PTRACE);
    }
    // Attaching to, writing the memory of, or taking the fds of a process
    // outside the subject's own profile would run the subject's code there,
    // unconfined (/proc/PID/mem, process_vm_writev and pidfd_getfd ask for
    // this mode too). Reading (ps, /proc/PID/environ) stays allowed. A task
    // still running the unconfined parent's code that moved it (systemd's
    // spawn) is outside every profile: its one cgroup.procs write is not
    // the subject's to use.
    if mode & PTRACE_MODE_ATTACH != 0 && !of_profile(subjects::marker_of(child), &subject) {
        refuse(&subject, action::SELF_PTRACE)
    } else {
        0
    }
}

/// Whether a task with `marker` is of `subject`'s profile for ptrace: a
/// subject of it, not still running the unconfined code that moved it.
#[inline(always)]
fn of_profile(marker: Option<Subject>, subject: &Subject) -> bool {
    marker.is_some_and(|m| m.profile_id == subject.profile_id && m.flags & subject_flag::MOVED_BY_PARENT == 0)
}

/// `ptrace_traceme(parent)`: a task that makes its parent its tracer hands
/// it PTRACE_POKE* on itself, which pass no hook. A subject may become the
/// tracer only of a task of its own profile, as at attach (a non-subject
/// child forked before the pickup, an orphan a subject subreaper adopted).
#[lsm(hook = "ptrace_traceme")]
pub fn ptrace_traceme(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(1);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let parent: *mut task_struct = ctx.arg(0);
    let Some(tracer) = subjects::marker_of(parent) else {
        return 0;
    };
    if of_profile(subjects::current(), &tracer) { 0 } else { refuse(&tracer, action::SELF_PTRACE) }
}

#[lsm(hook = "kernel_read_file")]
pub fn kernel_read_file(ctx: LsmContext) -> i32 {
    // A file a subject wrote is no module, kexec image or firmware for
    // anyone: root's insmod, or the modprobe the kernel runs for an
    // autoload, would run the subject's code in the kernel.
    let file: *const u8 = ctx.arg(0);
    if let Some((key, mark)) = crate::marks::of_file(file) {
        return crate::marks::refuse_in_kernel(key, mark);
    }
    let id: i32 = ctx.arg(1);
    if loads_kernel_code(id, offset!(harmless_read_ids)) { refuse_subjects(action::SELF_MODULE) } else { 0 }
}

#[lsm(hook = "kernel_load_data")]
pub fn kernel_load_data(ctx: LsmContext) -> i32 {
    let id: i32 = ctx.arg(0);
    if !loads_kernel_code(id, offset!(harmless_load_ids)) {
        return 0;
    }
    if let Some(subject) = subjects::current() {
        return refuse(&subject, action::SELF_MODULE);
    }
    // A buffer comes from a file the loader read: kmod decompresses a
    // module itself (kmod before 31, or a compression the kernel lacks)
    // and passes it to init_module with the file still open. A marked one
    // among the loader's open files refuses the load.
    match crate::marks::among_open_files() {
        Some((key, mark)) => crate::marks::refuse_in_kernel(key, mark),
        None => 0,
    }
}

/// `CGROUP2_SUPER_MAGIC`, `CGROUP_SUPER_MAGIC` (v1).
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;

/// Whether a file (being opened for writing) is a cgroup control file, by
/// its inode's superblock magic and its dentry (see `files::FileFacts`): any
/// file of cgroup v1, or a `cgroup.*` file of cgroup v2 (procs, threads,
/// freeze, kill, subtree_control, ...). Writing one moves, freezes or
/// kills processes other than the writer, the daemon among them. Resource
/// knobs (`memory.max`, ...) are not control files.
#[inline(always)]
pub fn is_cgroup_control_at(inode_magic: Option<u64>, dentry: *const u8) -> bool {
    match inode_magic {
        Some(CGROUP_SUPER_MAGIC) => true,
        Some(CGROUP2_SUPER_MAGIC) => {
            if dentry.is_null() {
                return true;
            }
            let Some(name_at) = read_kernel::<u64>(dentry, offset!(dentry_d_name_name)) else {
                return true;
            };
            // "cgroup." in the first seven bytes (little-endian word).
            let word = read_kernel::<u64>(name_at as *const u8, 0).unwrap_or(0);
            word & 0x00ff_ffff_ffff_ffff == u64::from_le_bytes(*b"cgroup.\0")
        }
        _ => false,
    }
}

/// How long after its fork a task moved by its parent may still write
/// itself into its cgroup: systemd's child does so first thing.
const OWN_PROCS_WINDOW_NS: u64 = 5_000_000_000;

/// Whether `subject` may open or write `file`, a cgroup control file: only
/// when it is `cgroup.procs` of the cgroup v2 the subject is in, the
/// subject has not exec'd since its unconfined parent moved it there
/// ([`subject_flag::MOVED_BY_PARENT`]), and it was forked less than
/// [`OWN_PROCS_WINDOW_NS`] ago. systemd's spawned child writes itself into
/// its unit's cgroup before it execs, and PID 1 may have moved it there
/// (making it a subject) a moment before.
#[inline(always)]
pub fn may_write_own_procs(subject: &Subject, file: *const u8, inode: *const u8) -> bool {
    if subject.flags & subject_flag::MOVED_BY_PARENT == 0 {
        return false;
    }
    // The leader's: its threads share the one window.
    let Some(forked) = subjects::leader_start(unsafe { bpf_get_current_task_btf() } as *const u8) else {
        return false;
    };
    if unsafe { bpf_ktime_get_ns() }.saturating_sub(forked) > OWN_PROCS_WINDOW_NS {
        return false;
    }
    let sb = read_kernel::<u64>(inode, offset!(inode_i_sb)).unwrap_or(0);
    if read_kernel::<u64>(sb as *const u8, offset!(super_block_s_magic)) != Some(CGROUP2_SUPER_MAGIC) {
        return false;
    }
    let dentry = read_kernel::<u64>(file, offset!(file_f_path_dentry)).unwrap_or(0) as *const u8;
    let name_at = read_kernel::<u64>(dentry, offset!(dentry_d_name_name)).unwrap_or(0);
    // "cgroup.procs" and its NUL: 13 bytes, in two little-endian words.
    let Some(name) = read_kernel::<[u64; 2]>(name_at as *const u8, 0) else {
        return false;
    };
    if name[0] != u64::from_le_bytes(*b"cgroup.p") || name[1] & 0xff_ffff_ffff != u64::from_le_bytes(*b"rocs\0\0\0\0") {
        return false;
    }
    // A cgroup v2 directory's inode number is the cgroup's id (64-bit hosts).
    let parent = read_kernel::<u64>(dentry, offset!(dentry_d_parent)).unwrap_or(0) as *const u8;
    let dir = read_kernel::<u64>(parent, offset!(dentry_d_inode)).unwrap_or(0) as *const u8;
    let own = unsafe { bpf_get_current_cgroup_id() };
    read_kernel::<u64>(dir, offset!(inode_i_ino)) == Some(own)
}

/// Whether `dir` (an inode, a hook's BTF-typed argument: every caller's
/// is) is on bpffs. Loads, not helper calls: a subject's every create,
/// unlink and rename passes here.
#[inline(always)]
pub fn on_bpffs(dir: *const u8) -> bool {
    let sb = btf_load::<u64>(dir, offset!(inode_i_sb)) as *const u8;
    btf_load::<u64>(sb, offset!(super_block_s_magic)) == BPF_FS_MAGIC
}
