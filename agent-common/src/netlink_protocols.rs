//! Classifier for the netlink messages a subject sends on every protocol but
//! NETLINK_NETFILTER (which `netlink` classifies): rtnetlink, xfrm, and a
//! fail-closed rest.
//!
//! A message is a read only where the kernel itself treats it as one:
//! rtnetlink's GET kind (the kind it lets through without CAP_NET_ADMIN),
//! xfrm's GETs, the generic netlink controller's lookups, sock_diag's
//! queries and audit's status requests. Every other message is an action:
//! rtnetlink and xfrm writes by their own action, the rest `netlink.other`
//! with the protocol, type and (generic netlink) command as target. Flags
//! never make a write a read.

use crate::{
    NAME_LEN, TargetKey,
    action::{self, IFNAME_LEN, TargetKind},
    netlink::{
        Class, Classifier, MessageBuffer, MessageHeader, MessageNotes, NLA_HDRLEN, NLMSG_HDRLEN, WALK_DONE,
        WALK_FAILED, WALK_ON, next_attribute, read_field, write_field,
    },
};

/// Netlink protocol numbers (`linux/netlink.h`) that are classified here.
pub mod protocol {
    pub const ROUTE: u16 = 0;
    pub const SOCK_DIAG: u16 = 4;
    pub const XFRM: u16 = 6;
    pub const AUDIT: u16 = 9;
    pub const KOBJECT_UEVENT: u16 = 15;
    pub const GENERIC: u16 = 16;
}

/// Protocol names as policy and records spell them, by number.
pub const PROTOCOL_NAMES: &[(u16, &str)] = &[
    (0, "route"),
    (2, "usersock"),
    (4, "sock_diag"),
    (5, "nflog"),
    (6, "xfrm"),
    (7, "selinux"),
    (8, "iscsi"),
    (9, "audit"),
    (10, "fib_lookup"),
    (11, "connector"),
    (12, "netfilter"),
    (14, "dnrtmsg"),
    (15, "kobject_uevent"),
    (16, "generic"),
    (18, "scsitransport"),
    (19, "ecryptfs"),
    (20, "rdma"),
    (21, "crypto"),
    (22, "smc"),
];

/// `NLMSG_MIN_TYPE`: lower types are netlink control messages, which
/// `netlink_rcv_skb` acknowledges without handing them to the protocol.
const NLMSG_MIN_TYPE: u16 = 0x10;
/// `NLM_F_CREATE`, `NLM_F_EXCL` (for NEW requests; `NLM_F_REPLACE` is in `netlink`).
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_REPLACE: u16 = 0x100;
/// In a `netlink.other` key's object, after a generic netlink command: the
/// command was read (command 0 is a command too: WG_CMD_GET_DEVICE).
pub const GENL_COMMAND_PRESENT: u8 = 1;

/// `sizeof(struct ifinfomsg)`: link attributes start after it.
const IFINFOMSG_LEN: u32 = 16;
/// Link attributes that move an interface to another namespace or make it
/// in one: IFLA_NET_NS_PID, IFLA_NET_NS_FD, IFLA_TARGET_NETNSID.
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_TARGET_NETNSID: u16 = 46;
const IFLA_LINK_NETNSID: u16 = 37;
/// IFLA_IFNAME: names the link (or renames it when it is found by index).
const IFLA_IFNAME: u16 = 3;
/// IFLA_AF_SPEC: per-family settings (the ipv4/ipv6 `conf` values).
const IFLA_AF_SPEC: u16 = 26;
/// IFLA_GROUP: with index 0 and no name, a NEWLINK changes every link of
/// the group.
const IFLA_GROUP: u16 = 27;
/// IFLA_ALT_IFNAME: finds a link by one of its alternative names.
const IFLA_ALT_IFNAME: u16 = 53;
/// RTM_NEWLINK.
const RTM_NEWLINK: u16 = 16;
/// Most attributes of one link message read; a message with more is
/// unparseable (denied), since its class could not be known.
const MAX_LINK_ATTRS: u32 = 12;

