//! The ioctls that change the network configuration without netlink: the
//! socket ioctls of `linux/sockios.h` (`route add`, `ifconfig`, `arp`,
//! `brctl`, `vconfig`, tunnels) and the tun device's. They reach the same
//! kernel functions as rtnetlink, so a subject's are decided as the
//! rtnetlink action they amount to, with a target no rule names (only `*`
//! covers them: the structures they pass are copied after the hook, so a
//! target read from them could be raced). vhost-net's backend ioctl is
//! `net.raw`.

use crate::action::{
    NET_ADDR_ADD, NET_ADDR_DELETE, NET_LINK_ADD, NET_LINK_DELETE, NET_LINK_SET, NET_NEIGH_ADD, NET_NEIGH_DELETE,
    NET_RAW, NET_ROUTE_ADD, NET_ROUTE_DELETE,
};

/// `_IOW(VHOST_VIRTIO, 0x30, struct vhost_vring_file)`.
const VHOST_NET_SET_BACKEND: u32 = 0x4008_af30;
/// `_IOWR('t', 62, int)` on /dev/ppp: makes a `pppN` interface.
const PPPIOCNEWUNIT: u32 = 0xc004_743e;
/// A terminal's line discipline: N_SLIP, N_SLCAN, N_GSM make interfaces
/// of a serial line (the discipline is read after the hook: every one).
const TIOCSETD: u32 = 0x5423;

/// The rtnetlink action ioctl `cmd` amounts to; None for reads and for
/// ioctls that are not about the network configuration.
pub fn network_action(cmd: u32) -> Option<u32> {
    if cmd & 0xffff_ff00 == 0x8900 {
        return socket_ioctl(cmd & 0xff);
    }
    // The tun device's ioctls: type 'T', numbers from 200 (the terminal's
    // share that type, below 0x60).
    // vhost-net's VHOST_NET_SET_BACKEND: the kernel's worker then sends
    // what a guest queue holds on the socket given (a packet socket, a
    // tap), through no send hook.
    if cmd == VHOST_NET_SET_BACKEND {
        return Some(NET_RAW);
    }
    if cmd == PPPIOCNEWUNIT || cmd == TIOCSETD {
        return Some(NET_LINK_ADD);
    }
    if (cmd >> 8) & 0xff == u32::from(b'T') && (200..=240).contains(&(cmd & 0xff)) {
        return match cmd & 0xff {
            // TUNGETFEATURES, TUNGETIFF, TUNGETSNDBUF, TUNGETVNETHDRSZ,
            // TUNGETFILTER, TUNGETVNETLE, TUNGETVNETBE, TUNGETDEVNETNS.
            207 | 210 | 211 | 215 | 219 | 221 | 223 | 227 => None,
            // TUNSETIFF makes the interface (or attaches to one).
            202 => Some(NET_LINK_ADD),
            _ => Some(NET_LINK_SET),
        };
    }
    None
}

/// SIOC* by number (the low byte of 0x89NN).
fn socket_ioctl(nr: u32) -> Option<u32> {
    Some(match nr {
        // FIOSETOWN, SIOCSPGRP (who gets the socket's signals), FIOGETOWN,
        // SIOCGPGRP, SIOCATMARK, SIOCGSTAMP, SIOCGSTAMPNS.
        0x01..=0x07 => return None,
        // SIOCGIFNAME, SIOCGIFCONF, SIOCGIFFLAGS, SIOCGIFADDR,
        // SIOCGIFDSTADDR, SIOCGIFBRDADDR, SIOCGIFNETMASK, SIOCGIFMETRIC,
        // SIOCGIFMEM, SIOCGIFMTU, SIOCGIFENCAP, SIOCGIFHWADDR, SIOCGIFSLAVE,
        // SIOCGIFINDEX, SIOCGIFPFLAGS, SIOCGIFCOUNT, SIOCGIFTXQLEN,
        // SIOCGMIIPHY, SIOCGMIIREG, SIOCOUTQNSD, SIOCGSKNS, SIOCGARP,
        // SIOCGRARP, SIOCGIFMAP, the bonding queries, SIOCGHWTSTAMP. Not
        // SIOCGIFBR (0x40: its argument makes and deletes bridges) nor
        // SIOCDEVPRIVATE (0xf0: SIOCGETTUNNEL on a tunnel, a bridge's
        // BRCTL_ADD_IF on a bridge), whose names say "get".
        0x10 | 0x12 | 0x13 | 0x15 | 0x17 | 0x19 | 0x1b | 0x1d | 0x1f | 0x21 | 0x25 | 0x27 | 0x29 | 0x33 | 0x35
        | 0x38 | 0x42 | 0x47 | 0x48 | 0x4b | 0x4c | 0x54 | 0x61 | 0x70 | 0x93 | 0x94 | 0xb1 => {
            return None;
        }
        // SIOCADDRT, SIOCDELRT.
        0x0b => NET_ROUTE_ADD,
        0x0c => NET_ROUTE_DELETE,
        // SIOCSIFADDR, SIOCSIFDSTADDR, SIOCSIFBRDADDR, SIOCSIFNETMASK.
        0x16 | 0x18 | 0x1a | 0x1c => NET_ADDR_ADD,
        // SIOCDIFADDR.
        0x36 => NET_ADDR_DELETE,
        // SIOCADDDLCI, SIOCBRADDBR, SIOCADDTUNNEL; SIOCDELDLCI,
        // SIOCBRDELBR, SIOCDELTUNNEL.
        0x80 | 0xa0 | 0xf1 => NET_LINK_ADD,
        0x81 | 0xa1 | 0xf2 => NET_LINK_DELETE,
        // SIOCSARP, SIOCSRARP; SIOCDARP, SIOCDRARP.
        0x55 | 0x62 => NET_NEIGH_ADD,
        0x53 | 0x60 => NET_NEIGH_DELETE,
        // Everything else changes links (flags, MTU, name, hardware address,
        // bridges, bonds, VLANs, tunnels, ethtool, device-private), or may:
        // SIOCETHTOOL, SIOCGIFVLAN, SIOCGIFBR and SIOCDEVPRIVATE read and
        // write through one number.
        _ => NET_LINK_SET,
    })
}
