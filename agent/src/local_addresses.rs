//! The host's own addresses, for `ipc.loopback`: a root service listening
//! on every address is reached through any of them, not only through
//! 127.0.0.1. The kernel's local routing table (`ip route show table
//! local`) lists what it delivers to the host itself: each interface
//! address, the broadcast addresses, IPv6 anycast and multicast prefixes,
//! and whatever `ip route add local PREFIX` adds (AnyIP). So do `local`
//! and `anycast` routes of the main and default tables, which the default
//! rules consult for every packet (IPv6 keeps its local routes in main on
//! kernels without multiple tables). So, for IPv4, does any route of main
//! and default out through the loopback device (`ip route add 10.9.0.0/16
//! dev lo`): the kernel delivers what it routes there to the host itself.
//! Only those are read: a table an `ip
//! rule` sends some packets to (a TPROXY setup's `fwmark` table, a VRF's)
//! is left out, and so are `broadcast` and `multicast` routes outside the
//! local table (adding one is a `net.route` action). The daemon copies these
//! routes into LOCAL_ADDRESSES before the programs attach and again
//! whenever one of them changes.

use std::{
    collections::BTreeSet,
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

use warrant_common::{LocalAddress, v4_mapped};

use crate::netlink_socket::{self, align4};

/// One prefix the host delivers to itself; IPv4 as v4-mapped, its length
/// counted in the IPv6 address's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalPrefix {
    pub len: u8,
    pub address: LocalAddress,
}

impl LocalPrefix {
    /// `address`/`len` with the bits past `len` cleared (as the kernel's
    /// trie compares them).
    pub fn new(len: u8, mut address: LocalAddress) -> Self {
        let len = len.min(128);
        for (i, byte) in address.iter_mut().enumerate() {
            let kept = (usize::from(len)).saturating_sub(i * 8).min(8);
            *byte &= !(0xffu16 >> kept) as u8;
        }
        LocalPrefix { len, address }
    }

    fn v4(len: u8, ip: [u8; 4]) -> Self {
        Self::new(len.min(32) + 96, v4_mapped(ip))
    }
}

