//! Netlink messages as the kernel walks them: headers, attributes (aligned
//! lengths, last attribute of a type wins), and the classifier interface
//! each protocol implements. The nfnetlink classifier (nftables, ipset, the
//! other netfilter subsystems) is in `nftables`; every other protocol's in
//! `netlink_protocols`. The same code runs in the BPF program (reading the
//! skb) and in the plain test tier (reading a byte slice).

mod nftables;

pub use nftables::*;

use crate::{NAME_LEN, TargetKey, action};

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: u32 = 16;
/// `sizeof(struct nfgenmsg)`.
pub const NFGENMSG_LEN: u32 = 4;
/// `sizeof(struct nlattr)`.
pub const NLA_HDRLEN: u32 = 4;

/// Most actions one sendmsg may carry from a subject (an `nft -f` of as
/// many commands); a longer batch is denied whole. Each action's decision
/// is kept in the batch scratch the sendmsg claims (168 bytes an action,
/// in a preallocated map: see `BATCHES`) until the batch is settled.
pub const MAX_MESSAGES: usize = 1023;
/// Most top-level attributes read per message (a set with every option
/// carries about fifteen; rule expressions are one nested attribute). A
/// message with more is unparseable, so denied.
pub const MAX_ATTRS: usize = 24;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_APPEND: u16 = 0x800;

/// Longest rule content the kernel digests; a longer one gets
/// [`DIGEST_TOO_LONG`], which no warrant binds.
pub const MAX_DIGEST_BYTES: u32 = 4096;
/// The digest of content longer than [`MAX_DIGEST_BYTES`].
pub const DIGEST_TOO_LONG: u64 = u64::MAX;

/// The content digest of `bytes` under `key` (SipHash-2-4), as the kernel
/// computes it over an nft rule's NFTA_RULE_EXPRESSIONS payload with the
/// host's per-boot key (see README, exact content).
pub fn content_digest(key: [u64; 2], bytes: &[u8]) -> u64 {
    if bytes.len() > MAX_DIGEST_BYTES as usize {
        return DIGEST_TOO_LONG;
    }
    crate::siphash::siphash24(key, bytes)
}

/// The key [`SliceBuffer`] digests with: the plain tier's, never a host's.
pub const PLAIN_DIGEST_KEY: [u64; 2] = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];

/// `NLM_F_EXCL`: on a NEW request, fail if the object exists (no update).
pub const NLM_F_EXCL: u16 = 0x200;

/// `NLA_TYPE_MASK`: strips NLA_F_NESTED and NLA_F_NET_BYTEORDER.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Read access to the bytes of one sendmsg.
#[allow(clippy::len_without_is_empty)] // a buffer is walked by offset, never asked if empty
pub trait MessageBuffer {
    /// Number of bytes in the buffer.
    fn len(&self) -> u32;
    /// Copies `N` bytes at `offset`; false if they are not all inside the buffer.
    fn read<const N: usize>(&self, offset: u32, out: &mut [u8; N]) -> bool;
    /// Like `bpf_probe_read_kernel_str`: copies bytes at `offset` into `out`
    /// until a NUL or `size - 1` bytes (`size` is at most NAME_LEN), then a
    /// NUL. Returns the bytes written including the NUL, negative on a fault.
    fn read_str(&self, offset: u32, size: u32, out: &mut [u8; NAME_LEN]) -> i64;
    /// [`content_digest`] of the `len` bytes at `offset`; 0 if they cannot
    /// be read, or when `offset` is 0 (no content: see [`MessageNotes`]).
    fn content_digest(&self, offset: u32, len: u32) -> u64;
    /// Runs `step(0)`, `step(1)`, ... up to `times` steps, until one returns
    /// false (see `decision::PolicyView::repeat`: the kernel runs it in a
    /// `bpf_loop`, and state carried between steps lives in map memory).
    fn repeat<F: FnMut(u32) -> bool>(&self, times: u32, mut step: F) {
        for i in 0..times {
            if !step(i) {
                break;
            }
        }
    }
}

/// The fixed part of one netlink message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    /// `nlmsg_len`.
    pub len: u32,
    pub msg_type: u16,
    pub flags: u16,
    /// `nfgen_family`, 0 when the message is too short to have one.
    pub family: u8,
}

impl MessageHeader {
    /// The nfnetlink subsystem (high byte of the type).
    pub fn subsystem(&self) -> u16 {
        self.msg_type >> 8
    }
    /// The subsystem's message number (low byte of the type).
    pub fn message(&self) -> u16 {
        self.msg_type & 0xff
    }
}