/// What classifying names interfaces by: the namespace the sending socket
/// acts in, and the names of its interfaces (the kernel reads `struct net`;
/// the plain tier fakes it).
pub trait Interfaces {
    /// The namespace's nsfs inode.
    fn netns(&self) -> u64;
    /// Writes the name of interface `index` in that namespace into `out`
    /// (zeroed, NUL padded); false if there is none.
    fn name_of(&self, index: u32, out: &mut [u8; NAME_LEN]) -> bool;
}

/// No namespace, no interfaces: every index is unnamed.
pub struct NoInterfaces;

impl Interfaces for NoInterfaces {
    fn netns(&self) -> u64 {
        0
    }
    fn name_of(&self, _index: u32, _out: &mut [u8; NAME_LEN]) -> bool {
        false
    }
}

/// The classifier for one non-netfilter protocol.
pub struct OtherProtocol<I: Interfaces> {
    pub protocol: u16,
    pub interfaces: I,
}

impl OtherProtocol<NoInterfaces> {
    /// A classifier that names no interface (fuzzing, tests of other parts).
    pub fn plain(protocol: u16) -> Self {
        Self { protocol, interfaces: NoInterfaces }
    }
}

impl<I: Interfaces> Classifier for OtherProtocol<I> {
    #[inline(always)]
    fn classify<B: MessageBuffer>(
        &self,
        buf: &B,
        offset: u32,
        header: &MessageHeader,
        key: &mut TargetKey,
        content: &mut MessageNotes,
    ) -> Class {
        classify(self.protocol, &self.interfaces, buf, offset, header, key, content)
    }
}

