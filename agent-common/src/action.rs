//! Action ids: the classified operations policy rules and warrants name.
//!
//! Ids are stable (they are map keys and appear in events); names are what
//! policies, warrants and audit records use.

pub const NFT_TABLE_ADD: u32 = 1;
pub const NFT_TABLE_DELETE: u32 = 2;
pub const NFT_CHAIN_ADD: u32 = 3;
pub const NFT_CHAIN_DELETE: u32 = 4;
/// Append a rule (`nft add rule`).
pub const NFT_RULE_ADD: u32 = 5;
/// Insert a rule at the head or before a position (`nft insert rule`).
pub const NFT_RULE_INSERT: u32 = 6;
/// Replace a rule in place (`nft replace rule`).
pub const NFT_RULE_REPLACE: u32 = 7;
pub const NFT_RULE_DELETE: u32 = 8;
pub const NFT_SET_ADD: u32 = 9;
pub const NFT_SET_DELETE: u32 = 10;
pub const NFT_ELEMENT_ADD: u32 = 11;
pub const NFT_ELEMENT_DELETE: u32 = 12;
pub const NFT_OBJECT_ADD: u32 = 13;
pub const NFT_OBJECT_DELETE: u32 = 14;
pub const NFT_FLOWTABLE_ADD: u32 = 15;
pub const NFT_FLOWTABLE_DELETE: u32 = 16;
/// Counter or quota reset requests (GET*_RESET): they change state.
pub const NFT_RESET: u32 = 17;
/// Any other nftables message that is not a read.
pub const NFT_OTHER: u32 = 18;
/// A write to another nfnetlink subsystem (conntrack, queue, log, ipset...).
pub const NFNETLINK_OTHER: u32 = 19;
/// Legacy x_tables: replace a whole table (iptables, ip6tables, arptables,
/// ebtables through setsockopt). The hook sees no table name, so the target
/// is the family alone (ip, ip6, arp, bridge).
pub const IPTABLES_REPLACE: u32 = 20;
/// Legacy x_tables: add to rule counters.
pub const IPTABLES_COUNTERS: u32 = 21;
/// Create a network namespace: clone, clone3 or unshare with CLONE_NEWNET
/// (`unshare -n`, `ip netns add`). It has no target.
pub const NETNS_CREATE: u32 = 22;
/// Enter a network namespace: setns by namespace fd or pidfd (`nsenter
/// --net`, `ip netns exec`). The target is the namespace's nsfs inode
/// number, the kernel's own name for it (see [`crate::TargetKey::netns`]).
pub const NETNS_ENTER: u32 = 23;
// Protected files. The target is the protected tree and the inode (see
// [`TargetKind::File`]).
/// Open for writing, truncate, write through a passed fd or a shared mapping.
pub const FILE_WRITE: u32 = 24;
/// Create a file, directory, node or symlink in a protected directory.
pub const FILE_CREATE: u32 = 25;
pub const FILE_DELETE: u32 = 26;
/// Rename a protected file, over one, or into a protected directory.
pub const FILE_RENAME: u32 = 27;
/// Make a new hard link to a protected file, or in a protected directory.
pub const FILE_LINK: u32 = 28;
pub const FILE_CHMOD: u32 = 29;
pub const FILE_CHOWN: u32 = 30;
/// Set or remove an extended attribute or ACL.
pub const FILE_XATTR: u32 = 31;
// ipset (its own nfnetlink subsystem). The target is the set name, and for
// rename and swap the other set's name as the object.
pub const IPSET_CREATE: u32 = 32;
pub const IPSET_DESTROY: u32 = 33;
pub const IPSET_FLUSH: u32 = 34;
pub const IPSET_RENAME: u32 = 35;
pub const IPSET_SWAP: u32 = 36;
pub const IPSET_ADD: u32 = 37;
pub const IPSET_DEL: u32 = 38;

