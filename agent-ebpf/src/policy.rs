//! The policy as the kernel programs see it: rules and warrants behind the
//! shared decision function, the one-action decision that every hook family
//! except netfilter's batches uses, and the event stream to the daemon.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_comm, bpf_ktime_get_boot_ns, bpf_loop, bpf_probe_read_kernel},
};
use warrant_common::{
    Event, NAME_LEN, NO_WARRANT, RuleEntry, SETTINGS_INDEX, Subject, TargetKey, action, copy_words,
    decision::{self, BatchOutcome, BatchScratch, PolicyView},
    mode, profile_key, zero_words,
};

use crate::{
    atomics,
    maps::{EVENTS, PROFILES, RATES, RULES, SETTINGS, WARRANTS, count_lost_event},
    subjects,
};

const EPERM: i32 = 1;

/// The RULES and WARRANTS maps, as the decision function sees them, for the
/// policy generation in force when the decision began.
pub struct KernelPolicy {
    generation: u8,
}

impl KernelPolicy {
    /// Reads the generation in force once: the whole decision uses it.
    #[inline(always)]
    pub fn in_force() -> Self {
        let generation = SETTINGS.get(SETTINGS_INDEX).map(|s| s.active_generation()).unwrap_or(0);
        Self { generation }
    }

    /// The subject's profile mode in this generation; enforce if the
    /// profile is unknown.
    #[inline(always)]
    pub fn profile_mode(&self, subject: &Subject) -> u32 {
        let key = profile_key(self.generation, subject.profile_id);
        unsafe { PROFILES.get(&key) }.map(|profile| profile.mode).unwrap_or(mode::ENFORCE)
    }

    /// The warrant for `key` if it is in its time window and approves
    /// content `digest` (a warrant bound to no digest approves any).
    fn live_warrant(key: &TargetKey, digest: u64) -> Option<*mut warrant_common::WarrantEntry> {
        let entry = WARRANTS.get_ptr_mut(key)?;
        let now = unsafe { bpf_ktime_get_boot_ns() };
        let (not_before, expires, bound) =
            unsafe { ((*entry).not_before_ns, (*entry).expires_ns, (*entry).content_digest) };
        if now < not_before || now >= expires || (bound != 0 && bound != digest) {
            return None;
        }
        Some(entry)
    }

    fn uses_left(entry: *mut warrant_common::WarrantEntry) -> *mut u64 {
        unsafe { &raw mut (*entry).uses_left }
    }
}

impl PolicyView for KernelPolicy {
    fn rule(&self, key: &TargetKey) -> Option<RuleEntry> {
        unsafe { RULES.get(key) }.copied()
    }

    fn usable_warrant(&self, key: &TargetKey, digest: u64) -> Option<u32> {
        let entry = Self::live_warrant(key, digest)?;
        if atomics::load(Self::uses_left(entry)) == 0 {
            return None;
        }
        Some(unsafe { (*entry).warrant_index })
    }

    fn consume_warrant(&self, key: &TargetKey, digest: u64) -> bool {
        let Some(entry) = Self::live_warrant(key, digest) else {
            return false;
        };
        let uses = Self::uses_left(entry);
        // Bounded compare-and-swap: another CPU may be spending the same warrant.
        for _ in 0..8 {
            let left = atomics::load(uses);
            if left == 0 {
                return false;
            }
            if atomics::compare_exchange(uses, left, left - 1) {
                return true;
            }
        }
        false
    }

    fn refund_warrant(&self, key: &TargetKey) {
        if let Some(entry) = WARRANTS.get_ptr_mut(key) {
            atomics::fetch_add(Self::uses_left(entry), 1);
        }
    }

    /// A fixed window per rule: the first action after the window has run
    /// out starts a new one. Two CPUs crossing the boundary together may
    /// each start it, so a window may admit a few more than the limit.
    fn generation(&self) -> u8 {
        self.generation
    }

    #[inline(always)]
    fn repeat<F: FnMut(u32) -> bool>(&self, times: u32, step: F) {
        repeat(times, step)
    }

