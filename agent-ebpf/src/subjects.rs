//! Subjects: who is confined. The marker lives in task-local storage, so it
//! is inherited here at fork and dies with the task; pid reuse cannot hand it
//! to a stranger.

use aya_ebpf::{
    bindings::{seq_file, task_struct},
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_probe_read_kernel_str,
        bpf_seq_write, bpf_task_storage_get,
    },
    macros::{btf_tracepoint, lsm},
    programs::{BtfTracePointContext, LsmContext},
};
use warrant_common::{
    CGROUP_PATH_LEN, MatchKey, SETTINGS_INDEX, Subject, action, cgroup_path_hash, decision::SingleScratch, match_kind,
    subject_flag,
};

use crate::{
    files, held,
    maps::{CGROUP_PATHS, DIGEST_WALKS, MARK_THREADS, MATCHES, PASSES, SCRATCH, SETTINGS, SUBJECTS, offset},
    marks, netns,
    policy::{btf_load, emit_matched, read_kernel},
    selfprotect,
};

/// `BPF_LOCAL_STORAGE_GET_F_CREATE`.
const STORAGE_CREATE: u64 = 1;
const ENOMEM: i32 = 12;
const CLONE_VM: u64 = 0x100;

/// `task`'s value in the task-storage map at `map`; with
/// `STORAGE_CREATE`, made (zeroed) if missing. `None`: missing, or no memory.
#[inline(always)]
fn task_value<T>(map: *mut core::ffi::c_void, task: *mut task_struct, flags: u64) -> Option<&'static mut T> {
    let found = unsafe { bpf_task_storage_get(map, task, core::ptr::null_mut(), flags) };
    if found.is_null() { None } else { Some(unsafe { &mut *found.cast::<T>() }) }
}

/// The current task's subject marker, if it is a subject. This is the one
/// map lookup a non-subject pays per hook.
#[inline(always)]
pub fn current() -> Option<Subject> {
    current_mut().map(|marker| *marker)
}

/// The current task's decision scratch, created on first use. `None` only
/// when the kernel cannot allocate it; callers then deny.
#[inline(always)]
pub fn scratch() -> Option<&'static mut SingleScratch> {
    task_value(SCRATCH.as_ptr(), unsafe { bpf_get_current_task_btf() }, STORAGE_CREATE)
}

/// The current task's pass (see `passes`), made on first use if `create`.
#[inline(always)]
pub fn pass(create: bool) -> Option<&'static mut crate::passes::Pass> {
    let flags = if create { STORAGE_CREATE } else { 0 };
    task_value(PASSES.as_ptr(), unsafe { bpf_get_current_task_btf() }, flags)
}

/// The current task's content digest state, created on first use.
#[inline(always)]
pub fn digest_walk() -> Option<&'static mut crate::netfilter::DigestWalk> {
    task_value(DIGEST_WALKS.as_ptr(), unsafe { bpf_get_current_task_btf() }, STORAGE_CREATE)
}

/// The current task's marker itself, for the pending-request fields.
#[inline(always)]
pub fn current_mut() -> Option<&'static mut Subject> {
    let task = unsafe { bpf_get_current_task_btf() };
    // A task that was never given local storage holds no marker: most of a
    // host's tasks, which are not subjects, stop at this one load rather
    // than call the helper on every hook.
    if btf_load::<u64>(task as *const u8, offset!(task_struct_bpf_storage)) == 0 {
        return None;
    }
    task_value(SUBJECTS.as_ptr(), task, 0)
}

#[inline(always)]
pub fn marker_of(task: *mut task_struct) -> Option<Subject> {
    task_value::<Subject>(SUBJECTS.as_ptr(), task, 0).map(|marker| *marker)
}

