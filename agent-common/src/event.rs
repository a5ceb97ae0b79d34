//! What the programs send the daemon over the EVENTS ring.

use crate::{FileKey, NAME_LEN};

/// One decision, sent to the daemon over the EVENTS ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_BOOTTIME at the decision (ns).
    pub boot_ns: u64,
    pub policy_version: u64,
    /// Digest of the message's content (an nft rule's expressions), 0 when
    /// the action has none.
    pub content_digest: u64,
    /// The executable the process ran at the decision (its inode, as
    /// PROTECTED keys inodes); zero when unreadable. The daemon names the
    /// executable by it, not by whatever the process runs when it reads
    /// the event.
    pub exe: FileKey,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub profile_id: u32,
    pub action: u32,
    /// Tier of the matched rule ([`crate::tier::UNMATCHED`] when none).
    pub tier: u32,
    /// What happened ([`crate::verdict`]).
    pub verdict: u32,
    pub rule_index: u32,
    /// Warrant consulted or used, `u32::MAX` when none.
    pub warrant_index: u32,
    /// Position of this message within its sendmsg, and how many the sendmsg had.
    pub msg_index: u16,
    pub msg_count: u16,
    pub family: u8,
    pub _pad: [u8; 7],
    pub comm: [u8; 16],
    pub table: [u8; NAME_LEN],
    pub object: [u8; NAME_LEN],
}
const _: () = assert!(core::mem::size_of::<Event>() == 88 + 16 + 2 * NAME_LEN);

/// `Event::warrant_index` when no warrant was involved.
pub const NO_WARRANT: u32 = u32::MAX;

/// Most bytes of a rule's content sent in one [`RuleContent`].
pub const RULE_CONTENT_BYTES: usize = 512;

/// An nft rule's expressions (NFTA_RULE_EXPRESSIONS payload) as the kernel
/// digested them, sent on the EVENTS ring before the decision's [`Event`]
/// so the daemon can show an RI the rule behind a change request. Told apart
/// from an [`Event`] by its size.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleContent {
    /// The content digest the decision carries.
    pub digest: u64,
    /// Bytes of the content (its first RULE_CONTENT_BYTES are in `bytes`).
    pub len: u32,
    pub _pad: u32,
    pub bytes: [u8; RULE_CONTENT_BYTES],
}
const _: () = assert!(core::mem::size_of::<RuleContent>() == 16 + RULE_CONTENT_BYTES);
const _: () = assert!(core::mem::size_of::<RuleContent>() != core::mem::size_of::<Event>());
