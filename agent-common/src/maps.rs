//! The values and keys of the maps the daemon and the programs share.

use crate::{NAME_LEN, copy_words, zero_words};

/// Version of the pinned maps' layout and meaning. Bump it whenever a pinned
/// map's entries change meaning without changing size (a reordered field):
/// a daemon replaces pins of another version rather than reuse them.
pub const PIN_LAYOUT_VERSION: u32 = 2;

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
    pub pending_namespace: u32,
    /// [`subject_flag`] bits. (This and `pending_namespace` were one u64 in
    /// pin layout 1.)
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<Subject>() == 16);

/// Bits of [`Subject::flags`].
pub mod subject_flag {
    /// Moved into a matched cgroup by the unconfined process that forked
    /// it, and not exec'd since: it still runs that process's code, which
    /// may write itself into the `cgroup.procs` of the cgroup it is in
    /// (systemd's spawn does, after PID 1 has moved it) for 5 s from the
    /// fork, and no subject may ptrace it. Inherited by tasks that share
    /// its memory only; cleared at exec and when it maps a file a subject
    /// wrote executable.
    pub const MOVED_BY_PARENT: u32 = 1;
    /// Made a subject by `warrant run` (the daemon's Register) and not
    /// exec'd since: its exec of the command is refused while it holds an
    /// io_uring fd it could keep, as a matched exec is. The starter checks
    /// in user space first, but a task sharing its fd table could put a
    /// ring back after that check. Cleared at exec.
    pub const STARTED_BY_RUN: u32 = 2;
}

/// Key of the PROFILES map: a profile in one policy generation.
pub fn profile_key(generation: u8, profile_id: u32) -> u64 {
    ((generation as u64) << 32) | profile_id as u64
}

/// Per-profile settings (value of the PROFILES map, keyed by [`profile_key`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfileEntry {
    /// [`crate::mode::ENFORCE`] or [`crate::mode::AUDIT`].
    pub mode: u32,
    pub _reserved: u32,
}
const _: () = assert!(core::mem::size_of::<ProfileEntry>() == 8);

/// Key of the RULES and WARRANTS maps: which profile does which action to which target.
///
/// In RULES, `family == FAMILY_ANY` and all-zero names are wildcards; the kernel
/// looks up from most to least specific (see [`crate::decision::widen_key`]).
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
    /// One of [`crate::action`]'s ids.
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

impl Default for TargetKey {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Value of the RULES map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleEntry {
    /// One of [`crate::tier`]'s values.
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
    /// The exact content the warrant approves (see [`crate::netlink::content_digest`]);
    /// 0 approves any content for its target.
    pub content_digest: u64,
}
const _: () = assert!(core::mem::size_of::<WarrantEntry>() == 40);

/// PROTECTED_MISSES' count of PROTECTED inserts that failed (a full map),
/// by the kernel's hooks or the daemon.
pub const PROTECTED_MISSED: u32 = 0;
/// PROTECTED_MISSES' count of those a walk of the trees has since settled:
/// the daemon writes there the missed count it read before a walk whose
/// every file went in.
pub const PROTECTED_SETTLED: u32 = 1;

/// FILE_STATE's count the kernel's hooks raise (atomically), around each
/// change to PROTECTED or MARKS that could void a subject's pass (a new
/// entry, a mark replaced or removed): see the programs' `passes`.
pub const FILE_STATE_BY_KERNEL: u32 = 0;
/// FILE_STATE's count the daemon raises around its own such changes; only
/// the daemon's owner task writes it, so a read and a write cannot lose a
/// raise as they could on the kernel's count.
pub const FILE_STATE_BY_DAEMON: u32 = 1;

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
    /// Which [`crate::match_kind`]s the policy uses, as bits `1 << kind`: exec
    /// looks up only those.
    pub match_kinds: u32,
    /// The policy generation in force, 0 or 1. A new policy's rules and
    /// profiles are written under the other generation, then this one word
    /// flips: each decision reads it once, so it sees the old policy whole
    /// or the new one whole, never a mix.
    pub generation: u32,
    /// When the daemon's process started, in the clock ticks (USER_HZ,
    /// 100 a second) /proc/PID/stat counts since boot, modulo 2^32: with
    /// `daemon_tgid`, names the daemon's process and no later one that
    /// reuses its pid (after a crash, or while it is stopped).
    pub daemon_started: u32,
}
const _: () = assert!(core::mem::size_of::<Settings>() == 32);