/// Every new task (process or thread) of a subject is a subject of the same
/// profile. `task_alloc` runs before the child exists for anyone, so there is
/// no window in which it acts unconfined; if the marker cannot be stored the
/// fork fails rather than let an unconfined child out. A process made
/// while its parent is being picked up is noted for the daemon (held.rs).
#[lsm(hook = "task_alloc")]
pub fn task_alloc(ctx: LsmContext) -> i32 {
    let child: *mut task_struct = ctx.arg(0);
    let earlier_verdict: i32 = ctx.arg(2);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let picking_up = held::note_if_picking_up(child);
    let Some(mut marker) = current() else {
        // A thread of a process being picked up that is not marked yet
        // (the cgroup tracepoint marks the leader): its child is a subject.
        return match picking_up {
            Some(Ok(profile_id)) => {
                let mut marker = Subject { profile_id, ..Subject::default() };
                let stored = unsafe {
                    bpf_task_storage_get(
                        SUBJECTS.as_ptr(),
                        child,
                        core::ptr::from_mut(&mut marker).cast(),
                        STORAGE_CREATE,
                    )
                };
                if stored.is_null() { -ENOMEM } else { 0 }
            }
            Some(Err(())) => -ENOMEM,
            None => 0,
        };
    };
    if let Some(Err(())) = picking_up {
        return -ENOMEM;
    }
    let clone_flags: u64 = ctx.arg(1);
    let verdict = netns::decide_clone(&marker, clone_flags);
    if verdict != 0 {
        return verdict;
    }
    marker.pending_action = 0;
    // A task that shares the flagged task's memory could write through it:
    // it keeps the flag (and so is out of every profile's ptrace reach).
    if clone_flags & CLONE_VM == 0 {
        marker.flags = 0;
    }
    let stored = unsafe {
        bpf_task_storage_get(SUBJECTS.as_ptr(), child, core::ptr::from_mut(&mut marker).cast(), STORAGE_CREATE)
    };
    if stored.is_null() { -ENOMEM } else { 0 }
}

/// Marks `task` a subject of `profile_id` and records it. Fails only when
/// the kernel cannot allocate the marker.
#[inline(always)]
fn mark(task: *mut task_struct, profile_id: u32, flags: u32, kind: u32) -> bool {
    // The daemon is never a subject (moved into a matched cgroup by root,
    // say): its own writes would be refused, and it would record those
    // refusals, without end.
    if selfprotect::is_daemon(task.cast()) {
        return true;
    }
    let mut marker = Subject { profile_id, flags, ..Subject::default() };
    let stored = unsafe {
        bpf_task_storage_get(SUBJECTS.as_ptr(), task, core::ptr::from_mut(&mut marker).cast(), STORAGE_CREATE)
    };
    if stored.is_null() {
        return false;
    }
    let tgid = read_kernel::<u32>(task.cast(), offset!(task_struct_tgid)).unwrap_or(0);
    emit_matched(&marker, kind, tgid);
    true
}

/// `struct bpf_iter__task`: a task iterator program's context.
#[repr(C)]
pub(crate) struct TaskIteratorContext {
    pub(crate) meta: *const IteratorMeta,
    /// NULL once the walk is over.
    pub(crate) task: *mut task_struct,
}

/// The start of `struct bpf_iter_meta`.
#[repr(C)]
pub(crate) struct IteratorMeta {
    pub(crate) seq: *mut seq_file,
}

/// A task iterator (`iter/task`) the daemon runs when it picks up a running
/// process: marks every thread of the processes in MARK_THREADS, and writes
/// the tid of each one it marks to the reader. Userspace can name a thread
/// other than a leader only since 6.9 (PIDFD_THREAD); the kernel can on
/// every version.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub extern "C" fn mark_threads(ctx: *mut TaskIteratorContext) -> i32 {
    // SAFETY: the kernel passes a valid context; `task` may be NULL.
    let (meta, task) = unsafe { ((*ctx).meta, (*ctx).task) };
    if task.is_null() {
        return 0;
    }
    let Some(tgid) = read_kernel::<u32>(task.cast(), offset!(task_struct_tgid)) else {
        return 0;
    };
    let Some(&profile_id) = (unsafe { MARK_THREADS.get(&tgid) }) else {
        return 0;
    };
    if task_value::<Subject>(SUBJECTS.as_ptr(), task, 0).is_some() {
        return 0;
    }
    let mut marker = Subject { profile_id, ..Subject::default() };
    let stored = unsafe {
        bpf_task_storage_get(SUBJECTS.as_ptr(), task, core::ptr::from_mut(&mut marker).cast(), STORAGE_CREATE)
    };
    if !stored.is_null() {
        let tid = read_kernel::<u32>(task.cast(), offset!(task_struct_pid)).unwrap_or(0);
        // SAFETY: `meta` is the kernel's, valid for this call.
        unsafe { bpf_seq_write((*meta).seq, core::ptr::from_ref(&tid).cast(), 4) };
    }
    0
}

