//! Netfilter: every message a subject sends on a NETLINK_NETFILTER socket is
//! classified and decided before nfnetlink sees the batch. One denied message
//! fails the whole sendmsg with EPERM, so nothing of the batch is applied.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_comm, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
            bpf_probe_read_kernel_str,
        },
    },
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{
    Event, NAME_LEN, copy_words, RuleEntry, SETTINGS_INDEX, Subject, TargetKey, mode,
    decision::{self, BatchOutcome, BatchScratch, PolicyView},
    netlink::{MAX_MESSAGES, MessageBuffer, NETLINK_NETFILTER},
};

use crate::{
    atomics,
    maps::{
        BATCH_SCRATCH, EVENTS, PROFILES, RULES, SETTINGS, WARRANTS, count_lost_event,
        kernel_offsets,
    },
    subjects,
};

const EPERM: i32 = 1;

/// The linear data of a netlink skb (netlink skbs are never paged).
struct SkbData {
    data: *const u8,
    len: u32,
}

impl MessageBuffer for SkbData {
    fn len(&self) -> u32 {
        self.len
    }

    #[inline(always)]
    fn read<const N: usize>(&self, offset: u32, out: &mut [u8; N]) -> bool {
        if offset > self.len || self.len - offset < N as u32 {
            return false;
        }
        // Straight into `out`: a copy of the result would be a memcpy call.
        let rc = unsafe {
            bpf_probe_read_kernel(out.as_mut_ptr().cast(), N as u32, self.data.add(offset as usize).cast())
        };
        rc == 0
    }

    #[inline(always)]
    fn read_str(&self, offset: u32, size: u32, out: &mut [u8; NAME_LEN]) -> i64 {
        if offset > self.len || size == 0 || size > NAME_LEN as u32 {
            return -14;
        }
        unsafe {
            bpf_probe_read_kernel_str(
                out.as_mut_ptr().cast(),
                size,
                self.data.add(offset as usize).cast(),
            )
        }
    }
}

/// The RULES and WARRANTS maps, as the decision function sees them.
pub struct KernelPolicy;

impl KernelPolicy {
    fn live_warrant(key: &TargetKey) -> Option<*mut warrant_common::WarrantEntry> {
        let entry = WARRANTS.get_ptr_mut(key)?;
        let now = unsafe { bpf_ktime_get_boot_ns() };
        let (not_before, expires) = unsafe { ((*entry).not_before_ns, (*entry).expires_ns) };
        if now < not_before || now >= expires {
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

    fn usable_warrant(&self, key: &TargetKey) -> Option<u32> {
        let entry = Self::live_warrant(key)?;
        if atomics::load(Self::uses_left(entry)) == 0 {
            return None;
        }
        Some(unsafe { (*entry).warrant_index })
    }

    fn consume_warrant(&self, key: &TargetKey) -> bool {
        let Some(entry) = Self::live_warrant(key) else {
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
}

#[lsm(hook = "netlink_send")]
pub fn netlink_send(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(2);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let sock: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    decide(&subject, sock, skb)
}

#[inline(always)]
fn decide(subject: &Subject, sock: *const u8, skb: *const u8) -> i32 {
    let offsets = kernel_offsets();
    let Some(protocol) = read_kernel::<u16>(sock, offsets.sock_sk_protocol) else {
        return -EPERM;
    };
    if protocol != NETLINK_NETFILTER {
        return 0;
    }
    let (Some(data), Some(len)) = (
        read_kernel::<u64>(skb, offsets.sk_buff_data),
        read_kernel::<u32>(skb, offsets.sk_buff_len),
    ) else {
        return -EPERM;
    };
    let buffer = SkbData { data: data as *const u8, len };
    let Some(scratch) = BATCH_SCRATCH.get_ptr_mut(0) else {
        return -EPERM;
    };
    let scratch = unsafe { &mut *scratch };
    let outcome = decision::decide_batch(
        &buffer,
        &KernelPolicy,
        subject.profile_id,
        profile_mode(subject),
        scratch,
    );
    if outcome != BatchOutcome::NoAction {
        emit_events(subject, scratch);
    }
    match outcome {
        BatchOutcome::Deny => -EPERM,
        _ => 0,
    }
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

/// The subject's profile mode; enforce if the profile is unknown.
#[inline(always)]
pub fn profile_mode(subject: &Subject) -> u32 {
    unsafe { PROFILES.get(&subject.profile_id) }.map(|profile| profile.mode).unwrap_or(mode::ENFORCE)
}

#[inline(always)]
pub fn emit_events(subject: &Subject, scratch: &BatchScratch) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid = bpf_get_current_uid_gid() as u32;
    let policy_version = SETTINGS.get(SETTINGS_INDEX).map(|s| s.policy_version).unwrap_or(0);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    for i in 0..MAX_MESSAGES {
        let count = unsafe { core::ptr::read_volatile(&scratch.count) };
        if i >= count as usize {
            break;
        }
        let message = &scratch.messages[i];
        let Some(mut slot) = EVENTS.reserve::<Event>(0) else {
            count_lost_event();
            continue;
        };
        // Field by field into the ring: a whole-struct write would be a memcpy call.
        let event = slot.as_mut_ptr();
        unsafe {
            (*event).boot_ns = now;
            (*event).policy_version = policy_version;
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
    }
}