impl Settings {
    /// The generation in force (0 or 1).
    pub fn active_generation(&self) -> u8 {
        (self.generation & 1) as u8
    }
}

/// Key of the MATCHES map (value: the profile id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MatchKey {
    /// One of [`crate::match_kind`].
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

/// [`FileKey::dev`]'s top bit: the key names a name, not an inode (real
/// devices are 32-bit).
pub const NAME_KEY: u64 = 1 << 63;
/// Where a decision's key for a new name (see `FILE_NAME_AT`) holds the
/// file's type (`S_IFMT` bits) in its device word: a warrant for a regular
/// file does not let the agent put a symlink or a directory there.
const NAME_KIND_SHIFT: u32 = 36;
/// `S_IFMT`: a file's type bits.
const S_IFMT: u64 = 0o170000;
/// `S_IFREG`: the type a warrant's new file has.
pub const S_IFREG: u64 = 0o100000;

impl FileKey {
    /// The PROTECTED key of the name whose hash is `name_hash` (see
    /// [`crate::proc_path::component`]) in directory `dir`: a protected
    /// tree root's, there or not. A subject may not make it, and what root
    /// makes there joins its tree (see [`PROTECTED_NAMES`]).
    pub fn of_name(dir: FileKey, name_hash: u64) -> FileKey {
        FileKey { dev: NAME_KEY | dir.dev, ino: crate::proc_path::join(dir.ino, name_hash) }
    }

    /// The key a subject's new name in directory `dir`, for a file of type
    /// `kind` (`S_IFMT` bits), is decided on; its name goes beside it (see
    /// `FILE_NAME_AT`).
    pub fn of_new_name(dir: FileKey, kind: u64) -> FileKey {
        FileKey { dev: dir.dev | NAME_KEY | ((kind & S_IFMT) << NAME_KIND_SHIFT), ino: dir.ino }
    }

    /// For a key made by [`FileKey::of_new_name`]: the directory's key and
    /// the file's type.
    pub fn new_name_parts(&self) -> (FileKey, u64) {
        (FileKey { dev: self.dev & u32::MAX as u64, ino: self.ino }, (self.dev >> NAME_KIND_SHIFT) & S_IFMT)
    }

    /// Whether this key was made by [`FileKey::of_name`] or
    /// [`FileKey::of_new_name`].
    pub fn is_name(&self) -> bool {
        self.dev & NAME_KEY != 0
    }
}

/// Value of the MARKS map (keyed by [`FileKey`]): a regular file whose
/// content a subject wrote (made, opened for writing, wrote through any fd).
/// Whoever executes it becomes a subject of `profile_id`; no process outside
/// every subject may map it executable. The entry holds until root outside
/// every subject clears it (`warrant unmark`), or the file's last name goes.
/// A daemon replacing pins of another layout copies MARKS' entries into its
/// own by name and size (as PROTECTED's and PROC_TREES'): a change to what
/// an entry means renames the map.
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

/// A pickup under way (value of the PICKUPS map, keyed by tgid, and of
/// the PICKUP_CHILDREN task storage): a running process just made a
/// subject of `profile_id`, whose new processes are noted until
/// `deadline_ns` (boot clock) so that the daemon looks at them too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pickup {
    pub deadline_ns: u64,
    /// The picked-up process's leader's `start_time` (0: not checked):
    /// a process that reuses the tgid before the deadline is not it.
    pub leader_start_ns: u64,
    pub profile_id: u32,
    pub _reserved: u32,
}
const _: () = assert!(core::mem::size_of::<Pickup>() == 24);

/// Key of the CONNECTED_SOCKETS map: a connected socket, by its `struct
/// sock` address and its inode's number. The address alone is reused once
/// the socket is freed; the pair only after the per-boot 32-bit inode
/// counter wraps (4G sockets and pipes later) at that same address, and
/// an IPv4 or IPv6 entry also carries the peer it was decided for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketKey {
    pub sock: u64,
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<SocketKey>() == 16);

