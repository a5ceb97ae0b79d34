//! Network namespaces: creating one (clone, clone3 or unshare with
//! CLONE_NEWNET) and entering one (setns by namespace fd or by pidfd).
//!
//! clone and clone3 are decided at `task_alloc`, which sees the flags.
//! unshare and setns have no LSM hook of their own on 6.12, but both ask for
//! CAP_SYS_ADMIN as the first thing once the kernel knows what is asked: an
//! fentry program notes the request (the flags, or the namespace being
//! entered) in the task's storage, and the `capable` LSM hook decides it
//! there, where an EPERM is still clean. The fexit program drops the note
//! whatever happened, so a note never outlives its call (the capability LSM
//! may refuse before `capable` reaches us).
//!
//! A namespace is named by its nsfs inode number (`ls -i /run/netns/NAME`,
//! `readlink /proc/PID/ns/net`), the one name the kernel gives it.
//!
//! The same `capable` hook decides `system.clock` at a subject's
//! CAP_SYS_TIME check, and refuses its CAP_SYS_ADMIN check inside a call
//! of the new mount API (see mounts.rs).

use aya_ebpf::{
    macros::{fentry, fexit, lsm},
    programs::{FEntryContext, FExitContext, LsmContext},
};
use warrant_common::{Subject, action};

use crate::{
    maps::offset,
    policy::{decide_action, read_kernel},
    subjects,
};

pub const CLONE_NEWNET: u64 = 0x4000_0000;
const CAP_SYS_ADMIN: i32 = 21;

/// Notes a request in the subject's own marker (see [`Subject`]).
#[inline(always)]
fn remember(action_id: u32, namespace: u32) {
    if let Some(subject) = subjects::current_mut() {
        subject.pending_action = action_id;
        subject.pending_namespace = namespace;
    }
}

#[inline(always)]
fn forget() {
    if let Some(subject) = subjects::current_mut() {
        subject.pending_action = 0;
    }
}

/// `unshare_nsproxy_namespaces(unshare_flags, ...)`: the namespace half of unshare(2).
#[fentry(function = "unshare_nsproxy_namespaces")]
pub fn note_unshare(ctx: FEntryContext) -> u32 {
    let flags: u64 = ctx.arg(0);
    if flags & CLONE_NEWNET != 0 {
        remember(action::NETNS_CREATE, 0);
    }
    0
}

#[fexit(function = "unshare_nsproxy_namespaces")]
pub fn forget_unshare(_ctx: FExitContext) -> u32 {
    forget();
    0
}

/// `netns_install(nsset, ns)`: setns(2) into a network namespace, by
/// namespace fd or by pidfd.
#[fentry(function = "netns_install")]
pub fn note_setns(ctx: FEntryContext) -> u32 {
    let ns: *const u8 = ctx.arg(1);
    let inum = read_kernel::<u32>(ns, offset!(ns_common_inum)).unwrap_or(0);
    remember(action::NETNS_ENTER, inum);
    0
}

#[fexit(function = "netns_install")]
pub fn forget_setns(_ctx: FExitContext) -> u32 {
    forget();
    0
}

/// Setting the clock in any way needs CAP_SYS_TIME (settimeofday,
/// clock_settime, adjtimex, RTC_SET_TIME): a subject's check is decided as
/// `system.clock`.
const CAP_SYS_TIME: i32 = 25;
const CAP_SYS_RAWIO: i32 = 17;
/// Loading and unloading modules (init_module, finit_module,
/// delete_module, which has no hook of its own) and dev_load's load by any
/// name. An unload frees the generic netlink family ids of the module, for
/// the next family registered to take (see README, limits).
const CAP_SYS_MODULE: i32 = 16;
/// `CAP_OPT_NOAUDIT`: a probe the kernel makes without auditing it.
const CAP_OPT_NOAUDIT: u32 = 1 << 1;
const EPERM: i32 = 1;

#[lsm(hook = "capable")]
pub fn capable(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(4);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current_mut() else {
        return 0;
    };
    let cap: i32 = ctx.arg(2);
    // Raw I/O (SG_IO and NVMe passthrough writes, /dev/mem, ioperm) goes
    // under every file check and mark, as block device writes would.
    if cap == CAP_SYS_RAWIO {
        return refuse_capability(subject, ctx.arg(3), action::SELF_BLOCKDEV);
    }
    if cap == CAP_SYS_TIME {
        let subject = *subject;
        return decide_action(&subject, action::SYSTEM_CLOCK, 0, 0, [0, 0]);
    }
    if cap == CAP_SYS_MODULE {
        return refuse_capability(subject, ctx.arg(3), action::SELF_MODULE);
    }
    if cap == CAP_SYS_ADMIN && crate::mounts::in_mount_api_call() {
        return refuse_capability(subject, ctx.arg(3), action::SELF_MOUNT);
    }
    let pending = subject.pending_action;
    if cap != CAP_SYS_ADMIN || pending == 0 {
        return 0;
    }
    // Decided once: netns_install's second capability check is not a second use.
    subject.pending_action = 0;
    let subject = *subject;
    decide_action(&subject, pending, 0, 0, [subject.pending_namespace as u64, 0])
}

/// A subject's capability check refused as `action_id`: recorded, but for
/// a probe the kernel makes without auditing it (`opts` holds
/// CAP_OPT_NOAUDIT), which is refused quietly as the kernel would.
#[inline(always)]
fn refuse_capability(subject: &Subject, opts: u32, action_id: u32) -> i32 {
    if opts & CAP_OPT_NOAUDIT != 0 {
        return -EPERM;
    }
    let subject = *subject;
    crate::selfprotect::refuse(&subject, action_id)
}

/// clone and clone3: `task_alloc` sees the flags before the child exists.
#[inline(always)]
pub fn decide_clone(subject: &Subject, clone_flags: u64) -> i32 {
    if clone_flags & CLONE_NEWNET == 0 {
        return 0;
    }
    decide_action(subject, action::NETNS_CREATE, 0, 0, [0, 0])
}