/// The profile for cgroup `id`, if it is matched.
#[inline(always)]
fn cgroup_profile(id: u64) -> Option<u32> {
    unsafe { MATCHES.get(&MatchKey { kind: match_kind::CGROUP, _pad: 0, value: [id, 0] }) }.copied()
}

/// The id of `cgroup` (a `struct cgroup *`): its kernfs node's id, if it
/// is a cgroup v2 one. The tracepoints fire for cgroup v1 hierarchies too,
/// whose ids are numbered apart (a hybrid host's name=systemd hierarchy has
/// the same paths): taken as v2 ids they would match, or unmatch, another
/// cgroup.
#[inline(always)]
fn cgroup_id(cgroup: *const u8) -> Option<u64> {
    let root = read_kernel::<u64>(cgroup, offset!(cgroup_root))?;
    if read_kernel::<i32>(root as *const u8, offset!(cgroup_root_hierarchy_id))? != 0 {
        return None;
    }
    let kn = read_kernel::<u64>(cgroup, offset!(cgroup_kn))?;
    read_kernel::<u64>(kn as *const u8, offset!(kernfs_node_id))
}

/// At exec, a process whose executable, cgroup or uid the policy names
/// becomes a subject of that profile, before the new program runs. If the
/// marker cannot be stored, the exec fails rather than run unconfined.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(1);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let bprm: *const u8 = ctx.arg(0);
    let program = read_kernel::<u64>(bprm, offset!(linux_binprm_file)).unwrap_or(0) as *const u8;
    if let Some(subject) = current_mut() {
        // From here on it runs its own program, not the code of the parent
        // that moved it into its cgroup, nor `warrant run`'s.
        let started_by_run = subject.flags & subject_flag::STARTED_BY_RUN != 0;
        subject.flags &= !(subject_flag::MOVED_BY_PARENT | subject_flag::STARTED_BY_RUN);
        let subject = *subject;
        if started_by_run {
            let refused = refuse_held(subject.profile_id);
            if refused != 0 {
                return refused;
            }
        }
        // A subject runs what another profile's subject wrote only as that
        // profile would: refused (see `marks::refuse_foreign`).
        return match marks::of_file(program) {
            Some((key, written)) => marks::refuse_foreign(Some(subject), key, written),
            None => 0,
        };
    }
    // A file a subject wrote runs as that subject, whoever starts it. (For
    // a `#!` script this runs first with the script, then the interpreter.)
    if let Some((_, written)) = marks::of_file(program) {
        return become_subject(written.profile_id, match_kind::WRITTEN, 0);
    }
    let kinds = SETTINGS.get(SETTINGS_INDEX).map(|s| s.match_kinds).unwrap_or(0);
    if kinds == 0 {
        return 0;
    }
    let mut found = None;
    if kinds & (1 << match_kind::EXE) != 0 {
        let inode = read_kernel::<u64>(program, offset!(file_f_inode)).unwrap_or(0) as *const u8;
        if let Some(key) = files::inode_key(inode) {
            let key = MatchKey { kind: match_kind::EXE, _pad: 0, value: [key.dev, key.ino] };
            found = unsafe { MATCHES.get(&key) }.map(|p| (*p, match_kind::EXE));
        }
    }
    if found.is_none() && kinds & (1 << match_kind::CGROUP) != 0 {
        let id = unsafe { bpf_get_current_cgroup_id() };
        found = cgroup_profile(id).map(|p| (p, match_kind::CGROUP));
    }
    if found.is_none() && kinds & (1 << match_kind::UID) != 0 {
        let cred = read_kernel::<u64>(bprm, offset!(linux_binprm_cred)).unwrap_or(0) as *const u8;
        if let Some(uid) = read_kernel::<u32>(cred, offset!(cred_uid)) {
            let key = MatchKey { kind: match_kind::UID, _pad: 0, value: [uid as u64, 0] };
            found = unsafe { MATCHES.get(&key) }.map(|p| (*p, match_kind::UID));
        }
    }
    match found {
        Some((profile_id, kind)) => {
            let flags = if kind == match_kind::CGROUP { spawned_executor(program) } else { 0 };
            become_subject(profile_id, kind, flags)
        }
        None => 0,
    }
}

