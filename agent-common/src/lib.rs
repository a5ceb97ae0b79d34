//! Types shared by Warrant's kernel programs (agent-ebpf) and its daemon (agent).
//!
//! Every type that crosses the user/kernel boundary is `#[repr(C)]`, has its
//! padding spelled out as named fields, and carries a size assertion, so the
//! two sides cannot disagree about a layout. The classifier and the decision
//! function live here too: the kernel runs them against maps and the skb, the
//! plain test tier runs the very same code against in-memory fakes.
#![no_std]

pub mod action;
pub mod decision;
pub mod hash;
pub mod ioctl;
pub mod legacy;
pub mod netlink;
pub mod netlink_protocols;
pub mod netns;
pub mod siphash;

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

/// Per-task subject marker kept in task-local storage. A task without one is
/// not a subject. Children inherit it at fork; it survives exec.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// Index of the profile in the compiled policy (key of the PROFILES map).
    /// It stays the first field: a daemon reads it from the pins of another
    /// layout to carry subjects over (see `PIN_LAYOUT_VERSION`).
    pub profile_id: u32,
    /// A namespace request between its fentry note and the `capable` hook
    /// that decides it (an action id, 0 when none). Kept in the marker,
    /// which every subject has, so noting a request cannot fail.
    pub pending_action: u32,
    /// The nsfs inode number the pending request targets.
    pub pending_namespace: u64,
}
const _: () = assert!(core::mem::size_of::<Subject>() == 16);

/// Key of the PROFILES map: a profile in one policy generation.
pub fn profile_key(generation: u8, profile_id: u32) -> u64 {
    ((generation as u64) << 32) | profile_id as u64
}

/// Per-profile settings (value of the PROFILES map, keyed by [`profile_key`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfileEntry {
    /// [`mode::ENFORCE`] or [`mode::AUDIT`].
    pub mode: u32,
    pub _reserved: u32,
}
const _: () = assert!(core::mem::size_of::<ProfileEntry>() == 8);

/// Key of the RULES and WARRANTS maps: which profile does which action to which target.
///
/// In RULES, `family == FAMILY_ANY` and all-zero names are wildcards; the kernel
/// looks up from most to least specific (see [`decision::widen_key`]).
/// In WARRANTS, keys are always exact. The names come first and the struct is
/// 8-byte aligned so the kernel can clear and copy them a word at a time
/// (byte loops cost the verifier dearly).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetKey {
    /// Table name, NUL padded.
    pub table: [u8; NAME_LEN],
    /// Chain, set, object or flowtable name, NUL padded; empty for table-level actions.
    pub object: [u8; NAME_LEN],
    pub profile_id: u32,
    /// One of [`action`]'s ids.
    pub action: u32,
    /// nfproto family (inet 1, ip 2, arp 3, netdev 5, bridge 7, ip6 10) or FAMILY_ANY.
    pub family: u8,
    /// In RULES, the policy generation the rule belongs to (see
    /// [`Settings::generation`]); 0 in WARRANTS, which outlive policies.
    pub generation: u8,
    pub _pad: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<TargetKey>() == 2 * NAME_LEN + 16);
const _: () = assert!(NAME_LEN.is_multiple_of(8));

impl TargetKey {
    pub const fn zeroed() -> Self {
        Self {
            table: [0; NAME_LEN],
            object: [0; NAME_LEN],
            profile_id: 0,
            action: 0,
            family: 0,
            generation: 0,
            _pad: [0; 6],
        }
    }

    /// Zeroes the table name, eight bytes at a time.
    #[inline(always)]
    pub fn clear_table(&mut self) {
        // SAFETY: `table` is at offset 0 of an 8-aligned struct, NAME_LEN is a multiple of 8.
        unsafe { zero_words((&raw mut self.table).cast(), NAME_LEN / 8) }
    }

    /// Zeroes the object name, eight bytes at a time.
    #[inline(always)]
    pub fn clear_object(&mut self) {
        // SAFETY: `object` is at offset NAME_LEN of an 8-aligned struct.
        unsafe { zero_words((&raw mut self.object).cast(), NAME_LEN / 8) }
    }