// Self-protection: what a subject may never do, whatever the policy says.
// The kernel denies these without consulting rules or warrants.
pub const SELF_BPF: u32 = 40;
pub const SELF_MOUNT: u32 = 41;
pub const SELF_SIGNAL: u32 = 42;
pub const SELF_PTRACE: u32 = 43;
pub const SELF_MODULE: u32 = 44;
pub const SELF_CHROOT: u32 = 45;
pub const SELF_PINS: u32 = 46;
/// Any change to Warrant's own config, state or audit files, and any read
/// of them (the state directory holds keys).
pub const SELF_FILES: u32 = 47;
/// Opening a block device for writing: raw disk writes go around every
/// file check.
pub const SELF_BLOCKDEV: u32 = 48;
/// TIOCSTI or TIOCLINUX on a terminal: pushing input into whatever reads
/// it, such as the shell of the operator who started the agent.
pub const SELF_TTY: u32 = 49;
/// Writing a cgroup's control files (cgroup v2 `cgroup.*`, anything on
/// cgroup v1): moving, freezing or killing processes, the daemon among
/// them, and v1's release_agent, which the kernel runs as root.
pub const SELF_CGROUP: u32 = 52;
/// Running code a subject wrote (see `Mark`) other than as that subject:
/// a process outside every subject mapping the file executable (a preload,
/// a dlopen), recorded under the profile that wrote it; a subject of
/// another profile executing or mapping it, recorded under its own; a
/// subject rewriting an inode's generation (FS_IOC_SETVERSION), which would
/// unmark the file. A process outside every subject that executes such a
/// file is not refused: it runs as a subject of the writer's profile.
pub const SELF_MARKED_EXEC: u32 = 53;
/// Becoming a subject at exec (a policy match, or running a marked file)
/// while holding an io_uring fd, or a subject receiving one (SCM_RIGHTS,
/// pidfd_getfd): a ring polled by another process's kernel thread (SQPOLL)
/// would submit for the subject as someone else. The exec is refused (the
/// process stays what it was, recorded under the profile it would have
/// joined), as is the receipt.
pub const SELF_IO_URING: u32 = 55;
/// Writing a sysfs attribute that stops a device or a file system (a
/// disk's `delete`, a PCI `remove`, a driver's `unbind`, ext4's
/// `trigger_fs_error`: see `sysfs::DEVICE_STOPPING`): the audit log's disk
/// would go with it.
pub const SELF_DEVICE: u32 = 56;

/// Setting the system clock (anything the kernel checks CAP_SYS_TIME for:
/// settimeofday, clock_settime, adjtimex, an RTC): decided by policy,
/// denied unless a rule allows it. Warrants' windows use the boot clock,
/// which no one can set.
pub const SYSTEM_CLOCK: u32 = 50;
/// Connecting (stream, seqpacket) or sending a datagram to a named unix
/// socket: the way to a root deputy (a service manager, a container
/// runtime, any root service that runs what it is sent). The target is the
/// name the listener bound (see [`TargetKind::Socket`]).
pub const IPC_CONNECT: u32 = 51;
/// Connecting a socket (TCP, or UDP's connect), or sending with an address,
/// to the host itself: loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104)
/// or any prefix of its local routing table (interface, broadcast and
/// AnyIP addresses; multicast). The way to a root deputy listening on TCP
/// or UDP (a container runtime's API port, a CI agent). The target is the
/// port (see [`TargetKind::Port`]).
pub const IPC_LOOPBACK: u32 = 54;

