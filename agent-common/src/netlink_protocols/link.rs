//! rtnetlink link messages: which attributes a NEWLINK, SETLINK or DELLINK
//! carries, and the interface it names, as `rtnl_newlink` finds it.

use super::*;

/// What a link message's fixed part and attributes say about it.
pub(super) struct LinkAttrs {
    /// `ifi_index`: the link it changes, 0 for none.
    pub(super) index: i32,
    /// It names a link (IFLA_IFNAME, IFLA_ALT_IFNAME) or a group of them
    /// (IFLA_GROUP), which the kernel finds when `index` is 0.
    pub(super) names_link: bool,
    /// A name attribute is noted in the walk's notes (`at`, `len`).
    pub(super) named: bool,
    /// The noted name is IFLA_IFNAME: the only name a link is made with.
    pub(super) ifname: bool,
    /// IFLA_GROUP: with index 0, a NEWLINK whose name finds no link changes
    /// every link of the group.
    pub(super) group: bool,
    /// It moves the link to, or makes it in, another namespace.
    pub(super) netns: bool,
    /// IFLA_TARGET_NETNSID: the kernel finds the link in another namespace.
    pub(super) other_netns: bool,
    /// Its only change is IFLA_AF_SPEC (with IFLA_IFNAME to find the link).
    pub(super) conf_only: bool,
}

impl LinkAttrs {
    /// The link the kernel finds: by index if positive, else by name.
    pub(super) fn interface(&self) -> Interface {
        match (self.index > 0, self.named && !self.group) {
            (true, _) => Interface::ByIndex(self.index as u32),
            (false, true) => Interface::ByName,
            (false, false) => Interface::Unnamed(0),
        }
    }
}

/// How a route message addresses its interface.
#[derive(Clone, Copy)]
pub(super) enum Interface {
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
pub(super) fn link_attributes<B: MessageBuffer>(
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
pub(super) fn name_interface<B: MessageBuffer, I: Interfaces>(
    interfaces: &I,
    buf: &B,
    interface: Interface,
    key: &mut TargetKey,
    notes: &MessageNotes,
) {
    key.set_interface_netns(interfaces.netns());
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
            key.set_unnamed_interface(index);
            false
        }
    };
    if !named {
        key.clear_table();
    }
}