    /// Returns `attrs` after a round trip through `_pad` (cleared again
    /// before returning, since keys are compared whole). See
    /// `netlink::classify` for why.
    #[inline(always)]
    pub fn launder_attrs(&mut self, attrs: [u16; 3]) -> [u16; 3] {
        // `_pad` is 2-aligned (family and generation sit at an 8-aligned
        // offset) and holds exactly three u16s.
        let at = (&raw mut self._pad).cast::<u16>();
        let mut out = [0u16; 3];
        for (i, attr) in attrs.iter().enumerate() {
            // SAFETY: the three u16s lie within `_pad`, 2-aligned.
            unsafe {
                at.add(i).write_volatile(*attr);
                out[i] = at.add(i).read_volatile();
                at.add(i).write_volatile(0);
            }
        }
        out
    }

    /// `*self = *other`, eight bytes at a time.
    #[inline(always)]
    pub fn copy_from(&mut self, other: &TargetKey) {
        // SAFETY: both are 8-aligned and a whole number of words long.
        unsafe {
            copy_words(
                core::ptr::from_mut(self).cast(),
                core::ptr::from_ref(other).cast(),
                core::mem::size_of::<TargetKey>() / 8,
            )
        }
    }
}

/// Zeroes `words` u64s at `at`. Volatile, so the compiler cannot turn it into
/// a `memset` call, which on BPF is a byte loop the verifier walks byte by byte.
///
/// # Safety
/// `at` must be 8-aligned and valid for `words` u64 writes.
#[inline(always)]
pub unsafe fn zero_words(at: *mut u64, words: usize) {
    for i in 0..words {
        unsafe { at.add(i).write_volatile(0) };
    }
}

/// Copies `words` u64s; volatile for the same reason as [`zero_words`].
///
/// # Safety
/// Both pointers must be 8-aligned and valid for `words` u64s, not overlapping.
#[inline(always)]
pub unsafe fn copy_words(to: *mut u64, from: *const u64, words: usize) {
    for i in 0..words {
        unsafe { to.add(i).write_volatile(from.add(i).read_volatile()) };
    }
}

impl Default for TargetKey {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Value of the RULES map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleEntry {
    /// One of [`tier`]'s values.
    pub tier: u32,
    /// Index of the rule in the policy, for the audit record and the
    /// rule's rate window (RATES is indexed by it).
    pub rule_index: u32,
    /// For `allow` rules: at most this many actions per window, per
    /// profile; beyond it the action falls to the `approve` tier. 0: no limit.
    pub rate_limit: u32,
    pub rate_window_secs: u32,
}
const _: () = assert!(core::mem::size_of::<RuleEntry>() == 16);

/// Value of the RATES array (index: rule index): a fixed rate window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateWindow {
    /// CLOCK_BOOTTIME start of the current window (ns).
    pub start_ns: u64,
    /// Actions counted in it.
    pub count: u64,
}
const _: () = assert!(core::mem::size_of::<RateWindow>() == 16);

/// Value of the WARRANTS map: one installed warrant for one exact target.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarrantEntry {
    /// Not valid before this CLOCK_BOOTTIME instant (ns).
    pub not_before_ns: u64,
    /// Not valid at or after this CLOCK_BOOTTIME instant (ns).
    pub expires_ns: u64,
    /// Uses left; the kernel decrements it atomically and never below zero.
    /// 64 bits because BPF has no 32-bit compare-and-swap on every CPU version.
    pub uses_left: u64,
    /// Daemon-side index naming the warrant (id, approver) in audit records.
    pub warrant_index: u32,
    pub _reserved: u32,
    /// The exact content the warrant approves (see [`netlink::content_digest`]);
    /// 0 approves any content for its target.
    pub content_digest: u64,
}
const _: () = assert!(core::mem::size_of::<WarrantEntry>() == 40);

/// Index of the single [`Settings`] entry in the SETTINGS array map.
pub const SETTINGS_INDEX: u32 = 0;

/// Daemon-written settings the kernel copies into events.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Version of the policy bundle of each generation.
    pub policy_versions: [u64; 2],
    /// The daemon's process id: subjects may not signal or trace it.
    pub daemon_tgid: u32,
    /// Which [`match_kind`]s the policy uses, as bits `1 << kind`: exec
    /// looks up only those.
    pub match_kinds: u32,
    /// The policy generation in force, 0 or 1. A new policy's rules and
    /// profiles are written under the other generation, then this one word
    /// flips: each decision reads it once, so it sees the old policy whole
    /// or the new one whole, never a mix.
    pub generation: u32,
    pub _reserved: u32,
}
const _: () = assert!(core::mem::size_of::<Settings>() == 32);

