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

/// `IP_VS_SO_SET_ADD` .. `IP_VS_SO_SET_ZERO` (`IP_VS_BASE_CTL` 1152 on).
pub const IP_VS_SO_SET: core::ops::RangeInclusive<i32> = 1152..=1161;

/// nfproto families used as targets.
pub const FAMILY_IP: u8 = 2;
pub const FAMILY_ARP: u8 = 3;
pub const FAMILY_BRIDGE: u8 = 7;
pub const FAMILY_IP6: u8 = 10;

/// The action and family of a setsockopt, if it writes an x_tables table
/// (or IPVS's, family 0: only `*` covers it).
pub fn classify(level: i32, optname: i32) -> Option<(u32, u8)> {
    match (level, optname) {
        (SOL_IP, name) if IP_VS_SO_SET.contains(&name) => Some((action::NET_IPVS, 0)),
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