#[repr(C, align(8))]
struct Aligned16([u8; 16]);

/// Where the walk over a buffer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A message starts here; the next one starts at `next`.
    Message { header: MessageHeader, next: u32 },
    /// No further message (the kernel stops here too).
    End,
}

/// Reads the message header at `offset`, as `netlink_rcv_skb` would.
pub fn read_header<B: MessageBuffer>(buf: &B, offset: u32) -> Step {
    let total = buf.len();
    if offset >= total || total - offset < NLMSG_HDRLEN {
        return Step::End;
    }
    let mut header_bytes = core::mem::MaybeUninit::<Aligned16>::uninit();
    // SAFETY: zeroed word by word (a plain zero-init is a memset call on BPF).
    let raw = unsafe {
        crate::zero_words(header_bytes.as_mut_ptr().cast(), 2);
        &mut (*header_bytes.as_mut_ptr()).0
    };
    if !buf.read(offset, raw) {
        return Step::End;
    }
    let mut family = [0u8; 1];
    let have_family = total - offset >= NLMSG_HDRLEN + NFGENMSG_LEN && buf.read(offset + NLMSG_HDRLEN, &mut family);
    let len = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
    // The kernel stops at a header that does not fit, and handles nothing
    // of the rest.
    if len < NLMSG_HDRLEN || len > total - offset {
        return Step::End;
    }
    let header = MessageHeader {
        len,
        msg_type: u16::from_ne_bytes([raw[4], raw[5]]),
        flags: u16::from_ne_bytes([raw[6], raw[7]]),
        family: if have_family { family[0] } else { 0 },
    };
    let aligned = (len + 3) & !3;
    let next = if aligned > total - offset { total } else { offset + aligned };
    Step::Message { header, next }
}

/// The header of the one message of `buf`, if it holds exactly one as
/// `netlink_rcv_skb` reads it (trailing bytes too short for a header are
/// ignored there too). None for none, or more than one.
pub fn lone_message<B: MessageBuffer>(buf: &B) -> Option<MessageHeader> {
    match read_header(buf, 0) {
        Step::Message { header, next } if read_header(buf, next) == Step::End => Some(header),
        _ => None,
    }
}

/// What one message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Batch delimiters, netlink control and read requests: not actions.
    NotAnAction,
    /// An action; `key` holds action, family, table and object.
    Action,
    /// The message cannot be matched to policy (a name too long or truncated
    /// attributes): treated as denied.
    Unparseable,
}

/// What the walk over one message's attributes noted: where its content
/// (an nft rule's expressions) lies, which attribute types it carries, and
/// whether it addresses its object by reference. In the kernel this is map
/// memory (the batch scratch), written and read volatile: carried in
/// registers through the attribute loop, every combination of these would
/// be a state of its own to the verifier.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageNotes {
    /// Offset of the content's attribute payload; 0 when the message has
    /// none (no attribute starts at offset 0).
    pub at: u32,
    pub len: u32,
    /// A bit per attribute type seen (bit 31 for any from 31 up).
    pub seen: u32,
    /// Non-zero if the message carries its reference attribute (a handle or
    /// a batch id), which the kernel looks the object up by.
    pub by_reference: u32,
    /// Where the attribute walk stands: the next attribute's offset.
    pub next_attr: u32,
    /// How the attribute walk ended: one of `WALK_*`.
    pub walk: u32,
}
const _: () = assert!(core::mem::size_of::<MessageNotes>() == 24);

/// [`MessageNotes::walk`]: still walking (more attributes than read).
pub(crate) const WALK_ON: u32 = 0;
/// [`MessageNotes::walk`]: every attribute read.
pub(crate) const WALK_DONE: u32 = 1;
/// [`MessageNotes::walk`]: the attributes are malformed or a name does not fit.
pub(crate) const WALK_FAILED: u32 = 2;

impl MessageNotes {
    #[inline(always)]
    pub(crate) fn note_seen(&mut self, bits: u32) {
        // SAFETY: plain fields of `self`.
        unsafe { (&raw mut self.seen).write_volatile((&raw const self.seen).read_volatile() | bits) }
    }
}

/// Reads a `u32` field volatile (see [`MessageNotes`]).
#[inline(always)]
pub(crate) fn read_field(field: &u32) -> u32 {
    // SAFETY: a reference is valid to read.
    unsafe { core::ptr::read_volatile(field) }
}