impl Settings {
    /// The generation in force (0 or 1).
    pub fn active_generation(&self) -> u8 {
        (self.generation & 1) as u8
    }
}

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
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub profile_id: u32,
    pub action: u32,
    /// Tier of the matched rule ([`tier::UNMATCHED`] when none).
    pub tier: u32,
    /// What happened ([`verdict`]).
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
const _: () = assert!(core::mem::size_of::<Event>() == 72 + 16 + 2 * NAME_LEN);

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

/// Version of the pinned maps' layout and meaning. Bump it whenever a pinned
/// map's entries change meaning without changing size (a reordered field):
/// a daemon replaces pins of another version rather than reuse them.
pub const PIN_LAYOUT_VERSION: u32 = 1;

/// Kernel structure offsets the daemon resolves from the running kernel's BTF
/// and hands to the programs as a global, since Rust BPF code has no CO-RE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct sk_buff, data` (pointer).
    pub sk_buff_data: u32,
    /// `struct sk_buff, len` (u32).
    pub sk_buff_len: u32,
    /// `struct sock, sk_protocol` (u16).
    pub sock_sk_protocol: u32,
    /// `struct task_struct, tgid` (pid_t).
    pub task_struct_tgid: u32,
    /// `struct inode, i_sb` (pointer).
    pub inode_i_sb: u32,
    /// `struct super_block, s_magic` (unsigned long).
    pub super_block_s_magic: u32,
    /// `struct ns_common, inum` (unsigned int): a namespace's nsfs inode.
    pub ns_common_inum: u32,
    /// `struct path, dentry` (pointer).
    pub path_dentry: u32,
    /// `struct dentry, d_parent` (pointer).
    pub dentry_d_parent: u32,
    /// `struct dentry, d_name` plus `struct qstr, name`: the name pointer.
    pub dentry_d_name_name: u32,
    /// `struct dentry, d_sb` (pointer).
    pub dentry_d_sb: u32,
    /// `struct dentry, d_inode` (pointer).
    pub dentry_d_inode: u32,
    /// `struct inode, i_ino` (unsigned long).
    pub inode_i_ino: u32,
    /// `struct super_block, s_dev` (dev_t, kernel encoding).
    pub super_block_s_dev: u32,
    /// `struct file, f_inode` (pointer).
    pub file_f_inode: u32,
    /// `struct file, f_mode` (fmode_t).
    pub file_f_mode: u32,
    /// `struct iattr, ia_valid` (unsigned int).
    pub iattr_ia_valid: u32,
    /// `struct iattr, ia_file` (pointer).
    pub iattr_ia_file: u32,
    /// `struct linux_binprm, file` (pointer).
    pub linux_binprm_file: u32,
    /// `struct linux_binprm, cred` (pointer).
    pub linux_binprm_cred: u32,
    /// `struct cred, uid` (kuid_t).
    pub cred_uid: u32,
    /// `struct cgroup, kn` (pointer).
    pub cgroup_kn: u32,
    /// `struct kernfs_node, id` (u64): the cgroup id.
    pub kernfs_node_id: u32,
    /// `struct kernfs_node, parent` (pointer).
    pub kernfs_node_parent: u32,
    /// `struct file, f_path` plus `struct path, dentry`: the file's dentry.
    pub file_f_path_dentry: u32,
    /// `struct inode, i_mode` (umode_t).
    pub inode_i_mode: u32,
    /// `struct vm_area_struct, vm_file` (pointer).
    pub vm_area_struct_vm_file: u32,
    /// `struct vm_area_struct, vm_flags` (unsigned long).
    pub vm_area_struct_vm_flags: u32,
    /// `struct socket, sk` (pointer).
    pub socket_sk: u32,
    /// `struct unix_sock, addr` (pointer; NULL for an unnamed socket).
    pub unix_sock_addr: u32,
    /// `struct unix_address, len` (int): bytes of `name` in use.
    pub unix_address_len: u32,
    /// `struct unix_address, name` (struct sockaddr_un[]).
    pub unix_address_name: u32,
    // Not offsets, but kernel facts resolved from BTF the same way.
    /// Position of `dentry` among `inode_setattr`'s arguments: 0 before 6.3
    /// (`dentry, attr`), 1 since (`idmap, dentry, attr`). `attr` follows it.
    pub inode_setattr_dentry_arg: u32,
    /// Bit N set: `kernel_read_file` id N reads something other than kernel
    /// code (firmware), looked up by name. Every other id, including ids
    /// newer than this daemon, is refused to subjects as module loading.
    pub harmless_read_ids: u32,
    /// The same for `kernel_load_data` ids.
    pub harmless_load_ids: u32,
    /// `struct task_struct, pid` (pid_t): a thread's id.
    pub task_struct_pid: u32,
    /// `struct unix_sock, path` plus `struct path, dentry`: the socket
    /// file a named socket was bound to (NULL for abstract and unnamed).
    pub unix_sock_path_dentry: u32,
    /// `struct inode, i_generation` (u32): tells a file from a later one
    /// that reuses its inode number.
    pub inode_i_generation: u32,
    /// `struct inode, i_nlink` (unsigned int, in an anonymous union).
    pub inode_i_nlink: u32,
    /// `struct msghdr, msg_name` (pointer; the kernel's copy of the address).
    pub msghdr_msg_name: u32,
    /// `struct msghdr, msg_namelen` (int).
    pub msghdr_msg_namelen: u32,
    /// `struct sock, __sk_common` plus `struct sock_common, skc_net`: the
    /// socket's namespace (`possible_net_t`, whose one member is the pointer).
    pub sock_net: u32,
    /// `struct net, ns` plus `struct ns_common, inum`.
    pub net_ns_inum: u32,
    /// `struct net, dev_index_head` (pointer to NETDEV_HASHENTRIES hlist heads).
    pub net_dev_index_head: u32,
    /// `struct net_device, index_hlist` (hlist_node).
    pub net_device_index_hlist: u32,
    /// `struct net_device, ifindex` (int).
    pub net_device_ifindex: u32,
    /// `struct net_device, name` (char[IFNAMSIZ]).
    pub net_device_name: u32,
    /// `struct task_struct, files` (pointer).
    pub task_struct_files: u32,
    /// `struct files_struct, fdt` (pointer).
    pub files_struct_fdt: u32,
    /// `struct fdtable, max_fds` (unsigned int).
    pub fdtable_max_fds: u32,
    /// `struct fdtable, fd` (pointer to the file pointers).
    pub fdtable_fd: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 204);

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