/// Classifies the message at `offset` of a `protocol` socket's sendmsg into
/// `key` (profile_id is left alone).
pub fn classify<B: MessageBuffer, I: Interfaces>(
    protocol: u16,
    interfaces: &I,
    buf: &B,
    offset: u32,
    header: &MessageHeader,
    key: &mut TargetKey,
    content: &mut MessageNotes,
) -> Class {
    content.at = 0;
    key.action = 0;
    key.family = 0;
    key.clear_table();
    key.clear_object();
    let msg_type = header.msg_type;
    // Protocols that take their messages through `netlink_rcv_skb` (or, for
    // audit, a loop that refuses the low types) never act on control types.
    let framed = matches!(
        protocol,
        protocol::ROUTE
            | protocol::XFRM
            | protocol::GENERIC
            | protocol::SOCK_DIAG
            | protocol::AUDIT
            | protocol::KOBJECT_UEVENT
    );
    if framed && msg_type < NLMSG_MIN_TYPE {
        return Class::NotAnAction;
    }
    // The interface a route message acts on.
    let mut interface = Interface::Unnamed(0);
    let action_id = match protocol {
        protocol::ROUTE => match route_action(msg_type, header.flags) {
            RouteClass::Read if msg_type == RTM_GETDCB && !dcb_read(buf, offset) => action::NETLINK_OTHER,
            RouteClass::Read => return Class::NotAnAction,
            RouteClass::Link(action_id) => match link_attributes(buf, offset, header.len, content) {
                // RTM_NEWLINK or RTM_SETLINK (or DELLINK) finding no link
                // (index 0, no name, no group) changes nothing: the kernel
                // answers ENODEV or EINVAL. `ip link` sends one to probe the
                // kernel. With NLM_F_CREATE, a NEWLINK makes one.
                Some(link) if !link.names_link && link.index == 0 => {
                    if msg_type == RTM_NEWLINK && header.flags & NLM_F_CREATE != 0 {
                        action::NET_LINK_ADD
                    } else {
                        return Class::NotAnAction;
                    }
                }
                Some(link) => {
                    interface = if link.other_netns {
                        // Found in another namespace than the socket's.
                        Interface::Unnamed(link.index.max(0) as u32)
                    } else if action_id == action::NET_LINK_ADD {
                        // A new link is the one its IFLA_IFNAME names (never
                        // an alternative name), whatever index it asks for.
                        if link.ifname { Interface::ByName } else { Interface::Unnamed(0) }
                    } else if msg_type == RTM_NEWLINK && header.flags & NLM_F_CREATE != 0 && link.index <= 0 {
                        // Finding no link by name, this one makes one, named
                        // by IFLA_IFNAME alone.
                        if link.ifname && !link.group { Interface::ByName } else { Interface::Unnamed(0) }
                    } else {
                        link.interface()
                    };
                    match action_id {
                        // A delete is a delete, whatever else it carries.
                        action::NET_LINK_DELETE => action_id,
                        _ if link.netns => action::NET_LINK_NETNS,
                        _ if link.conf_only => action::NET_CONF,
                        _ => action_id,
                    }
                }
                None => {
                    key.action = action_id;
                    return Class::Unparseable;
                }
            },
            RouteClass::Route(action_id) => {
                if !route_target(interfaces, buf, offset, header.len, key, content) {
                    key.action = action_id;
                    return Class::Unparseable;
                }
                action_id
            }
            RouteClass::Action(action_id) => {
                if action::target_kind(action_id) == TargetKind::Interface {
                    // ifaddrmsg's ifa_index and ndmsg's ndm_ifindex sit where
                    // ifinfomsg's ifi_index does.
                    let mut index = [0u8; 4];
                    if buf.read(offset + NLMSG_HDRLEN + 4, &mut index) {
                        interface = Interface::ByIndex(u32::from_ne_bytes(index));
                    }
                }
                action_id
            }
        },
        protocol::XFRM => match xfrm_action(msg_type) {
            Some(action_id) => action_id,
            None => return Class::NotAnAction,
        },
        _ => return other_protocol(protocol, buf, offset, header, key),
    };
    key.action = action_id;
    if action::target_kind(action_id) == TargetKind::Interface {
        // Bridge messages (AF_BRIDGE) on a port act on its master too: its
        // VLANs, its forwarding database (and, in bulk, other ports').
        let mut family = [0u8; 1];
        if !buf.read(offset + NLMSG_HDRLEN, &mut family) || family[0] == AF_BRIDGE {
            interface = match interface {
                Interface::ByIndex(index) | Interface::Unnamed(index) => Interface::Unnamed(index),
                Interface::ByName => Interface::Unnamed(0),
            };
        }
        name_interface(interfaces, buf, interface, key, content);
    }
    if action_id == action::NETLINK_OTHER {
        other_key(protocol, msg_type, key);
    }
    Class::Action
}

/// A `netlink.other` key's protocol and type. Each lookup level widens one
/// of protocol, type (a generic family's id) and generic command.
#[inline(always)]
fn other_key(protocol: u16, msg_type: u16, key: &mut TargetKey) {
    key.action = action::NETLINK_OTHER;
    key.family = protocol as u8;
    key.table[0] = msg_type as u8;
    key.table[1] = (msg_type >> 8) as u8;
}

/// A message on a protocol other than rtnetlink and xfrm: a read, or
/// `netlink.other` on its protocol and type, and for generic netlink its
/// command. Out of line, as measured: with it, the rtnetlink step's frame
/// is 192 bytes (6.1 bounds each call chain at 512).
#[inline(never)]
fn other_protocol<B: MessageBuffer>(
    protocol: u16,
    buf: &B,
    offset: u32,
    header: &MessageHeader,
    key: &mut TargetKey,
) -> Class {
    let msg_type = header.msg_type;
    if protocol == protocol::GENERIC {
        // A dump request (both NLM_F_DUMP bits) runs the command's dump
        // callbacks, not its doit, but is no read for that: some dump
        // callbacks act (devlink's health reporter dump stores a dump and
        // so suppresses the next one) or hand out secrets (WireGuard's
        // private key). Decided like any command (`generic wireguard
        // get_device` for `wg show`).
        // The command, genlmsghdr's first byte (absent: only rules on the
        // whole family cover the message, which the kernel refuses anyway).
        if let Some(command) = key.object.first_chunk_mut::<1>()
            && buf.read(offset + NLMSG_HDRLEN, command)
        {
            // GENL_ID_CTRL's CTRL_CMD_GETFAMILY and CTRL_CMD_GETPOLICY.
            if msg_type == 0x10 && matches!(key.object[0], 3 | 10) {
                key.object[0] = 0;
                return Class::NotAnAction;
            }
            key.object[1] = GENL_COMMAND_PRESENT;
        }
    } else if other_is_read(protocol, msg_type) {
        return Class::NotAnAction;
    }
    other_key(protocol, msg_type, key);
    Class::Action
}