// Network configuration over rtnetlink (NETLINK_ROUTE) and xfrm. The
// kernel's own read/write split decides what is an action: rtnetlink GET
// requests and xfrm GETs are reads. Link, address and neighbour actions and
// `net.conf` and tc's qdiscs, classes and filters name the interface (see
// [`TargetKind::Interface`]), routes their table and prefix (see
// [`TargetKind::Route`]); rules, tc actions and xfrm are `*` alone (see
// [`TargetKind::None`]).
/// RTM_NEWLINK that creates (NLM_F_CREATE and NLM_F_EXCL).
pub const NET_LINK_ADD: u32 = 70;
pub const NET_LINK_DELETE: u32 = 71;
/// RTM_SETLINK, or RTM_NEWLINK that may change an existing link.
pub const NET_LINK_SET: u32 = 72;
/// A link message that moves an interface to, or makes it in, another
/// namespace (IFLA_NET_NS_PID, IFLA_NET_NS_FD, IFLA_TARGET_NETNSID).
pub const NET_LINK_NETNS: u32 = 73;
pub const NET_ADDR_ADD: u32 = 74;
pub const NET_ADDR_DELETE: u32 = 75;
pub const NET_ROUTE_ADD: u32 = 76;
pub const NET_ROUTE_DELETE: u32 = 77;
/// RTM_NEWROUTE with NLM_F_REPLACE (`ip route replace`, `change`).
pub const NET_ROUTE_REPLACE: u32 = 78;
/// Policy routing rules (`ip rule`).
pub const NET_RULE_ADD: u32 = 79;
pub const NET_RULE_DELETE: u32 = 80;
pub const NET_NEIGH_ADD: u32 = 81;
pub const NET_NEIGH_DELETE: u32 = 82;
/// Neighbour table parameters (RTM_NEWNEIGHTBL, RTM_SETNEIGHTBL).
pub const NET_NEIGH_TABLE: u32 = 83;
pub const NET_NEXTHOP_ADD: u32 = 84;
pub const NET_NEXTHOP_DELETE: u32 = 85;
pub const NET_TC_QDISC_ADD: u32 = 86;
pub const NET_TC_QDISC_DELETE: u32 = 87;
pub const NET_TC_CLASS_ADD: u32 = 88;
pub const NET_TC_CLASS_DELETE: u32 = 89;
/// tc filters and filter chains.
pub const NET_TC_FILTER_ADD: u32 = 90;
pub const NET_TC_FILTER_DELETE: u32 = 91;
pub const NET_TC_ACTION_ADD: u32 = 92;
pub const NET_TC_ACTION_DELETE: u32 = 93;
/// Per-interface IP settings: a link message whose only change is
/// IFLA_AF_SPEC (what `/proc/sys/net/ipv4/conf/*` sets), or RTM_NEWNETCONF.
pub const NET_CONF: u32 = 94;
/// IPsec states (xfrm NEWSA, UPDSA) and their removal (DELSA, FLUSHSA).
pub const NET_XFRM_STATE_ADD: u32 = 95;
pub const NET_XFRM_STATE_DELETE: u32 = 96;
/// IPsec policies, which can redirect or drop traffic.
pub const NET_XFRM_POLICY_ADD: u32 = 97;
pub const NET_XFRM_POLICY_DELETE: u32 = 98;
/// Any other xfrm write (ALLOCSPI, NEWAE, MIGRATE, SETDEFAULT, ...).
pub const NET_XFRM_OTHER: u32 = 99;
/// A write Warrant does not classify further, on any netlink protocol:
/// other rtnetlink writes, generic netlink (WireGuard, ethtool, ...),
/// audit configuration, uevents, connector, crypto, ... The target is the
/// protocol (see [`TargetKind::Protocol`]).
pub const NETLINK_OTHER: u32 = 100;

// A NEW message without NLM_F_EXCL on an object that exists updates it
// (`nf_tables_updtable`, `nf_tables_updchain`, ...). One that carries state
// an update changes is decided as the update: it may be either.
/// NEWTABLE with flags (`nft add table`: the dormant flag; 0 wakes a dormant table).
pub const NFT_TABLE_UPDATE: u32 = 101;
/// NEWCHAIN with a hook, policy, counters or flags (a base chain's `nft add chain`).
pub const NFT_CHAIN_UPDATE: u32 = 102;
/// NEWSET with a timeout or gc interval (what a set update changes).
pub const NFT_SET_UPDATE: u32 = 103;
/// NEWOBJ with data (a quota's or counter's values).
pub const NFT_OBJECT_UPDATE: u32 = 104;
/// NEWFLOWTABLE with hooks or flags (devices join an existing flowtable).
pub const NFT_FLOWTABLE_UPDATE: u32 = 105;