/// Value of the CONNECTED_SOCKETS map: the socket's peer was decided
/// (`ipc.connect` for a unix socket, `ipc.loopback` or no action for an
/// IPv4 or IPv6 one) and allowed, for `profile_id` under policy version
/// `policy_version`. A send by another profile or under another policy
/// version is decided again, and so is an IPv4 or IPv6 send whose peer is
/// no longer `port` and `peer` (a connect the kernel failed after the
/// hook allowed it leaves the peer it had).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketVerdict {
    pub policy_version: u64,
    pub profile_id: u32,
    /// The peer's port, in network order (0 for a unix socket).
    pub port: u16,
    /// [`DECIDED_ON_PORT`] when the decision was `ipc.loopback` on `port`,
    /// which holds whatever route a send takes to it; else 0.
    pub decided: u16,
    /// The peer's address as two little-endian words of the IPv6 address
    /// (IPv4 v4-mapped); zero for a unix socket.
    pub peer: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<SocketVerdict>() == 32);
/// [`SocketVerdict::decided`]: the peer's port was decided (`ipc.loopback`).
pub const DECIDED_ON_PORT: u16 = 1;

/// Entries the LOCAL_ADDRESSES map (an LPM trie) holds: the prefixes of
/// the host's local routing table (`ip route show table local`: its
/// addresses, broadcast addresses and anycast and multicast prefixes). A
/// node with kube-proxy in IPVS mode holds every service address there.
pub const LOCAL_ADDRESSES_CAPACITY: u32 = 65_536;

/// The key data of LOCAL_ADDRESSES: an IPv6 address, an IPv4 one as
/// v4-mapped (`::ffff:a.b.c.d`, its prefix length plus 96), so that a
/// dual-stack socket's v4-mapped destination finds the IPv4 entry.
pub type LocalAddress = [u8; 16];

/// `ip` as the v4-mapped IPv6 address LOCAL_ADDRESSES keys it by.
pub const fn v4_mapped(ip: [u8; 4]) -> LocalAddress {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ip[0], ip[1], ip[2], ip[3]]
}

/// Entries the MARKS map holds. A subject's write that would need one more
/// is refused (ENOSPC) rather than left unmarked.
pub const MARKS_CAPACITY: u32 = 131_072;

/// Value of the PROTECTED map: which protected tree the inode belongs to.
/// A daemon replacing pins of another layout copies PROTECTED's entries into
/// its own by name and size (as PROC_TREES' and MARKS'), so that nothing is
/// unprotected until its policy is restored: a change to what an entry (or
/// a [`FileKey`], or a tree id) means renames the map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtectedEntry {
    /// The tree's id (a hash of its path), or [`SELF_TREE`] for Warrant's
    /// own files.
    pub tree: u32,
    /// [`PROTECTED_ANCESTOR`] for a directory above a tree root: only
    /// renaming it is decided (it would move the tree away), and new files
    /// in it do not join the tree, except under a missing protected name
    /// ([`PROTECTED_NAMES`]).
    pub flags: u32,
}

/// [`ProtectedEntry::flags`] of a directory above a protected tree.
pub const PROTECTED_ANCESTOR: u32 = 1;
/// [`ProtectedEntry::flags`] of a directory that holds a tree root's name,
/// above that tree or in another: a new name there is looked up as
/// [`FileKey::of_name`] first (the root's tree), then falls to the
/// directory's own tree, if it is in one.
pub const PROTECTED_NAMES: u32 = 2;
/// [`ProtectedEntry::flags`] of a directory in one tree on the way to
/// another tree's root (a policy's `/root/work` above `/root/work/held`):
/// a subject may not move it, which would take the inner tree away and
/// let the subject make its path again, in the outer tree.
pub const PROTECTED_HOLDS_ROOT: u32 = 4;
const _: () = assert!(core::mem::size_of::<ProtectedEntry>() == 8);

/// [`ProtectedEntry::tree`] of Warrant's own config, state and audit files:
/// subjects never change them (`self.files`), whatever the policy says.
pub const SELF_TREE: u32 = u32::MAX;