/// What an rtnetlink message is.
enum RouteClass {
    Read,
    /// A link write, whose class its attributes may change.
    Link(u32),
    /// A route write, whose target its attributes give.
    Route(u32),
    Action(u32),
}

/// rtnetlink by type: kinds NEW, DEL, GET, SET in groups of four from
/// RTM_BASE (16), as `rtnl_msgtype_kind` reads them.
fn route_action(msg_type: u16, flags: u16) -> RouteClass {
    use action::*;
    let kind = msg_type.wrapping_sub(16) & 3;
    if msg_type >= 16 && kind == 2 {
        return RouteClass::Read;
    }
    let new_or = |new: u32, del: u32| if kind == 0 { new } else { del };
    RouteClass::Action(match msg_type {
        // RTM_NEWLINK makes a link only with CREATE and EXCL; without EXCL it
        // changes the one it finds.
        16 if (flags & (NLM_F_CREATE | NLM_F_EXCL)) == (NLM_F_CREATE | NLM_F_EXCL) => {
            return RouteClass::Link(NET_LINK_ADD);
        }
        16 | 19 => return RouteClass::Link(NET_LINK_SET),
        17 => return RouteClass::Link(NET_LINK_DELETE),
        20 | 21 => new_or(NET_ADDR_ADD, NET_ADDR_DELETE),
        24 if flags & NLM_F_REPLACE != 0 => return RouteClass::Route(NET_ROUTE_REPLACE),
        24 | 25 => return RouteClass::Route(new_or(NET_ROUTE_ADD, NET_ROUTE_DELETE)),
        32 | 33 => new_or(NET_RULE_ADD, NET_RULE_DELETE),
        28 | 29 => new_or(NET_NEIGH_ADD, NET_NEIGH_DELETE),
        64 | 67 => NET_NEIGH_TABLE,
        104 | 105 | 116 | 117 => new_or(NET_NEXTHOP_ADD, NET_NEXTHOP_DELETE),
        36 | 37 => new_or(NET_TC_QDISC_ADD, NET_TC_QDISC_DELETE),
        40 | 41 => new_or(NET_TC_CLASS_ADD, NET_TC_CLASS_DELETE),
        // Filters, and the filter chains (RTM_NEWCHAIN, RTM_DELCHAIN).
        44 | 45 | 100 | 101 => new_or(NET_TC_FILTER_ADD, NET_TC_FILTER_DELETE),
        48 | 49 => new_or(NET_TC_ACTION_ADD, NET_TC_ACTION_DELETE),
        80 | 81 => NET_CONF,
        _ => NETLINK_OTHER,
    })
}

/// What a link message's fixed part and attributes say about it.
struct LinkAttrs {
    /// `ifi_index`: the link it changes, 0 for none.
    index: i32,
    /// It names a link (IFLA_IFNAME, IFLA_ALT_IFNAME) or a group of them
    /// (IFLA_GROUP), which the kernel finds when `index` is 0.
    names_link: bool,
    /// A name attribute is noted in the walk's notes (`at`, `len`).
    named: bool,
    /// The noted name is IFLA_IFNAME: the only name a link is made with.
    ifname: bool,
    /// IFLA_GROUP: with index 0, a NEWLINK whose name finds no link changes
    /// every link of the group.
    group: bool,
    /// It moves the link to, or makes it in, another namespace.
    netns: bool,
    /// IFLA_TARGET_NETNSID: the kernel finds the link in another namespace.
    other_netns: bool,
    /// Its only change is IFLA_AF_SPEC (with IFLA_IFNAME to find the link).
    conf_only: bool,
}

