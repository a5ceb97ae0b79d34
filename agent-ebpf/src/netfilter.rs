//! Netfilter: every message a subject sends on a NETLINK_NETFILTER socket is
//! classified and decided before nfnetlink sees the batch. One denied message
//! fails the whole sendmsg with EPERM, so nothing of the batch is applied.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{
    NAME_LEN, RULE_CONTENT_BYTES, RuleContent, Subject,
    decision::{self, BatchOutcome},
    netlink::{Classifier, DIGEST_TOO_LONG, MAX_DIGEST_BYTES, MessageBuffer, NETLINK_NETFILTER, Nfnetlink},
    siphash::SipState,
};

use crate::{
    maps::{DIGEST_KEY, EVENTS, claim_batch, count_lost_event, offset, release_batch},
    policy::{KernelPolicy, emit_events, read_kernel},
    subjects,
};

const EPERM: i32 = 1;

/// The linear data of a netlink skb (netlink skbs are never paged).
pub struct SkbData {
    pub data: *const u8,
    pub len: u32,
}

impl SkbData {
    /// The data of `skb`; None if it cannot be read.
    #[inline(always)]
    pub fn of(skb: *const u8) -> Option<Self> {
        let data = read_kernel::<u64>(skb, offset!(sk_buff_data))?;
        let len = read_kernel::<u32>(skb, offset!(sk_buff_len))?;
        Some(SkbData { data: data as *const u8, len })
    }
}

/// The netlink protocol of `sock` (`sk_protocol`); None if it cannot be read.
#[inline(always)]
pub fn protocol_of(sock: *const u8) -> Option<u16> {
    read_kernel::<u16>(sock, offset!(sock_sk_protocol))
}

/// Decides every message of one sendmsg with `classifier`, sends the
/// decisions to the daemon, and returns the hook's verdict.
#[inline(always)]
pub fn decide_sendmsg<C: Classifier>(subject: &Subject, buffer: &SkbData, classifier: &C) -> i32 {
    let Some(scratch) = claim_batch(subject.profile_id) else {
        // Every batch slot is busy, or the profile's share is: refused, and counted.
        count_lost_event();
        return -EPERM;
    };
    let policy = KernelPolicy::in_force();
    let mode = policy.profile_mode(subject);
    let outcome = decision::decide_batch(buffer, classifier, &policy, subject.profile_id, mode, scratch);
    if outcome != BatchOutcome::NoAction {
        emit_events(subject, scratch);
    }
    release_batch(scratch);
    match outcome {
        BatchOutcome::Deny => -EPERM,
        _ => 0,
    }
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
        let rc =
            unsafe { bpf_probe_read_kernel(out.as_mut_ptr().cast(), N as u32, self.data.add(offset as usize).cast()) };
        rc == 0
    }

    #[inline(always)]
    fn read_str(&self, offset: u32, size: u32, out: &mut [u8; NAME_LEN]) -> i64 {
        if offset > self.len || size == 0 || size > NAME_LEN as u32 {
            return -14;
        }
        unsafe { bpf_probe_read_kernel_str(out.as_mut_ptr().cast(), size, self.data.add(offset as usize).cast()) }
    }

    #[inline(always)]
    fn content_digest(&self, offset: u32, len: u32) -> u64 {
        warrant_content_digest(self.data as u64, self.len, offset, len)
    }

    #[inline(always)]
    fn repeat<F: FnMut(u32) -> bool>(&self, times: u32, step: F) {
        crate::policy::repeat(times, step)
    }
}