/// IPVS virtual services and their servers changed by setsockopt
/// (`IP_VS_SO_SET_*`, ipvsadm's older interface): a service on the host's
/// address sends on traffic the firewall already accepted. (IPVS's generic
/// netlink family is `netlink.other`.)
pub const NET_IPVS: u32 = 106;
/// A send on a socket that carries packets the sender made, not the
/// kernel's TCP or UDP: a raw IP socket (SOCK_RAW, with IP_HDRINCL any
/// header), a packet socket (AF_PACKET: a whole frame, on `lo` too) or an
/// XDP socket. Such a packet reaches a local deputy from any address and
/// port, past `ipc.loopback`. Decided at every send, so that a socket made
/// before pickup or handed over is decided too; receiving (capture) is not
/// an action.
pub const NET_RAW: u32 = 107;

/// Not an action: the kernel made a process a subject at exec or at a
/// cgroup move (the event's `table` holds the match kind). Never in policy.
pub const SUBJECT_MATCHED: u32 = 60;

/// Every action with its policy name, in id order.
pub const ALL: &[(u32, &str)] = &[
    (NFT_TABLE_ADD, "nft.table.add"),
    (NFT_TABLE_DELETE, "nft.table.delete"),
    (NFT_CHAIN_ADD, "nft.chain.add"),
    (NFT_CHAIN_DELETE, "nft.chain.delete"),
    (NFT_RULE_ADD, "nft.rule.add"),
    (NFT_RULE_INSERT, "nft.rule.insert"),
    (NFT_RULE_REPLACE, "nft.rule.replace"),
    (NFT_RULE_DELETE, "nft.rule.delete"),
    (NFT_SET_ADD, "nft.set.add"),
    (NFT_SET_DELETE, "nft.set.delete"),
    (NFT_ELEMENT_ADD, "nft.element.add"),
    (NFT_ELEMENT_DELETE, "nft.element.delete"),
    (NFT_OBJECT_ADD, "nft.object.add"),
    (NFT_OBJECT_DELETE, "nft.object.delete"),
    (NFT_FLOWTABLE_ADD, "nft.flowtable.add"),
    (NFT_FLOWTABLE_DELETE, "nft.flowtable.delete"),
    (NFT_TABLE_UPDATE, "nft.table.update"),
    (NFT_CHAIN_UPDATE, "nft.chain.update"),
    (NFT_SET_UPDATE, "nft.set.update"),
    (NFT_OBJECT_UPDATE, "nft.object.update"),
    (NFT_FLOWTABLE_UPDATE, "nft.flowtable.update"),
    (NET_IPVS, "net.ipvs"),
    (NET_RAW, "net.raw"),
    (NFT_RESET, "nft.reset"),
    (NFT_OTHER, "nft.other"),
    (NFNETLINK_OTHER, "nfnetlink.other"),
    (IPTABLES_REPLACE, "iptables.replace"),
    (IPTABLES_COUNTERS, "iptables.counters"),
    (NETNS_CREATE, "netns.create"),
    (NETNS_ENTER, "netns.enter"),
    (FILE_WRITE, "file.write"),
    (FILE_CREATE, "file.create"),
    (FILE_DELETE, "file.delete"),
    (FILE_RENAME, "file.rename"),
    (FILE_LINK, "file.link"),
    (FILE_CHMOD, "file.chmod"),
    (FILE_CHOWN, "file.chown"),
    (FILE_XATTR, "file.xattr"),
    (IPSET_CREATE, "ipset.create"),
    (IPSET_DESTROY, "ipset.destroy"),
    (IPSET_FLUSH, "ipset.flush"),
    (IPSET_RENAME, "ipset.rename"),
    (IPSET_SWAP, "ipset.swap"),
    (IPSET_ADD, "ipset.add"),
    (IPSET_DEL, "ipset.del"),
    (SELF_BPF, "self.bpf"),
    (SELF_MOUNT, "self.mount"),
    (SELF_SIGNAL, "self.signal"),
    (SELF_PTRACE, "self.ptrace"),
    (SELF_MODULE, "self.module"),
    (SELF_CHROOT, "self.chroot"),
    (SELF_PINS, "self.pins"),
    (SELF_FILES, "self.files"),
    (SELF_BLOCKDEV, "self.blockdev"),
    (SELF_TTY, "self.tty"),
    (SELF_CGROUP, "self.cgroup"),
    (SELF_MARKED_EXEC, "self.marked_exec"),
    (SELF_IO_URING, "self.io_uring"),
    (SELF_DEVICE, "self.device"),
    (SYSTEM_CLOCK, "system.clock"),
    (IPC_CONNECT, "ipc.connect"),
    (IPC_LOOPBACK, "ipc.loopback"),
    (NET_LINK_ADD, "net.link.add"),
    (NET_LINK_DELETE, "net.link.delete"),
    (NET_LINK_SET, "net.link.set"),
    (NET_LINK_NETNS, "net.link.netns"),
    (NET_ADDR_ADD, "net.addr.add"),
    (NET_ADDR_DELETE, "net.addr.delete"),
    (NET_ROUTE_ADD, "net.route.add"),
    (NET_ROUTE_DELETE, "net.route.delete"),
    (NET_ROUTE_REPLACE, "net.route.replace"),
    (NET_RULE_ADD, "net.rule.add"),
    (NET_RULE_DELETE, "net.rule.delete"),
    (NET_NEIGH_ADD, "net.neigh.add"),
    (NET_NEIGH_DELETE, "net.neigh.delete"),
    (NET_NEIGH_TABLE, "net.neigh.table"),
    (NET_NEXTHOP_ADD, "net.nexthop.add"),
    (NET_NEXTHOP_DELETE, "net.nexthop.delete"),
    (NET_TC_QDISC_ADD, "net.tc.qdisc.add"),
    (NET_TC_QDISC_DELETE, "net.tc.qdisc.delete"),
    (NET_TC_CLASS_ADD, "net.tc.class.add"),
    (NET_TC_CLASS_DELETE, "net.tc.class.delete"),
    (NET_TC_FILTER_ADD, "net.tc.filter.add"),
    (NET_TC_FILTER_DELETE, "net.tc.filter.delete"),
    (NET_TC_ACTION_ADD, "net.tc.action.add"),
    (NET_TC_ACTION_DELETE, "net.tc.action.delete"),
    (NET_CONF, "net.conf"),
    (NET_XFRM_STATE_ADD, "net.xfrm.state.add"),
    (NET_XFRM_STATE_DELETE, "net.xfrm.state.delete"),
    (NET_XFRM_POLICY_ADD, "net.xfrm.policy.add"),
    (NET_XFRM_POLICY_DELETE, "net.xfrm.policy.delete"),
    (NET_XFRM_OTHER, "net.xfrm.other"),
    (NETLINK_OTHER, "netlink.other"),
];