impl LinkAttrs {
    /// The link the kernel finds: by index if positive, else by name.
    fn interface(&self) -> Interface {
        match (self.index > 0, self.named && !self.group) {
            (true, _) => Interface::ByIndex(self.index as u32),
            (false, true) => Interface::ByName,
            (false, false) => Interface::Unnamed(0),
        }
    }
}

/// How a route message addresses its interface.
#[derive(Clone, Copy)]
enum Interface {
    /// By index, which the kernel's `Interfaces` names.
    ByIndex(u32),
    /// By the name attribute noted in the walk's notes.
    ByName,
    /// In a way no rule names (a group, another namespace): the index, if any.
    Unnamed(u32),
}

/// Bits of [`MessageNotes::seen`] during a link walk.
const LINK_NETNS: u32 = 1;
const LINK_AF_SPEC: u32 = 2;
const LINK_NAMED: u32 = 4;
const LINK_OTHER: u32 = 8;
/// IFLA_TARGET_NETNSID.
const LINK_OTHER_NETNS: u32 = 16;
/// IFLA_IFNAME (which the kernel prefers to IFLA_ALT_IFNAME).
const LINK_IFNAME: u32 = 32;
/// IFLA_GROUP.
const LINK_GROUP: u32 = 64;
/// Marks [`MessageNotes::len`] when the noted name is an alternative name
/// (up to 127 bytes, never cut: one longer than an interface name has no
/// rule but `*`).
const ALT_NAME: u32 = 1 << 31;

/// Walks a link message's top-level attributes; None if they cannot be
/// walked whole (the kernel's `nlmsg_parse` would refuse the message, or
/// there are more than [`MAX_LINK_ATTRS`]). The walk is a `repeat` whose
/// state is in `notes`, so the verifier checks one step, not every path
/// through every attribute (kernels from 6.15 on explore far more of those).
fn link_attributes<B: MessageBuffer>(
    buf: &B,
    offset: u32,
    msg_len: u32,
    notes: &mut MessageNotes,
) -> Option<LinkAttrs> {
    let end = offset + msg_len;
    if msg_len < NLMSG_HDRLEN + IFINFOMSG_LEN {
        return None;
    }
    // ifi_index, ifi_flags, ifi_change.
    let mut fixed = [0u8; 12];
    if !buf.read(offset + NLMSG_HDRLEN + 4, &mut fixed) {
        return None;
    }
    // Both worked out here, through a read the compiler cannot move: left
    // for after the walk below, the twelve bytes were kept across it in
    // twelve stack slots of the step, whose stack 6.1's verifier bounds.
    let index = i32::from_ne_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
    let flags_change =
        u64::from_ne_bytes([fixed[4], fixed[5], fixed[6], fixed[7], fixed[8], fixed[9], fixed[10], fixed[11]]) != 0;
    // SAFETY: locals.
    let (index, flags_change) = unsafe { (core::ptr::read_volatile(&index), core::ptr::read_volatile(&flags_change)) };
    write_field(&mut notes.next_attr, offset + NLMSG_HDRLEN + IFINFOMSG_LEN);
    write_field(&mut notes.walk, WALK_ON);
    write_field(&mut notes.seen, 0);
    write_field(&mut notes.at, 0);
    // One step more than attributes read: it finds the end.
    buf.repeat(MAX_LINK_ATTRS + 1, |_| link_attribute(buf, end, notes));
    let seen = read_field(&notes.seen);
    write_field(&mut notes.seen, 0);
    if read_field(&notes.walk) != WALK_DONE {
        return None;
    }
    Some(LinkAttrs {
        index,
        names_link: seen & LINK_NAMED != 0,
        named: read_field(&notes.at) != 0,
        ifname: seen & LINK_IFNAME != 0,
        group: seen & LINK_GROUP != 0,
        netns: seen & LINK_NETNS != 0,
        other_netns: seen & LINK_OTHER_NETNS != 0,
        // `do_setlink` also applies ifi_flags (all of them when ifi_change
        // is 0) and, with an index, renames to IFLA_IFNAME.
        conf_only: seen & LINK_AF_SPEC != 0
            && seen & LINK_OTHER == 0
            && !flags_change
            && !(index > 0 && seen & LINK_IFNAME != 0),
    })
}

