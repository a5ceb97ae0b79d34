//! Legacy x_tables (iptables-legacy, ip6tables-legacy, arptables, ebtables):
//! a table is replaced, or its counters updated, by one setsockopt on a raw
//! socket. `socket_setsockopt` sees the level and option but not the buffer,
//! so the target is the family the level and option name imply.

use crate::action;

/// `SOL_IP`, `SOL_IPV6`.
pub const SOL_IP: i32 = 0;
pub const SOL_IPV6: i32 = 41;

/// `IPT_SO_SET_REPLACE`, `IPT_SO_SET_ADD_COUNTERS` (and the IP6T ones, same numbers on SOL_IPV6).
pub const IPT_SO_SET_REPLACE: i32 = 64;
pub const IPT_SO_SET_ADD_COUNTERS: i32 = 65;
/// `ARPT_SO_SET_REPLACE`, `ARPT_SO_SET_ADD_COUNTERS`.
pub const ARPT_SO_SET_REPLACE: i32 = 96;
pub const ARPT_SO_SET_ADD_COUNTERS: i32 = 97;
/// `EBT_SO_SET_ENTRIES`, `EBT_SO_SET_COUNTERS`.
pub const EBT_SO_SET_ENTRIES: i32 = 128;
pub const EBT_SO_SET_COUNTERS: i32 = 129;

/// `IP_VS_SO_SET_*`, `IP_VS_BASE_CTL` (1152) to `IP_VS_SO_SET_MAX` (1167):
/// services, servers, timeouts, the sync daemon, zeroing.
pub const IP_VS_SO_SET: core::ops::RangeInclusive<i32> = 1152..=1167;
/// `IP_IPSEC_POLICY`, `IP_XFRM_POLICY` and the IPv6 ones: a socket's own
/// IPsec policy, which can let its traffic past the host's.
pub const IP_IPSEC_POLICY: i32 = 16;
pub const IP_XFRM_POLICY: i32 = 17;
pub const IPV6_IPSEC_POLICY: i32 = 34;
pub const IPV6_XFRM_POLICY: i32 = 35;

/// `MRT_BASE` (200) to `MRT_MAX` (212), and the same numbers as `MRT6_*`
/// on SOL_IPV6: multicast routing on an IGMP (ICMPv6) raw socket. What
/// one adds outlives the socket unless it ran MRT_INIT.
pub const MRT_ADD_VIF: i32 = 202;
pub const MRT_DEL_VIF: i32 = 203;
pub const MRT_ADD_MFC: i32 = 204;
pub const MRT_DEL_MFC: i32 = 205;
pub const MRT_ADD_MFC_PROXY: i32 = 210;
pub const MRT_DEL_MFC_PROXY: i32 = 211;
pub const MRT_FLUSH: i32 = 212;
pub const MRT: core::ops::RangeInclusive<i32> = 200..=212;

/// `IPV6_JOIN_ANYCAST`, `IPV6_LEAVE_ANYCAST`: an anycast address (and its
/// local route) on an interface, for as long as the socket lives.
pub const IPV6_JOIN_ANYCAST: i32 = 27;
pub const IPV6_LEAVE_ANYCAST: i32 = 28;

/// `SOL_XDP`: every option of an AF_XDP socket (its rings, its umem). An
/// XDP socket sends frames it made from `poll()` or the driver, past the
/// `socket_sendmsg` hook: setting one up at all is `net.raw`.
pub const SOL_XDP: i32 = 283;

/// nfproto families used as targets.
pub const FAMILY_IP: u8 = 2;
pub const FAMILY_ARP: u8 = 3;
pub const FAMILY_BRIDGE: u8 = 7;
pub const FAMILY_IP6: u8 = 10;

/// The action and family of a setsockopt, if it writes an x_tables table
/// (or IPVS's, or a socket's IPsec policy: family 0, only `*` covers it).
pub fn classify(level: i32, optname: i32) -> Option<(u32, u8)> {
    match (level, optname) {
        (SOL_IP, name) if IP_VS_SO_SET.contains(&name) => Some((action::NET_IPVS, 0)),
        (SOL_XDP, _) => Some((action::NET_RAW, 0)),
        // Multicast routing: a virtual interface (pimreg, a dvmrp tunnel)
        // is a link, a forwarding cache entry a route; the rest (taking
        // the router's socket, its table, PIM, asserts) set routing up.
        (SOL_IP | SOL_IPV6, name) if MRT.contains(&name) => Some((
            match name {
                MRT_ADD_VIF => action::NET_LINK_ADD,
                MRT_DEL_VIF => action::NET_LINK_DELETE,
                MRT_DEL_MFC | MRT_DEL_MFC_PROXY | MRT_FLUSH => action::NET_ROUTE_DELETE,
                _ => action::NET_ROUTE_ADD,
            },
            0,
        )),
        (SOL_IP, IP_IPSEC_POLICY | IP_XFRM_POLICY) | (SOL_IPV6, IPV6_IPSEC_POLICY | IPV6_XFRM_POLICY) => {
            Some((action::NET_XFRM_POLICY_ADD, 0))
        }
        (SOL_IPV6, IPV6_JOIN_ANYCAST) => Some((action::NET_ADDR_ADD, 0)),
        (SOL_IPV6, IPV6_LEAVE_ANYCAST) => Some((action::NET_ADDR_DELETE, 0)),
        (SOL_IP, IPT_SO_SET_REPLACE) => Some((action::IPTABLES_REPLACE, FAMILY_IP)),
        (SOL_IP, IPT_SO_SET_ADD_COUNTERS) => Some((action::IPTABLES_COUNTERS, FAMILY_IP)),
        (SOL_IPV6, IPT_SO_SET_REPLACE) => Some((action::IPTABLES_REPLACE, FAMILY_IP6)),
        (SOL_IPV6, IPT_SO_SET_ADD_COUNTERS) => Some((action::IPTABLES_COUNTERS, FAMILY_IP6)),
        (SOL_IP, ARPT_SO_SET_REPLACE) => Some((action::IPTABLES_REPLACE, FAMILY_ARP)),
        (SOL_IP, ARPT_SO_SET_ADD_COUNTERS) => Some((action::IPTABLES_COUNTERS, FAMILY_ARP)),
        (SOL_IP, EBT_SO_SET_ENTRIES) => Some((action::IPTABLES_REPLACE, FAMILY_BRIDGE)),
        (SOL_IP, EBT_SO_SET_COUNTERS) => Some((action::IPTABLES_COUNTERS, FAMILY_BRIDGE)),
        _ => None,
    }
}