const NETLINK_ROUTE: libc::c_int = 0;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const RT_TABLE_DEFAULT: u32 = 253;
const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const RTN_BROADCAST: u8 = 3;
const RTN_ANYCAST: u8 = 4;
const RTN_MULTICAST: u8 = 5;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;
/// `struct nlmsghdr` and `struct rtmsg`.
const HEADER_LEN: usize = 16;
const RTMSG_LEN: usize = 12;
/// `struct rtnexthop`: length, flags, hops, then the device's index.
const RTNEXTHOP_LEN: usize = 8;
/// The loopback device's index, the same in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// Destinations a local socket hears whatever the table says: IPv4 and
/// IPv6 multicast (a socket bound to the port hears a group the host is
/// in, with the sender's loop on by default) and the limited broadcast.
fn always_local() -> [LocalPrefix; 3] {
    [
        LocalPrefix::v4(4, [224, 0, 0, 0]),
        LocalPrefix::v4(32, [255, 255, 255, 255]),
        LocalPrefix::new(8, [0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ]
}

/// A socket that hears every IPv4 and IPv6 route change (non-blocking):
/// read it with [`local_table_changed`].
pub fn watch() -> io::Result<OwnedFd> {
    let socket = netlink_socket::open(NETLINK_ROUTE, libc::SOCK_NONBLOCK)?;
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid start.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address.nl_groups = RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    // SAFETY: the address is a valid sockaddr_nl of the length given.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// The local routing table now, with [`always_local`]'s prefixes.
pub fn dump() -> io::Result<BTreeSet<LocalPrefix>> {
    let socket = netlink_socket::open(NETLINK_ROUTE, 0)?;
    // With strict checking the kernel dumps only the table asked for (a
    // router's main table may hold a million routes); without it, every
    // table comes and the others are skipped here.
    let on: libc::c_int = 1;
    // SAFETY: an int option of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            SOL_NETLINK,
            NETLINK_GET_STRICT_CHK,
            std::ptr::from_ref(&on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let mut prefixes: BTreeSet<LocalPrefix> = always_local().into_iter().collect();
    let mut buffer = vec![0u8; 64 * 1024];
    // The local table whole; in main and default, only the delivering
    // types and IPv4's routes out through lo (main may hold a router's
    // million routes).
    let requests = [
        (libc::AF_INET, RT_TABLE_LOCAL, 0, None),
        (libc::AF_INET, RT_TABLE_MAIN, RTN_LOCAL, None),
        (libc::AF_INET, RT_TABLE_DEFAULT, RTN_LOCAL, None),
        (libc::AF_INET, RT_TABLE_MAIN, RTN_UNICAST, Some(LOOPBACK_IFINDEX)),
        (libc::AF_INET, RT_TABLE_DEFAULT, RTN_UNICAST, Some(LOOPBACK_IFINDEX)),
        (libc::AF_INET6, RT_TABLE_LOCAL, 0, None),
        (libc::AF_INET6, RT_TABLE_MAIN, RTN_LOCAL, None),
        (libc::AF_INET6, RT_TABLE_MAIN, RTN_ANYCAST, None),
        (libc::AF_INET6, RT_TABLE_DEFAULT, RTN_LOCAL, None),
    ];
    for (family, table, kind, device) in requests {
        netlink_socket::send(&socket, &dump_request(family as u8, table, kind, device))?;
        loop {
            let got = netlink_socket::recv(&socket, &mut buffer)?;
            if parse_dump(&buffer[..got], &mut prefixes)? {
                break;
            }
        }
    }
    Ok(prefixes)
}

/// An RTM_GETROUTE dump request for `family`'s routes of `table`, of
/// type `kind` only unless 0, through device `device` only if given
/// (filters the kernel applies under strict checking; [`local_route`]
/// checks each reply all the same).
fn dump_request(family: u8, table: u32, kind: u8, device: Option<u32>) -> Vec<u8> {
    let total = HEADER_LEN + RTMSG_LEN + 8 + if device.is_some() { 8 } else { 0 };
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_ne_bytes());
    message.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    message.extend_from_slice(&[family, 0, 0, 0, table as u8, 0, 0, kind, 0, 0, 0, 0]);
    message.extend_from_slice(&8u16.to_ne_bytes());
    message.extend_from_slice(&RTA_TABLE.to_ne_bytes());
    message.extend_from_slice(&table.to_ne_bytes());
    if let Some(device) = device {
        message.extend_from_slice(&8u16.to_ne_bytes());
        message.extend_from_slice(&RTA_OIF.to_ne_bytes());
        message.extend_from_slice(&device.to_ne_bytes());
    }
    message
}

/// Each netlink message in `buffer` as (type, payload).
fn messages(buffer: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = buffer.get(at..at + HEADER_LEN)?;
        let len = u32::from_ne_bytes(header[..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        let payload = buffer.get(at + HEADER_LEN..at + len.max(HEADER_LEN))?;
        at += align4(len.max(HEADER_LEN));
        Some((kind, payload))
    })
}

/// Adds the local-table prefixes of one dump reply to `prefixes`; true
/// once the dump is done.
fn parse_dump(buffer: &[u8], prefixes: &mut BTreeSet<LocalPrefix>) -> io::Result<bool> {
    for (kind, payload) in messages(buffer) {
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = i32::from_ne_bytes(payload.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
                return Err(io::Error::from_raw_os_error(-errno));
            }
            RTM_NEWROUTE => prefixes.extend(local_route(payload)),
            _ => {}
        }
    }
    Ok(false)
}

/// True if `buffer` (what the [`watch`] socket read) adds or removes a
/// route that delivers to the host (see [`local_route`]).
pub fn local_table_changed(buffer: &[u8]) -> bool {
    messages(buffer)
        .any(|(kind, payload)| matches!(kind, RTM_NEWROUTE | RTM_DELROUTE) && local_route(payload).is_some())
}

/// The attributes after an rtmsg, as (type, value).
fn attributes(payload: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    netlink_socket::attributes(payload, RTMSG_LEN)
}

/// The route's table: RTA_TABLE if given (tables past 255), else rtm_table.
fn route_table(payload: &[u8]) -> Option<u32> {
    let short = u32::from(*payload.get(4)?);
    let long = attributes(payload)
        .find(|(kind, _)| *kind == RTA_TABLE)
        .and_then(|(_, value)| Some(u32::from_ne_bytes(value.get(..4)?.try_into().ok()?)));
    Some(long.unwrap_or(short))
}

/// The prefix of a route payload if the route delivers to the host: any
/// delivering type in the local table, `local` and `anycast` in main and
/// default, and IPv4 `unicast` there out through lo. A route without
/// RTA_DST is the whole family (`local 0.0.0.0/0`).
fn local_route(payload: &[u8]) -> Option<LocalPrefix> {
    let (family, dst_len, kind) = (*payload.first()?, *payload.get(1)?, *payload.get(7)?);
    let delivers = match route_table(payload)? {
        RT_TABLE_LOCAL => matches!(kind, RTN_LOCAL | RTN_BROADCAST | RTN_ANYCAST | RTN_MULTICAST),
        RT_TABLE_MAIN | RT_TABLE_DEFAULT => {
            matches!(kind, RTN_LOCAL | RTN_ANYCAST)
                || (kind == RTN_UNICAST && family as libc::c_int == libc::AF_INET && through_loopback(payload))
        }
        _ => false,
    };
    if !delivers {
        return None;
    }
    let destination = attributes(payload).find(|(kind, _)| *kind == RTA_DST).map(|(_, value)| value);
    match family as libc::c_int {
        libc::AF_INET => {
            let ip: [u8; 4] = destination.map_or(Some([0; 4]), |value| value.try_into().ok())?;
            Some(LocalPrefix::v4(dst_len, ip))
        }
        libc::AF_INET6 => {
            let ip: LocalAddress = destination.map_or(Some([0; 16]), |value| value.try_into().ok())?;
            Some(LocalPrefix::new(dst_len, ip))
        }
        _ => None,
    }
}

/// Whether a route's device, or one of its multipath hops', is lo.
fn through_loopback(payload: &[u8]) -> bool {
    let index = |value: &[u8]| value.get(..4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    attributes(payload).any(|(kind, value)| match kind {
        RTA_OIF => index(value) == Some(LOOPBACK_IFINDEX),
        RTA_MULTIPATH => {
            let mut at = 0;
            std::iter::from_fn(|| {
                let hop = value.get(at..at + RTNEXTHOP_LEN)?;
                at += align4(usize::from(u16::from_ne_bytes([hop[0], hop[1]])).max(RTNEXTHOP_LEN));
                index(&hop[4..])
            })
            .any(|device| device == LOOPBACK_IFINDEX)
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWROUTE message as the kernel sends it.
    fn route(family: u8, dst_len: u8, table: u8, kind: u8, dst: Option<&[u8]>) -> Vec<u8> {
        let mut payload = vec![family, dst_len, 0, 0, table, 2, 254, kind, 0, 0, 0, 0];
        payload.extend_from_slice(&8u16.to_ne_bytes());
        payload.extend_from_slice(&RTA_TABLE.to_ne_bytes());
        payload.extend_from_slice(&u32::from(table).to_ne_bytes());
        if let Some(dst) = dst {
            payload.extend_from_slice(&((4 + dst.len()) as u16).to_ne_bytes());
            payload.extend_from_slice(&RTA_DST.to_ne_bytes());
            payload.extend_from_slice(dst);
        }
        let mut message = ((HEADER_LEN + payload.len()) as u32).to_ne_bytes().to_vec();
        message.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        message.extend_from_slice(&[0; 10]);
        message.extend_from_slice(&payload);
        message
    }

    #[test]
    fn a_dump_keeps_the_local_tables_delivering_routes() {
        let mut reply = route(2, 32, 255, RTN_LOCAL, Some(&[10, 77, 0, 1]));
        reply.extend(route(2, 32, 255, RTN_BROADCAST, Some(&[10, 77, 0, 255])));
        // The main table's unicast routes, the local table's unreachable
        // ones and a fwmark table's local ones are not the host's.
        reply.extend(route(2, 24, 254, 1, Some(&[10, 77, 0, 0])));
        reply.extend(route(2, 24, 255, 7, Some(&[10, 78, 0, 0])));
        reply.extend(route(2, 0, 100, RTN_LOCAL, None));
        // An IPv6 address's local route in main (no multiple tables).
        let v6_main = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        reply.extend(route(10, 128, 254, RTN_LOCAL, Some(&v6_main)));
        let mut v6 = [0u8; 16];
        v6[..2].copy_from_slice(&[0xfe, 0x80]);
        v6[15] = 1;
        reply.extend(route(10, 128, 255, RTN_LOCAL, Some(&v6)));
        // AnyIP: a whole family made local.
        reply.extend(route(2, 0, 255, RTN_LOCAL, None));
        let mut prefixes = BTreeSet::new();
        assert!(!parse_dump(&reply, &mut prefixes).unwrap(), "no NLMSG_DONE yet");
        let expected: BTreeSet<LocalPrefix> = [
            LocalPrefix::v4(32, [10, 77, 0, 1]),
            LocalPrefix::v4(32, [10, 77, 0, 255]),
            LocalPrefix::new(128, v6),
            LocalPrefix::new(128, v6_main),
            LocalPrefix::v4(0, [0; 4]),
        ]
        .into_iter()
        .collect();
        assert_eq!(prefixes, expected);
        assert_eq!(LocalPrefix::v4(0, [0; 4]).len, 96, "all of IPv4, and none of IPv6");
        let mut done = (HEADER_LEN as u32 + 4).to_ne_bytes().to_vec();
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0; 14]);
        assert!(parse_dump(&done, &mut prefixes).unwrap());
    }

    /// `message` with one more attribute.
    fn with_attribute(mut message: Vec<u8>, kind: u16, value: &[u8]) -> Vec<u8> {
        message.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        message.extend_from_slice(&kind.to_ne_bytes());
        message.extend_from_slice(value);
        let len = message.len() as u32;
        message[..4].copy_from_slice(&len.to_ne_bytes());
        message
    }

    #[test]
    fn an_ipv4_route_out_through_lo_is_the_hosts() {
        let through = |device: u32| {
            with_attribute(route(2, 16, 254, RTN_UNICAST, Some(&[10, 9, 0, 0])), RTA_OIF, &device.to_ne_bytes())
        };
        let mut prefixes = BTreeSet::new();
        parse_dump(&through(LOOPBACK_IFINDEX), &mut prefixes).unwrap();
        parse_dump(&through(2), &mut prefixes).unwrap();
        // A multipath route with one hop out through lo.
        let hops: Vec<u8> = [2u32, LOOPBACK_IFINDEX]
            .iter()
            .flat_map(|device| [&8u16.to_ne_bytes()[..], &[0, 0], &device.to_ne_bytes()].concat())
            .collect();
        let multipath = with_attribute(route(2, 24, 253, RTN_UNICAST, Some(&[10, 8, 1, 0])), RTA_MULTIPATH, &hops);
        parse_dump(&multipath, &mut prefixes).unwrap();
        // IPv6 drops what it routes out through lo to an address not its own.
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let v6_route = with_attribute(route(10, 32, 254, RTN_UNICAST, Some(&v6)), RTA_OIF, &1u32.to_ne_bytes());
        parse_dump(&v6_route, &mut prefixes).unwrap();
        let expected = [LocalPrefix::v4(16, [10, 9, 0, 0]), LocalPrefix::v4(24, [10, 8, 1, 0])];
        assert_eq!(prefixes, expected.into_iter().collect());
        assert!(local_table_changed(&through(LOOPBACK_IFINDEX)));
        assert!(!local_table_changed(&through(2)));
    }

    #[test]
    fn only_a_change_of_the_local_table_asks_for_a_dump() {
        assert!(local_table_changed(&route(2, 32, 255, RTN_LOCAL, Some(&[10, 77, 0, 1]))));
        assert!(!local_table_changed(&route(2, 24, 254, 1, Some(&[10, 77, 0, 0]))));
        assert!(local_table_changed(&route(2, 24, 254, RTN_LOCAL, Some(&[10, 78, 0, 0]))), "AnyIP in main");
        assert!(!local_table_changed(&[1, 2, 3]), "a truncated read is no change");
    }

    #[test]
    fn a_prefix_keeps_only_its_own_bits() {
        let prefix = LocalPrefix::v4(20, [10, 77, 255, 255]);
        assert_eq!((prefix.len, prefix.address), (116, v4_mapped([10, 77, 240, 0])));
        assert_eq!(LocalPrefix::new(200, [0xff; 16]).len, 128);
    }

    #[test]
    fn this_hosts_table_has_loopback_and_the_always_local_prefixes() {
        let prefixes = dump().expect("the local routing table is readable without privileges");
        assert!(prefixes.contains(&LocalPrefix::v4(32, [127, 0, 0, 1])), "{prefixes:?}");
        assert!(always_local().iter().all(|prefix| prefixes.contains(prefix)));
    }
}