/// Key of the MATCHES map (value: the profile id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MatchKey {
    /// One of [`match_kind`].
    pub kind: u32,
    pub _pad: u32,
    pub value: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<MatchKey>() == 24);

/// Key of the PROTECTED map: one inode, as the kernel names it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `super_block.s_dev` in the kernel's encoding, `MAJOR << 20 | MINOR`.
    pub dev: u64,
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<FileKey>() == 16);

/// Value of the MARKS map (keyed by [`FileKey`]): a regular file whose
/// content a subject wrote (made, opened for writing, wrote through any fd).
/// Whoever executes it becomes a subject of `profile_id`; no process outside
/// every subject may map it executable. The entry holds until root outside
/// every subject clears it (`warrant unmark`), or the file's last name goes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// The profile of the subject that wrote it last.
    pub profile_id: u32,
    /// The inode's `i_generation` when marked: an entry whose generation
    /// differs is another file's that reused the inode number.
    pub generation: u32,
}
const _: () = assert!(core::mem::size_of::<Mark>() == 8);

/// Entries the MARKS map holds. A subject's write that would need one more
/// is refused (ENOSPC) rather than left unmarked.
pub const MARKS_CAPACITY: u32 = 131_072;

/// Value of the PROTECTED map: which protected tree the inode belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtectedEntry {
    /// The tree's id (a hash of its path), or [`SELF_TREE`] for Warrant's
    /// own files.
    pub tree: u32,
    /// [`PROTECTED_ANCESTOR`] for a directory above a tree root: only
    /// renaming it is decided (it would move the tree away), and new files
    /// in it do not join the tree.
    pub flags: u32,
}

/// [`ProtectedEntry::flags`] of a directory above a protected tree.
pub const PROTECTED_ANCESTOR: u32 = 1;
const _: () = assert!(core::mem::size_of::<ProtectedEntry>() == 8);

/// [`ProtectedEntry::tree`] of Warrant's own config, state and audit files:
/// subjects never change them (`self.files`), whatever the policy says.
pub const SELF_TREE: u32 = u32::MAX;

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
    unsafe impl aya::Pod for Mark {}
    unsafe impl aya::Pod for MatchKey {}
    unsafe impl aya::Pod for ProtectedEntry {}
}

/// The bytes of a NUL-padded name (table, chain, comm) up to its first NUL.
pub fn name_bytes<const N: usize>(name: &[u8; N]) -> &[u8] {
    let mut end = 0;
    while end < N && name[end] != 0 {
        end += 1;
    }
    &name[..end]
}