/// One step of [`link_attributes`]: the attribute at `notes.next_attr`.
#[inline(always)]
fn link_attribute<B: MessageBuffer>(buf: &B, end: u32, notes: &mut MessageNotes) -> bool {
    let Some((at, nla_len, nla_type)) = next_attribute(buf, end, notes) else {
        return false;
    };
    // The kernel keeps the last of each attribute type, and takes
    // IFLA_IFNAME over IFLA_ALT_IFNAME.
    let payload = nla_len - NLA_HDRLEN;
    if nla_type == IFLA_IFNAME {
        write_field(&mut notes.at, at + NLA_HDRLEN);
        write_field(&mut notes.len, payload);
    } else if nla_type == IFLA_ALT_IFNAME && read_field(&notes.seen) & LINK_IFNAME == 0 {
        write_field(&mut notes.at, at + NLA_HDRLEN);
        write_field(&mut notes.len, payload | ALT_NAME);
    }
    notes.note_seen(match nla_type {
        IFLA_NET_NS_PID | IFLA_NET_NS_FD => LINK_NETNS,
        // IFLA_LINK_NETNSID: the new link's lower device is in (and the link
        // may be made attached to) another namespace.
        IFLA_TARGET_NETNSID | IFLA_LINK_NETNSID => LINK_NETNS | LINK_OTHER_NETNS,
        IFLA_AF_SPEC => LINK_AF_SPEC,
        IFLA_IFNAME => LINK_NAMED | LINK_IFNAME,
        IFLA_ALT_IFNAME => LINK_NAMED,
        IFLA_GROUP => LINK_NAMED | LINK_OTHER | LINK_GROUP,
        _ => LINK_OTHER,
    });
    write_field(&mut notes.next_attr, at + ((nla_len + 3) & !3));
    true
}

/// Fills an interface action's target (see [`TargetKind::Interface`]):
/// `interface` is how the message addresses it.
#[inline(always)]
fn name_interface<B: MessageBuffer, I: Interfaces>(
    interfaces: &I,
    buf: &B,
    interface: Interface,
    key: &mut TargetKey,
    notes: &MessageNotes,
) {
    key.object[8..16].copy_from_slice(&interfaces.netns().to_le_bytes());
    let named = match interface {
        Interface::ByName => {
            let (at, len) = (read_field(&notes.at), read_field(&notes.len));
            let alt = len & ALT_NAME != 0;
            let payload = len & !ALT_NAME;
            // IFLA_IFNAME is cut to IFNAMSIZ - 1 bytes, as `nla_strscpy`
            // cuts it; an alternative name is read one byte further, to
            // tell one that does not fit.
            let cap = if alt { IFNAME_LEN as u32 + 1 } else { IFNAME_LEN as u32 };
            let size = if payload < cap { payload + 1 } else { cap };
            // Masked through a copy the compiler cannot see through: the 6.1
            // verifier does not carry the bound of `payload` over to `size`.
            // (At most 17, so the mask changes nothing.)
            // SAFETY: a local.
            let size = unsafe { core::ptr::read_volatile(&size) } & 0x1f;
            let written = buf.read_str(at, size, &mut key.table);
            written > 1 && (written as u32) <= IFNAME_LEN as u32
        }
        Interface::ByIndex(index) if index != 0 && interfaces.name_of(index, &mut key.table) => true,
        Interface::ByIndex(index) | Interface::Unnamed(index) => {
            key.object[..4].copy_from_slice(&index.to_le_bytes());
            false
        }
    };
    if !named {
        key.clear_table();
    }
}