    fn take_rate(&self, rule: &RuleEntry) -> bool {
        let Some(window) = RATES.get_ptr_mut(rule.rule_index) else {
            return false;
        };
        let now = unsafe { bpf_ktime_get_boot_ns() };
        let length = rule.rate_window_secs as u64 * 1_000_000_000;
        let start = unsafe { &raw mut (*window).start_ns };
        let count = unsafe { &raw mut (*window).count };
        let began = atomics::load(start);
        if now.wrapping_sub(began) >= length && atomics::compare_exchange(start, began, now) {
            unsafe { core::ptr::write_volatile(count, 0) };
        }
        // Compare-and-swap, as the BPF CPU version we build for has no
        // fetching add; a window that stays contended counts as full.
        for _ in 0..8 {
            let counted = atomics::load(count);
            if counted >= rule.rate_limit as u64 {
                return false;
            }
            if atomics::compare_exchange(count, counted, counted + 1) {
                return true;
            }
        }
        false
    }
}

/// The version of the policy in force.
#[inline(always)]
pub fn version_in_force() -> u64 {
    SETTINGS.get(SETTINGS_INDEX).map(|s| s.policy_versions[s.active_generation() as usize & 1]).unwrap_or(0)
}

/// Decides one action outside a netlink batch for `subject`: the target is
/// `family`, `table_word` in the first eight bytes of the table name and
/// `object_words` in the first sixteen of the object name, as
/// `warrant_common`'s target_key lays each kind out (a file: the tree in
/// `table_word`, inode and device in `object_words`; a namespace: its inode
/// in `object_words[0]`), written a word at a time for the verifier.
/// Records the decision and returns the hook's verdict.
#[inline(always)]
pub fn decide_action(subject: &Subject, action: u32, family: u8, table_word: u64, object_words: [u64; 2]) -> i32 {
    decide_with(subject, action, |key| {
        key.family = family;
        unsafe {
            (&raw mut key.table).cast::<u64>().write_volatile(table_word);
            let object = (&raw mut key.object).cast::<u64>();
            object.write_volatile(object_words[0]);
            object.add(1).write_volatile(object_words[1]);
        }
    })
}

/// [`decide_action`] with the target written by `target` into a key whose
/// names are zero and whose family is 0.
#[inline(always)]
pub fn decide_with<F: FnOnce(&mut TargetKey)>(subject: &Subject, action: u32, target: F) -> i32 {
    let Some(scratch) = subjects::scratch() else {
        return -EPERM;
    };
    let key = &mut scratch.messages[0].key;
    key.clear_table();
    key.clear_object();
    key.profile_id = subject.profile_id;
    key.action = action;
    key.family = 0;
    target(key);
    let policy = KernelPolicy::in_force();
    let outcome = decision::decide_single(&policy, policy.profile_mode(subject), scratch);
    emit_events(subject, scratch);
    if outcome == BatchOutcome::Deny { -EPERM } else { 0 }
}

/// A field of a kernel object the verifier knows the type of (a hook's
/// argument, `bpf_get_current_task_btf`, or a pointer loaded by this from
/// one of those): one load, where [`read_kernel`] is a helper call of ~100
/// instructions. Through a pointer the verifier does not trust (one loaded
/// from a field, on most kernels) the JIT guards the load: a fault or a
/// NULL base reads 0. Through a trusted one (a hook's argument, from 6.2)
/// the load is plain and the verifier holds the pointer valid, so one the
/// kernel may pass as NULL is checked as a number ([`as_number`]) first.
/// The verifier checks at load that `offset` lands on a field of that
/// type (KERNEL_OFFSETS is read-only, so it sees the offset as a
/// constant) and refuses the program otherwise; a pointer read by
/// `read_kernel` is a number to it, and cannot be a base here.
#[inline(always)]
pub fn btf_load<T: Copy>(base: *const u8, offset: u32) -> T {
    // Volatile and wrapping: nothing for the compiler to infer from the
    // load (a base not null, say) and fold away.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize).cast::<T>()) }
}

/// `pointer` as a plain number, for a global function's argument, which
/// the verifier refuses a BTF-typed pointer (from [`btf_load`]): a copy
/// through the helper, whose result it cannot type. A helper call: for
/// rare paths.
#[inline(always)]
pub fn as_number(pointer: *const u8) -> u64 {
    read_kernel_or_zero::<u64>((&raw const pointer).cast(), 0)
}

#[inline(always)]
pub fn read_kernel<T: Default>(base: *const u8, offset: u32) -> Option<T> {
    let mut value = T::default();
    let rc = unsafe {
        bpf_probe_read_kernel(
            core::ptr::from_mut(&mut value).cast(),
            core::mem::size_of::<T>() as u32,
            base.add(offset as usize).cast(),
        )
    };
    (rc == 0).then_some(value)
}

