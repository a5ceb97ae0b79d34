//! Subjects: who is confined. The marker lives in task-local storage, so it
//! is inherited here at fork and dies with the task; pid reuse cannot hand it
//! to a stranger.

use aya_ebpf::{
    bindings::task_struct,
    helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_get},
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{Subject, decision::BatchScratch};

use crate::{
    maps::{SCRATCH, SUBJECTS},
    netns,
};

/// `BPF_LOCAL_STORAGE_GET_F_CREATE`.
const STORAGE_CREATE: u64 = 1;
const ENOMEM: i32 = 12;

/// The current task's subject marker, if it is a subject. This is the one
/// map lookup a non-subject pays per hook.
#[inline(always)]
pub fn current() -> Option<Subject> {
    let task = unsafe { bpf_get_current_task_btf() };
    marker_of(task)
}

/// The current task's decision scratch, created on first use. `None` only
/// when the kernel cannot allocate it; callers then deny.
#[inline(always)]
pub fn scratch() -> Option<&'static mut BatchScratch> {
    let task = unsafe { bpf_get_current_task_btf() };
    let found = unsafe { bpf_task_storage_get(SCRATCH.as_ptr(), task, core::ptr::null_mut(), STORAGE_CREATE) };
    if found.is_null() { None } else { Some(unsafe { &mut *found.cast::<BatchScratch>() }) }
}

/// The current task's marker itself, for the pending-request fields.
#[inline(always)]
pub fn current_mut() -> Option<&'static mut Subject> {
    let task = unsafe { bpf_get_current_task_btf() };
    let found = unsafe { bpf_task_storage_get(SUBJECTS.as_ptr(), task, core::ptr::null_mut(), 0) };
    if found.is_null() { None } else { Some(unsafe { &mut *found.cast::<Subject>() }) }
}

#[inline(always)]
fn marker_of(task: *mut task_struct) -> Option<Subject> {
    let found = unsafe { bpf_task_storage_get(SUBJECTS.as_ptr(), task, core::ptr::null_mut(), 0) };
    if found.is_null() {
        None
    } else {
        Some(unsafe { *found.cast::<Subject>() })
    }
}

/// Every new task (process or thread) of a subject is a subject of the same
/// profile. `task_alloc` runs before the child exists for anyone, so there is
/// no window in which it acts unconfined; if the marker cannot be stored the
/// fork fails rather than let an unconfined child out.
#[lsm(hook = "task_alloc")]
pub fn task_alloc(ctx: LsmContext) -> i32 {
    let child: *mut task_struct = ctx.arg(0);
    let earlier_verdict: i32 = ctx.arg(2);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(mut marker) = current() else {
        return 0;
    };
    let clone_flags: u64 = ctx.arg(1);
    let verdict = netns::decide_clone(&marker, clone_flags);
    if verdict != 0 {
        return verdict;
    }
    marker.pending_action = 0;
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
