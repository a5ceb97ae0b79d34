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

mod link;
mod route;

use link::{Interface, link_attributes, name_interface};
use route::route_target;

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
            RouteClass::Read if read_needs_body(msg_type) && !dcb_read(buf, offset) => action::NETLINK_OTHER,
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
    key.set_protocol(protocol as u8, msg_type);
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

/// Reads known from the header alone: rtnetlink's GET kind but those
/// whose body says whether they read ([`read_needs_body`], which
/// [`classify`] asks too). `rtnetlink_send` lets a sendmsg of one such
/// message (the dumps `ip` and `getifaddrs` send) through without a batch,
/// the policy or a record. The other reads (control types, xfrm's GETs,
/// sock_diag's and audit's) are left to the walk: rarer, and not worth
/// their instructions in that program.
pub fn read_by_header(protocol: u16, header: &MessageHeader) -> bool {
    protocol == protocol::ROUTE
        && !read_needs_body(header.msg_type)
        && matches!(route_action(header.msg_type, header.flags), RouteClass::Read)
}

/// rtnetlink GET-kind types that may set, as their body says: RTM_GETDCB
/// (dcbnl's set commands come as one).
#[inline(always)]
fn read_needs_body(msg_type: u16) -> bool {
    msg_type == RTM_GETDCB
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