/// [`read_kernel`], zero where unreadable (the helper zeroes what it could
/// not read): no branch for the verifier to follow. Its own copy of the
/// call on purpose: both built on one helper returning (value, read) made
/// the verifier walk 6.1's `rtnetlink_send` 4.2 times as far (78k to 328k
/// instructions) and 7.2's `socket_sendmsg` 1.75 times (session 28).
#[inline(always)]
pub fn read_kernel_or_zero<T: Default>(base: *const u8, offset: u32) -> T {
    let mut value = T::default();
    unsafe {
        bpf_probe_read_kernel(
            core::ptr::from_mut(&mut value).cast(),
            core::mem::size_of::<T>() as u32,
            base.add(offset as usize).cast(),
        )
    };
    value
}

/// Runs `step(0)`, `step(1)`, ... up to `times` steps, until one returns
/// false, in a `bpf_loop`: the verifier checks the step once, whatever
/// `times` is. State carried from step to step belongs in map memory.
#[inline(always)]
pub fn repeat<F: FnMut(u32) -> bool>(times: u32, mut step: F) {
    let step_at: *mut F = &mut step;
    unsafe { bpf_loop(times, repeat_step::<F> as *mut c_void, step_at.cast(), 0) };
}

/// One `bpf_loop` iteration of [`repeat`]; 1 stops the loop.
#[inline(never)]
extern "C" fn repeat_step<F: FnMut(u32) -> bool>(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the closure on `repeat`'s caller's stack.
    let step = unsafe { &mut *ctx.cast::<F>() };
    if step(index as u32) { 0 } else { 1 }
}

#[inline(always)]
pub fn emit_events<const N: usize>(subject: &Subject, scratch: &BatchScratch<N>) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid = bpf_get_current_uid_gid() as u32;
    // The version of the generation the decision read, not of whatever is
    // in force by now.
    let generation = unsafe { core::ptr::read_volatile(&scratch.generation) } as usize & 1;
    let policy_version = SETTINGS.get(SETTINGS_INDEX).map(|s| s.policy_versions[generation]).unwrap_or(0);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let count = unsafe { core::ptr::read_volatile(&scratch.count) };
    repeat(count, |i| {
        let message = scratch.message(i);
        let Some(mut slot) = EVENTS.reserve::<Event>(0) else {
            count_lost_event();
            return true;
        };
        // Field by field into the ring: a whole-struct write would be a memcpy call.
        let event = slot.as_mut_ptr();
        unsafe {
            (*event).boot_ns = now;
            (*event).policy_version = policy_version;
            (*event).content_digest = message.content_digest;
            crate::files::write_current_exe(&raw mut (*event).exe);
            (*event).tgid = (pid_tgid >> 32) as u32;
            (*event).tid = pid_tgid as u32;
            (*event).uid = uid;
            (*event).profile_id = subject.profile_id;
            (*event).action = message.key.action;
            (*event).tier = message.tier;
            (*event).verdict = message.verdict;
            (*event).rule_index = message.rule_index;
            (*event).warrant_index = message.warrant_index;
            (*event).msg_index = i as u16;
            (*event).msg_count = count as u16;
            // family and its 7 padding bytes are one little-endian word.
            (&raw mut (*event).family).cast::<u64>().write_volatile(message.key.family as u64);
            bpf_get_current_comm((&raw mut (*event).comm).cast(), 16);
            copy_words((&raw mut (*event).table).cast(), (&raw const message.key.table).cast(), NAME_LEN / 8);
            copy_words((&raw mut (*event).object).cast(), (&raw const message.key.object).cast(), NAME_LEN / 8);
        }
        slot.submit(0);
        true
    });
}

/// Records that process `tgid` became a subject through a policy match
/// (`kind`, one of `match_kind`), as a SUBJECT_MATCHED event.
#[inline(always)]
pub fn emit_matched(subject: &Subject, kind: u32, tgid: u32) {
    let Some(mut slot) = EVENTS.reserve::<Event>(0) else {
        count_lost_event();
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let event = slot.as_mut_ptr();
    unsafe {
        zero_words(event.cast(), core::mem::size_of::<Event>() / 8);
        (*event).boot_ns = bpf_ktime_get_boot_ns();
        (*event).tgid = tgid;
        (*event).tid = pid_tgid as u32;
        (*event).uid = bpf_get_current_uid_gid() as u32;
        (*event).profile_id = subject.profile_id;
        (*event).action = action::SUBJECT_MATCHED;
        (*event).warrant_index = NO_WARRANT;
        (&raw mut (*event).table).cast::<u64>().write_volatile(kind as u64);
        bpf_get_current_comm((&raw mut (*event).comm).cast(), 16);
    }
    slot.submit(0);
}