/// RTM_GETDCB: dcbnl dispatches on `dcbmsg.cmd`, set commands included.
const RTM_GETDCB: u16 = 78;
/// `AF_BRIDGE` (PF_BRIDGE): link and neighbour messages for bridges.
const AF_BRIDGE: u8 = 7;

/// Whether an RTM_GETDCB carries one of dcbnl's get commands (GSTATE,
/// PGTX_GCFG, PGRX_GCFG, PFC_GCFG, GPERM_HWADDR, GCAP, GNUMTCS,
/// PFC_GSTATE, BCN_GCFG, GAPP, IEEE_GET, GDCBX, GFEATCFG, CEE_GET); its
/// set commands change the NIC's traffic classes.
fn dcb_read<B: MessageBuffer>(buf: &B, offset: u32) -> bool {
    let mut dcbmsg = [0u8; 2];
    buf.read(offset + NLMSG_HDRLEN, &mut dcbmsg)
        && matches!(dcbmsg[1], 1 | 3 | 5 | 7 | 10 | 11 | 12 | 14 | 16 | 18 | 21 | 22 | 24 | 26)
}

/// `sizeof(struct rtmsg)`: route attributes start after it.
const RTMSG_LEN: u32 = 12;
/// RTA_DST (the destination address) and RTA_TABLE (a u32 table id, which
/// the kernel takes over `rtm_table`).
const RTA_DST: u16 = 1;
const RTA_TABLE: u16 = 15;
/// Most attributes of one route message read; one with more is unparseable.
const MAX_ROUTE_ATTRS: u32 = 16;
/// Bits of [`MessageNotes::seen`] during a route walk.
const ROUTE_DST: u32 = 1;
const ROUTE_TABLE: u32 = 2;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Fills a route action's target (see [`TargetKind::Route`]) from the
/// message at `offset`, as `rtm_to_fib_config` and `rtm_to_fib6_config`
/// read it. False if its attributes cannot be walked whole.
fn route_target<B: MessageBuffer, I: Interfaces>(
    interfaces: &I,
    buf: &B,
    offset: u32,
    msg_len: u32,
    key: &mut TargetKey,
    notes: &mut MessageNotes,
) -> bool {
    let mut rtm = [0u8; 8];
    if msg_len < NLMSG_HDRLEN + RTMSG_LEN || !buf.read(offset + NLMSG_HDRLEN, &mut rtm) {
        return false;
    }
    let (family, dst_len, rtm_table) = (rtm[0], rtm[1], rtm[4]);
    write_field(&mut notes.next_attr, offset + NLMSG_HDRLEN + RTMSG_LEN);
    write_field(&mut notes.walk, WALK_ON);
    write_field(&mut notes.seen, 0);
    write_field(&mut notes.at, 0);
    write_field(&mut notes.by_reference, 0);
    // One step more than attributes read: it finds the end.
    buf.repeat(MAX_ROUTE_ATTRS + 1, |_| route_attribute(buf, offset + msg_len, notes));
    let seen = read_field(&notes.seen);
    write_field(&mut notes.seen, 0);
    if read_field(&notes.walk) != WALK_DONE {
        return false;
    }
    let width: u32 = match family {
        AF_INET => 4,
        AF_INET6 => 16,
        // Another family (MPLS, ...): unnamed.
        _ => return true,
    };
    if dst_len as u32 > width * 8 {
        return true;
    }
    let mut address = [0u8; 16];
    if seen & ROUTE_DST != 0 {
        let at = read_field(&notes.at);
        let read = if width == 4 {
            let mut v4 = [0u8; 4];
            let read = buf.read(at, &mut v4);
            address[..4].copy_from_slice(&v4);
            read
        } else {
            buf.read(at, &mut address)
        };
        if !read {
            return true;
        }
    }
    // The kernel keeps only the prefix's bits (IPv6 clears the rest; IPv4
    // refuses a route with any set). Two masks, not a branch per byte: this
    // runs in the message step, which newer verifiers (6.7+) check again
    // until its states converge, and 16 bytes of branches cost 7.2's 350k
    // of its 1M instructions.
    let prefix = dst_len as u32;
    let high = u64::from_be_bytes(address[..8].try_into().unwrap_or_default()) & top_bits(prefix);
    let low = u64::from_be_bytes(address[8..].try_into().unwrap_or_default()) & top_bits(prefix.saturating_sub(64));
    address[..8].copy_from_slice(&high.to_be_bytes());
    address[8..].copy_from_slice(&low.to_be_bytes());
    let table = if seen & ROUTE_TABLE != 0 { read_field(&notes.by_reference) } else { rtm_table as u32 };
    let table = if table == 0 { action::RT_TABLE_MAIN } else { table };
    key.table[..4].copy_from_slice(&table.to_le_bytes());
    key.table[8..16].copy_from_slice(&interfaces.netns().to_le_bytes());
    key.object[0] = family;
    key.object[1] = dst_len;
    key.object[4..20].copy_from_slice(&address);
    true
}