/// The policy name of an action id.
pub fn name(id: u32) -> Option<&'static str> {
    ALL.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

/// The id of an action named in policy.
pub fn by_name(name: &str) -> Option<u32> {
    ALL.iter().find(|(_, n)| *n == name).map(|(i, _)| *i)
}

/// What an action's target is, which decides how policy spells it and how
/// it sits in a [`crate::TargetKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// `FAMILY TABLE OBJECT` (nftables and other nfnetlink writes).
    Firewall,
    /// A family alone (legacy x_tables: the hook sees no table name).
    Family,
    /// An ipset set: its name in `table` (and the other set's in `object`
    /// for rename and swap); `family` is 0.
    IpSet,
    /// A network namespace, by nsfs inode number, in the first eight bytes
    /// of `object`; `family` is 0 and `table` empty.
    Namespace,
    /// A protected file: the tree's 1-based index in the first four bytes
    /// of `table`, the inode and its device in the first sixteen of
    /// `object` (zero for the whole tree).
    File,
    /// A netlink protocol (`route`, `generic`, `audit`, ... or its number)
    /// in `family`; for records, the message type in the first two bytes of
    /// `object`, which rules never name (they are written as `*`).
    Protocol,
    /// A unix socket by the name its listener bound: a path, or `@name`
    /// for an abstract one, in `table` (62 bytes at most; a longer name
    /// has byte 63 set to 0xff, so only `*` covers it); `family` is 0.
    Socket,
    /// A port (1-65535) in the first two bytes of `object`, little-endian;
    /// `family` and `table` are 0.
    Port,
    /// A file outside any protected tree, by its device (kernel encoding)
    /// and inode in the first sixteen bytes of `object`.
    Inode,
    /// A network interface, by the name the kernel finds it by (ifindex
    /// resolved to the name in the kernel; a name the message gives, cut to
    /// 15 bytes as the kernel cuts it) in the first 16 bytes of `table`,
    /// and the network namespace the message acts in (nsfs inode) in
    /// `object[8..16]`. When the interface cannot be named (a group, a
    /// namespace id, an index with no link), `table` is empty and
    /// `object[0..4]` holds the index: only `*` covers it. `family` is 0.
    Interface,
    /// A route: its table (the id, RT_TABLE_MAIN for 0 as the kernel reads
    /// it) in `table[0..4]` and the namespace in `table[8..16]`; its
    /// destination prefix in `object`: the address family, the prefix
    /// length, then the address (16 bytes, bits past the length cleared as
    /// the kernel clears them) from `object[4]`. A route of another family
    /// or a prefix that cannot be read is all zero: only `*` covers it.
    Route,
    /// Nothing: the action is the whole story (netns.create, net.rule.*, self.*).
    None,
}

