//! Netfilter: every message a subject sends on a NETLINK_NETFILTER socket is
//! classified and decided before nfnetlink sees the batch. One denied message
//! fails the whole sendmsg with EPERM, so nothing of the batch is applied.

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{
    NAME_LEN, Subject,
    decision::{self, BatchOutcome},
    netlink::{MessageBuffer, NETLINK_NETFILTER},
};

use crate::{
    maps::kernel_offsets,
    policy::{KernelPolicy, emit_events, profile_mode, read_kernel},
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
    let Some(scratch) = subjects::scratch() else {
        return -EPERM;
    };
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