/// [`subject_flag::MOVED_BY_PARENT`] if this exec is systemd's executor
/// starting a unit's process in a matched cgroup: `systemd-executor`,
/// unmarked (no subject wrote it) and with one name (not a subject's hard
/// link to another program), exec'd first thing by a fresh child of PID 1
/// (not a subject: systemd 255 on spawns it straight into the unit's
/// cgroup, and it then writes itself there before it execs the unit's
/// command). Otherwise no flags. Like a child PID 1 moved, it runs only
/// root's code until its next exec, which ends the flag.
#[inline(always)]
fn spawned_executor(program: *const u8) -> u32 {
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let forked = read_kernel::<u64>(task, offset!(task_struct_parent_exec_id));
    if forked.is_none() || read_kernel::<u64>(task, offset!(task_struct_self_exec_id)) != forked {
        return 0;
    }
    let parent = read_kernel::<u64>(task, offset!(task_struct_real_parent)).unwrap_or(0) as *const u8;
    if read_kernel::<u32>(parent, offset!(task_struct_tgid)) != Some(1) {
        return 0;
    }
    let inode = read_kernel::<u64>(program, offset!(file_f_inode)).unwrap_or(0) as *const u8;
    if read_kernel::<u32>(inode, offset!(inode_i_nlink)) != Some(1) {
        return 0;
    }
    let dentry = read_kernel::<u64>(program, offset!(file_f_path_dentry)).unwrap_or(0) as *const u8;
    let name_at = read_kernel::<u64>(dentry, offset!(dentry_d_name_name)).unwrap_or(0) as *const u8;
    // "systemd-executor" and its NUL; a name that short is inline in the
    // dentry, so 24 bytes are there to read.
    match read_kernel::<[u64; 3]>(name_at, 0) {
        Some([first, second, third])
            if first == u64::from_le_bytes(*b"systemd-")
                && second == u64::from_le_bytes(*b"executor")
                && third & 0xff == 0 =>
        {
            subject_flag::MOVED_BY_PARENT
        }
        _ => 0,
    }
}

/// The exec's verdict for a process about to become a subject of
/// `profile_id`: refused while it holds an io_uring fd or traces a task
/// (see held.rs), unmarked; otherwise marked, or refused if the marker
/// cannot be stored.
#[inline(always)]
fn become_subject(profile_id: u32, kind: u32, flags: u32) -> i32 {
    let refused = refuse_held(profile_id);
    if refused != 0 {
        return refused;
    }
    let task = unsafe { bpf_get_current_task_btf() };
    if mark(task, profile_id, flags, kind) { 0 } else { -ENOMEM }
}

/// Refuses (as a subject of `profile_id`) an exec that would carry into a
/// subject an io_uring fd, another process's memory open for writing or a
/// ptrace attachment: see held.rs.
// Its own function: bprm_check calls it on two paths.
#[inline(never)]
fn refuse_held(profile_id: u32) -> i32 {
    let joining = Subject { profile_id, ..Subject::default() };
    match held::kept_across_exec() {
        Some(held::KeptFd::Ring(fd)) => {
            return selfprotect::refuse_on(&joining, action::SELF_IO_URING, [fd as i64 as u64, 0]);
        }
        Some(held::KeptFd::Memory(fd)) => {
            return selfprotect::refuse_on(&joining, action::SELF_PTRACE, [fd as i64 as u64, 0]);
        }
        None => {}
    }
    if held::traces_a_task() {
        return selfprotect::refuse_on(&joining, action::SELF_PTRACE, [0, 0]);
    }
    0
}

/// A task moved into a matched cgroup becomes a subject there and then.
/// (A tracepoint cannot refuse the move: if the marker cannot be stored,
/// the task is caught at its next exec instead.)
#[btf_tracepoint(function = "cgroup_attach_task")]
pub fn cgroup_attach_task(ctx: BtfTracePointContext) -> i32 {
    let cgroup: *const u8 = ctx.arg(0);
    let task: *mut task_struct = ctx.arg(2);
    if marker_of(task).is_some() {
        return 0;
    }
    if let Some(profile_id) = cgroup_id(cgroup).and_then(cgroup_profile)
        && !selfprotect::is_daemon(task.cast())
        && mark(task, profile_id, moved_by_unconfined_parent(task), match_kind::CGROUP)
    {
        // Until the daemon has marked its other threads and looked at what
        // it holds (see held.rs).
        let tgid = read_kernel::<u32>(task.cast(), offset!(task_struct_tgid)).unwrap_or(0);
        held::note_pickup(task.cast(), tgid, profile_id);
    }
    0
}