pub fn target_kind(id: u32) -> TargetKind {
    match id {
        IPTABLES_REPLACE | IPTABLES_COUNTERS => TargetKind::Family,
        NETNS_ENTER => TargetKind::Namespace,
        // tc's qdiscs, classes, filters and filter chains: tcmsg's
        // tcm_ifindex sits where ifinfomsg's ifi_index does.
        NET_LINK_ADD..=NET_ADDR_DELETE
        | NET_NEIGH_ADD
        | NET_NEIGH_DELETE
        | NET_CONF
        | NET_TC_QDISC_ADD..=NET_TC_FILTER_DELETE => TargetKind::Interface,
        NET_ROUTE_ADD..=NET_ROUTE_REPLACE => TargetKind::Route,
        NETNS_CREATE | SYSTEM_CLOCK | NET_RULE_ADD..=NET_XFRM_OTHER | NET_IPVS | NET_RAW => TargetKind::None,
        NETLINK_OTHER => TargetKind::Protocol,
        IPC_CONNECT => TargetKind::Socket,
        SELF_MARKED_EXEC => TargetKind::Inode,
        IPC_LOOPBACK => TargetKind::Port,
        FILE_WRITE..=FILE_XATTR => TargetKind::File,
        IPSET_CREATE..=IPSET_DEL => TargetKind::IpSet,
        _ if is_self_protection(id) => TargetKind::None,
        _ => TargetKind::Firewall,
    }
}

/// Actions whose target is a family alone (no table or object name).
pub fn family_only(id: u32) -> bool {
    target_kind(id) == TargetKind::Family
}

/// Bytes of an interface name in a [`TargetKind::Interface`] key
/// (`IFNAMSIZ`, with its NUL).
pub const IFNAME_LEN: usize = 16;

/// `RT_TABLE_MAIN`: the table a route of table 0 goes to.
pub const RT_TABLE_MAIN: u32 = 254;

/// Self-protection actions: never allowed, never approvable.
pub fn is_self_protection(id: u32) -> bool {
    (SELF_BPF..=SELF_TTY).contains(&id) || matches!(id, SELF_CGROUP | SELF_MARKED_EXEC | SELF_IO_URING | SELF_DEVICE)
}

/// Whether the action carries content a warrant may bind by digest (an nft
/// rule's expressions).
pub fn has_content(id: u32) -> bool {
    matches!(id, NFT_RULE_ADD | NFT_RULE_INSERT | NFT_RULE_REPLACE)
}
