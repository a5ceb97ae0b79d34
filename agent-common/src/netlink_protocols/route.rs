//! rtnetlink route messages: the table and prefix a route action targets,
//! as `rtm_to_fib_config` and `rtm_to_fib6_config` read them.

use super::*;

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
pub(super) fn route_target<B: MessageBuffer, I: Interfaces>(
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
    key.set_route(table, interfaces.netns());
    key.set_route_prefix(family, dst_len, &address);
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
