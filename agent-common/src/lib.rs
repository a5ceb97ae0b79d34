//! Types shared by Warrant's kernel programs (agent-ebpf) and its daemon (agent).
//!
//! Every type that crosses the user/kernel boundary is `#[repr(C)]`, has its
//! padding spelled out as named fields, and carries a size assertion, so the
//! two sides cannot disagree about a layout. The classifier and the decision
//! function live here too: the kernel runs them against maps and the skb, the
//! plain test tier runs the very same code against in-memory fakes.
#![no_std]

pub mod action;
pub mod batch_slots;
pub mod decision;
pub mod disk_ioctl;
mod event;
pub mod hash;
pub mod ioctl;
pub mod legacy;
mod maps;
pub mod mount_api;
pub mod netlink;
pub mod netlink_protocols;
pub mod netns;
mod offsets;
pub mod siphash;
pub mod sysfs;
mod target_key;
pub use target_key::{FILE_NAME_AT, FILE_NAME_LEN, SOCKET_NAME_CUT};
mod words;

pub use event::*;
pub use maps::*;
pub use offsets::*;
pub use words::*;

/// Longest table, chain or set name Warrant keys on, including the NUL.
/// nftables allows up to 256; a longer name in a subject's message cannot be
/// matched against policy and is denied.
pub const NAME_LEN: usize = 64;

/// `TargetKey::family` value that matches any family (a `*` in policy).
pub const FAMILY_ANY: u8 = 0xff;

/// Decision tiers, as stored in [`RuleEntry::tier`] and reported in events.
pub mod tier {
    /// No rule matched: denied.
    pub const UNMATCHED: u32 = 0;
    /// Pre-authorised.
    pub const ALLOW: u32 = 1;
    /// Needs a valid warrant.
    pub const APPROVE: u32 = 2;
    /// Never.
    pub const DENY: u32 = 3;
}

/// What the kernel did with one classified operation.
pub mod verdict {
    /// Allowed by an `allow` rule.
    pub const ALLOWED: u32 = 1;
    /// Allowed by a warrant (one use consumed).
    pub const ALLOWED_BY_WARRANT: u32 = 2;
    /// Denied: `deny` rule or no rule.
    pub const DENIED: u32 = 3;
    /// Denied: `approve` tier without a usable warrant (becomes a change request).
    pub const DENIED_NEEDS_WARRANT: u32 = 4;
    /// Audit-mode profile: would have been denied, allowed instead.
    pub const WOULD_DENY: u32 = 5;
    /// This message was acceptable, but another one in the same batch was denied,
    /// so nothing of the batch was applied.
    pub const BATCH_DENIED: u32 = 6;
    /// The message could not be parsed (malformed, names too long, batch too
    /// large): denied, since the kernel's view cannot be matched to policy.
    pub const UNPARSEABLE: u32 = 7;
}

/// Profile modes, as stored in [`ProfileEntry::mode`].
pub mod mode {
    pub const ENFORCE: u32 = 0;
    pub const AUDIT: u32 = 1;
}

/// Files under /proc (sysctls) have no stable inode numbers: procfs makes
/// new ones as it pleases. There, protection goes by path instead: a
/// protected /proc tree is the hash of its path below /proc (`sys/net`),
/// mixed one component at a time, so the kernel can hash a file's path as it
/// walks up its dentries and look each prefix up.
pub mod proc_path {
    use crate::hash::{FNV64_OFFSET, FNV64_PRIME, fnv1a_64};

    /// The hash of the empty path (the procfs root).
    pub const ROOT: u64 = FNV64_OFFSET;
    /// Longest component name hashed whole; longer ones are hashed by their start.
    pub const NAME_LEN: usize = 48;

    /// The hash of one path component (up to its first NUL).
    pub fn component(name: &[u8]) -> u64 {
        fnv1a_64(name, NAME_LEN - 1)
    }

    /// The hash of `prefix/component`, given the hashes of both.
    pub fn join(prefix: u64, component: u64) -> u64 {
        (prefix ^ component).wrapping_mul(FNV64_PRIME).rotate_left(5)
    }

    /// The hash of `sys/fs/binfmt_misc` (a test checks it): the tree of
    /// every binfmt_misc file, wherever and whenever it is mounted.
    pub const BINFMT_MISC: u64 = 0x9cf5_cb58_472f_a9ed;
}

/// Ways a process becomes a subject without `warrant run`: at exec, by its
/// executable, cgroup or uid, in that order of precedence.
pub mod match_kind {
    /// `value` = [device (kernel encoding), inode] of the executable.
    pub const EXE: u32 = 1;
    /// `value` = [cgroup v2 id, 0]; a cgroup made under a matched one matches too.
    pub const CGROUP: u32 = 2;
    /// `value` = [real uid, 0], as the new program will run.
    pub const UID: u32 = 3;
    /// Not in MATCHES: the program (or `#!` script) is a file a subject
    /// wrote (see [`crate::Mark`]); it runs as a subject of that profile.
    pub const WRITTEN: u32 = 4;
}

/// Longest cgroup path (with its NUL) matched by path when a cgroup is made.
pub const CGROUP_PATH_LEN: usize = 128;

/// The hash of a cgroup path as the kernel's `cgroup_mkdir` tracepoint gives
/// it (`/agents.slice/agent.service`), up to its first NUL: the key of the
/// CGROUP_PATHS map, so that a matched cgroup deleted and made again (a
/// systemd restart) is matched again.
pub fn cgroup_path_hash(path: &[u8]) -> u64 {
    hash::fnv1a_64(path, CGROUP_PATH_LEN - 1)
}

/// `BPF_FS_MAGIC`: the superblock magic of bpffs, where Warrant's pins live.
pub const BPF_FS_MAGIC: u64 = 0xcafe_4a11;
/// `TMPFS_MAGIC` (/run is tmpfs).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// `NSFS_MAGIC`: namespace files (/proc/PID/ns/*, /run/netns/* pins).
pub const NSFS_MAGIC: u64 = 0x6e73_6673;

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), made of integers and byte arrays, with
    // every padding byte a named field, so any bit pattern is valid.
    unsafe impl aya::Pod for Subject {}
    unsafe impl aya::Pod for ProfileEntry {}
    unsafe impl aya::Pod for TargetKey {}
    unsafe impl aya::Pod for RuleEntry {}
    unsafe impl aya::Pod for RateWindow {}
    unsafe impl aya::Pod for WarrantEntry {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for Event {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for FileKey {}
    unsafe impl aya::Pod for Pickup {}
    unsafe impl aya::Pod for Mark {}
    unsafe impl aya::Pod for MatchKey {}
    unsafe impl aya::Pod for ProtectedEntry {}
}