/// The `start_time` (CLOCK_MONOTONIC ns) of `task`'s thread group leader.
#[inline(always)]
pub fn leader_start(task: *const u8) -> Option<u64> {
    let leader = read_kernel::<u64>(task, offset!(task_struct_group_leader))?;
    read_kernel::<u64>(leader as *const u8, offset!(task_struct_start_time))
}

/// [`subject_flag::MOVED_BY_PARENT`] if `task` is being moved by the
/// process that forked it, which is not a subject, before `task` has
/// exec'd (until it does, it runs only that process's code: systemd's PID 1
/// moves its fresh child into the unit's cgroup while the child, still
/// systemd, writes itself there too); otherwise no flags.
#[inline(always)]
fn moved_by_unconfined_parent(task: *mut task_struct) -> u32 {
    if current().is_some() {
        return 0;
    }
    let task = task as *const u8;
    let parent = read_kernel::<u64>(task, offset!(task_struct_real_parent)).unwrap_or(0) as *const u8;
    let mover = (unsafe { bpf_get_current_pid_tgid() } >> 32) as u32;
    if read_kernel::<u32>(parent, offset!(task_struct_tgid)) != Some(mover) {
        return 0;
    }
    let forked = read_kernel::<u64>(task, offset!(task_struct_parent_exec_id));
    let unexeced = forked.is_some() && read_kernel::<u64>(task, offset!(task_struct_self_exec_id)) == forked;
    if unexeced { subject_flag::MOVED_BY_PARENT } else { 0 }
}

/// A cgroup made under a matched one is matched too, so a subject's
/// workload cannot slip into a fresh child cgroup unconfined; and a matched
/// cgroup made again under its own path (a systemd restart) is matched again.
#[btf_tracepoint(function = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: BtfTracePointContext) -> i32 {
    let cgroup: *const u8 = ctx.arg(0);
    let path: *const u8 = ctx.arg(1);
    let Some(id) = cgroup_id(cgroup) else {
        return 0;
    };
    let kn = read_kernel::<u64>(cgroup, offset!(cgroup_kn)).unwrap_or(0) as *const u8;
    let parent = read_kernel::<u64>(kn, offset!(kernfs_node_parent)).unwrap_or(0) as *const u8;
    let Some(parent_id) = read_kernel::<u64>(parent, offset!(kernfs_node_id)) else {
        return 0;
    };
    if let Some(profile_id) = cgroup_profile(parent_id).or_else(|| path_profile(path)) {
        let key = MatchKey { kind: match_kind::CGROUP, _pad: 0, value: [id, 0] };
        let _ = MATCHES.insert(&key, &profile_id, 0);
    }
    0
}

/// A removed cgroup's id leaves MATCHES (ids are not reused, but the map is finite).
#[btf_tracepoint(function = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: BtfTracePointContext) -> i32 {
    if let Some(id) = cgroup_id(ctx.arg(0)) {
        let _ = MATCHES.remove(&MatchKey { kind: match_kind::CGROUP, _pad: 0, value: [id, 0] });
    }
    0
}

/// The profile matching the cgroup path `path` (a kernel string), if any.
#[inline(always)]
fn path_profile(path: *const u8) -> Option<u32> {
    let mut buffer = core::mem::MaybeUninit::<[u8; CGROUP_PATH_LEN]>::uninit();
    // The helper writes the string and its NUL; only those bytes are hashed.
    let read = unsafe { bpf_probe_read_kernel_str(buffer.as_mut_ptr().cast(), CGROUP_PATH_LEN as u32, path.cast()) };
    if read <= 0 {
        return None;
    }
    // SAFETY: the verifier treats the whole buffer as written by the helper,
    // and the hash stops at the NUL the helper wrote.
    let hash = cgroup_path_hash(unsafe { buffer.assume_init_ref() });
    unsafe { CGROUP_PATHS.get(&hash) }.copied()
}