/// [`MessageBuffer::content_digest`] over the skb data at `data` (`data_len`
/// bytes). A global function: the verifier checks it once, on its own,
/// rather than again for every message of every batch `netlink_send` walks,
/// which its instruction budget could not afford.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn warrant_content_digest(data: u64, data_len: u32, offset: u32, len: u32) -> u64 {
    if offset == 0 {
        return 0;
    }
    if len > MAX_DIGEST_BYTES {
        return DIGEST_TOO_LONG;
    }
    if offset > data_len || data_len - offset < len {
        return 0;
    }
    let Some(walk) = subjects::digest_walk() else {
        return 0;
    };
    // The host's per-boot key, which only the daemon and the kernel hold.
    let Some(key) = DIGEST_KEY.get(0) else {
        return 0;
    };
    walk.data = data + offset as u64;
    walk.sip = SipState::new(*key);
    walk.at = 0;
    walk.end = len;
    let mut walk_at: *mut DigestWalk = walk;
    unsafe { bpf_loop(len.div_ceil(8), digest_step as *mut c_void, (&raw mut walk_at).cast(), 0) };
    // A read that failed part way digests nothing a warrant can bind.
    let walk = unsafe { &*walk_at };
    if unsafe { (&raw const walk.at).read_volatile() } != len {
        return 0;
    }
    let digest = walk.sip.finish();
    send_rule_content(data + offset as u64, len, digest);
    digest
}

/// Sends the first RULE_CONTENT_BYTES of a rule's content to the daemon,
/// which renders it for the change request. Best effort: a full ring only
/// costs the rendering, and is counted like any lost event.
#[inline(always)]
fn send_rule_content(from: u64, len: u32, digest: u64) {
    let Some(mut slot) = EVENTS.reserve::<RuleContent>(0) else {
        count_lost_event();
        return;
    };
    let record = slot.as_mut_ptr();
    let n = if len > RULE_CONTENT_BYTES as u32 { RULE_CONTENT_BYTES as u32 } else { len };
    unsafe {
        (*record).digest = digest;
        (*record).len = len;
        (*record)._pad = 0;
        if bpf_probe_read_kernel((&raw mut (*record).bytes).cast(), n, from as *const c_void) != 0 {
            (*record).len = 0;
        }
    }
    slot.submit(0);
}

/// One content digest in progress. It lives in task storage, not on the
/// stack: the verifier does not track map memory, so the `bpf_loop` steps
/// look alike to it and it checks the callback a few times, not once per
/// word (a stack counter would be a different constant at every step).
#[repr(C)]
pub struct DigestWalk {
    data: u64,
    sip: SipState,
    at: u32,
    end: u32,
    word: u64,
}

/// One `bpf_loop` step of [`SkbData::content_digest`]: feeds the next 8
/// bytes to the SipHash state, or the last 1 to 7; 1 stops the loop. A
/// word a step, not a byte: the probe read and the loop's call are most of
/// a step's cost, and a 4096-byte rule takes 512 steps, not 4096.
#[inline(never)]
extern "C" fn digest_step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the stack slot holding the DigestWalk's address.
    let walk = unsafe { &mut **ctx.cast::<*mut DigestWalk>() };
    let at = walk.at;
    if at >= walk.end || at >= MAX_DIGEST_BYTES {
        return 1;
    }
    let left = walk.end - at;
    let word = &raw mut walk.word;
    let from = walk.data.wrapping_add(at as u64) as *const c_void;
    // Little-endian bytes into a little-endian u64 (BPF runs in the host's
    // order; Warrant builds for bpfel): the word SipHash reads.
    if left >= 8 {
        if unsafe { bpf_probe_read_kernel(word.cast(), 8, from) } != 0 {
            return 1;
        }
        walk.sip.feed_word(unsafe { word.read_volatile() });
        walk.at = at + 8;
        return 0;
    }
    // The tail. `at` is a multiple of 8 here, so the tail is `end & 7`; the
    // mask also bounds the read's size for the verifier (`left & 7` would
    // not: the compiler drops the mask, knowing `left < 8`).
    let tail = walk.end & 7;
    unsafe { word.write_volatile(0) };
    if unsafe { bpf_probe_read_kernel(word.cast(), tail, from) } != 0 {
        return 1;
    }
    walk.sip.feed_tail(unsafe { word.read_volatile() }, tail);
    walk.at = at + tail;
    0
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
    match protocol_of(sock) {
        Some(NETLINK_NETFILTER) => {}
        Some(_) => return 0,
        None => return -EPERM,
    }
    match SkbData::of(skb) {
        Some(buffer) => decide_sendmsg(subject, &buffer, &Nfnetlink),
        None => -EPERM,
    }
}