/// Writes a `u32` field volatile (see [`MessageNotes`]).
#[inline(always)]
pub(crate) fn write_field(field: &mut u32, value: u32) {
    // SAFETY: a reference is valid to write.
    unsafe { core::ptr::write_volatile(field, value) }
}

/// How the messages of one netlink protocol are classified: the one
/// per-protocol piece of `decision::decide_batch`.
pub trait Classifier {
    /// Classifies the message at `offset` into `key` (profile_id is left
    /// alone) and notes where its content lies, as [`classify`] does.
    fn classify<B: MessageBuffer>(
        &self,
        buf: &B,
        offset: u32,
        header: &MessageHeader,
        key: &mut TargetKey,
        content: &mut MessageNotes,
    ) -> Class;
}

/// The attribute an attribute walk (`notes.next_attr`) stands at: its
/// offset, length and type. None once the walk is over, `notes.walk` saying
/// how: every attribute read, or one malformed.
#[inline(always)]
pub(crate) fn next_attribute<B: MessageBuffer>(buf: &B, end: u32, notes: &mut MessageNotes) -> Option<(u32, u32, u16)> {
    let at = read_field(&notes.next_attr);
    if at >= end || end - at < NLA_HDRLEN {
        write_field(&mut notes.walk, WALK_DONE);
        return None;
    }
    let Some((nla_len, nla_type)) = attribute_header(buf, at, end) else {
        write_field(&mut notes.walk, WALK_FAILED);
        return None;
    };
    Some((at, nla_len, nla_type))
}

/// The length and type (flags stripped) of the attribute at `at`, which
/// must end by `end`; None if it cannot be read or does not fit, as
/// `nla_parse` would refuse it (and the kernel apply none of the message).
#[inline(always)]
pub fn attribute_header<B: MessageBuffer>(buf: &B, at: u32, end: u32) -> Option<(u32, u16)> {
    let mut raw = [0u8; 4];
    if !buf.read(at, &mut raw) {
        return None;
    }
    let nla_len = u16::from_ne_bytes([raw[0], raw[1]]) as u32;
    let nla_type = u16::from_ne_bytes([raw[2], raw[3]]) & NLA_TYPE_MASK;
    (nla_len >= NLA_HDRLEN && nla_len <= end - at).then_some((nla_len, nla_type))
}

/// Reads a string attribute's payload into `out` the way the kernel takes
/// it: up to the first NUL, never beyond the payload. False if the name has
/// NAME_LEN - 2 bytes or more (too long to key on). `out` must be zeroed.
fn read_name<B: MessageBuffer>(buf: &B, offset: u32, payload_len: u32, out: &mut [u8; NAME_LEN]) -> bool {
    if payload_len == 0 {
        return true;
    }
    // One byte past the payload is allowed so that an unterminated name of
    // `payload_len` bytes is read whole rather than cut by the terminator.
    let size = if payload_len < NAME_LEN as u32 { payload_len + 1 } else { NAME_LEN as u32 };
    let written = buf.read_str(offset, size, out);
    if written <= 0 {
        return false;
    }
    // `size - 1` bytes at most were kept, so nothing past the payload is in
    // the name; filling the whole buffer means the name may have been cut.
    (written as u32) < NAME_LEN as u32
}

/// A [`MessageBuffer`] over bytes in memory: what the plain test tier and
/// the daemon's request rendering use.
pub struct SliceBuffer<'a>(pub &'a [u8]);

impl MessageBuffer for SliceBuffer<'_> {
    fn len(&self) -> u32 {
        self.0.len() as u32
    }

    fn read<const N: usize>(&self, offset: u32, out: &mut [u8; N]) -> bool {
        let start = offset as usize;
        match self.0.get(start..start + N) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    fn content_digest(&self, offset: u32, len: u32) -> u64 {
        let start = offset as usize;
        if start == 0 {
            return 0;
        }
        self.0.get(start..start + len as usize).map_or(0, |bytes| content_digest(PLAIN_DIGEST_KEY, bytes))
    }

    fn read_str(&self, offset: u32, size: u32, out: &mut [u8; NAME_LEN]) -> i64 {
        let size = (size as usize).min(NAME_LEN);
        if size == 0 || offset as usize > self.0.len() {
            return -14; // EFAULT, as the helper reports
        }
        let src = &self.0[offset as usize..];
        let mut n = 0;
        // Past the end of the buffer reads as NUL here.
        while n + 1 < size && n < src.len() && src[n] != 0 {
            out[n] = src[n];
            n += 1;
        }
        out[n] = 0;
        (n + 1) as i64
    }
}