/// A 64-bit word with its top `bits` bits set (all of them from 64 on).
#[inline(always)]
fn top_bits(bits: u32) -> u64 {
    if bits == 0 { 0 } else { u64::MAX << (64 - bits.min(64)) }
}

/// One step of [`route_target`]'s walk: the attribute at `notes.next_attr`.
/// The kernel keeps the last of each type.
#[inline(always)]
fn route_attribute<B: MessageBuffer>(buf: &B, end: u32, notes: &mut MessageNotes) -> bool {
    let Some((at, nla_len, nla_type)) = next_attribute(buf, end, notes) else {
        return false;
    };
    if nla_type == RTA_DST {
        write_field(&mut notes.at, at + NLA_HDRLEN);
        notes.note_seen(ROUTE_DST);
    } else if nla_type == RTA_TABLE {
        let mut table = [0u8; 4];
        if nla_len < NLA_HDRLEN + 4 || !buf.read(at + NLA_HDRLEN, &mut table) {
            // The kernel refuses a table id that is not a u32.
            write_field(&mut notes.walk, WALK_FAILED);
            return false;
        }
        write_field(&mut notes.by_reference, u32::from_ne_bytes(table));
        notes.note_seen(ROUTE_TABLE);
    }
    write_field(&mut notes.next_attr, at + ((nla_len + 3) & !3));
    true
}

/// xfrm by type; None for its reads (GETSA, GETPOLICY, GETAE, GETSADINFO,
/// GETSPDINFO, GETDEFAULT).
fn xfrm_action(msg_type: u16) -> Option<u32> {
    use action::*;
    Some(match msg_type {
        18 | 21 | 31 | 35 | 37 | 40 => return None,
        16 | 26 => NET_XFRM_STATE_ADD,
        17 | 28 => NET_XFRM_STATE_DELETE,
        19 | 25 => NET_XFRM_POLICY_ADD,
        20 | 29 => NET_XFRM_POLICY_DELETE,
        _ => NET_XFRM_OTHER,
    })
}

/// Reads on the remaining protocols (generic netlink's are in `classify`):
/// sock_diag queries (not SOCK_DESTROY), and audit status and rule
/// listings. Audit's user messages (AUDIT_USER and the user ranges) are
/// records for the log, not configuration.
fn other_is_read(protocol: u16, msg_type: u16) -> bool {
    match protocol {
        // SOCK_DIAG_BY_FAMILY and the older TCPDIAG/DCCPDIAG queries.
        protocol::SOCK_DIAG => matches!(msg_type, 18..=20),
        protocol::AUDIT => {
            matches!(msg_type, 1000 | 1002 | 1010 | 1013 | 1016 | 1019)
                || msg_type == 1005
                || (1100..=1199).contains(&msg_type)
                || (2100..=2999).contains(&msg_type)
        }
        _ => false,
    }
}
