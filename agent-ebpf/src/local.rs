//! The host itself as a destination: a subject's connect or addressed send
//! to one of the host's own addresses reaches whatever root service listens
//! there, so it is the action `ipc.loopback`, decided on the port (see
//! `warrant_common::action::IPC_LOOPBACK`). Loopback (127/8, ::1 and the
//! unspecified addresses, which the kernel routes to it) is recognised
//! here; every other address of the host (an interface's, a broadcast
//! address, a multicast group a local socket may hear) is looked up in
//! LOCAL_ADDRESSES, which the daemon keeps from the local routing table.
//! An IPv4 packet the kernel routes out through the loopback device is
//! delivered to the host whatever its address (the route is local), so a
//! subject's IPv4 connect or send through it counts too: by the socket's
//! device (SO_BINDTODEVICE, IP_UNICAST_IF) or a send's IP_PKTINFO. IPv6
//! does not do this: a non-local address out through lo is dropped.

use aya_ebpf::maps::lpm_trie::Key;
use warrant_common::{DECIDED_ON_PORT, LocalAddress, Subject, action};

use crate::{
    ipc,
    maps::{CONNECTED_SOCKETS, LOCAL_ADDRESSES, offset},
    policy::{btf_load, decide_with, read_kernel, repeat, version_in_force},
    uapi::{AF_INET, AF_INET6, AF_SMC, AF_UNSPEC, SOCK_STREAM},
};

/// A full address's prefix length in LOCAL_ADDRESSES.
const HOST_PREFIX: u32 = 128;

/// Decides a subject's connect or send to `address` (a kernel copy of
/// `length` bytes): `ipc.loopback` when it is the host's own, or IPv4 and
/// `to_loopback` (see [`through_loopback`]), else 0. `on_inet`: the socket
/// is AF_INET, whose sends take an AF_UNSPEC address as AF_INET (a connect
/// takes it as a disconnect).
#[inline(always)]
pub fn decide(subject: &Subject, address: *const u8, length: i32, on_inet: bool, to_loopback: bool) -> i32 {
    match local_port(address, length, on_inet, to_loopback) {
        Some(port) => decide_port(subject, port),
        None => 0,
    }
}

#[inline(always)]
pub fn decide_port(subject: &Subject, port: u16) -> i32 {
    decide_with(subject, action::IPC_LOOPBACK, |key| {
        let object = (&raw mut key.object).cast::<u64>();
        unsafe { object.write_volatile(port as u64) };
    })
}

/// A subject's send on an IPv4 or IPv6 socket `sock` (of `socket`) that
/// goes to its peer (a TCP connection whatever the address given, a
/// connected datagram socket sending without one) is `ipc.loopback` when
/// the peer is the host's own, decided once per socket, profile, policy
/// version and peer (CONNECTED_SOCKETS); or, when the peer is IPv4 and
/// the send goes `to_loopback` (or by a kept route through lo), at every
/// send until one decides its port. The subject's own connect counts
/// as that decision; a connection made before its holder became a
/// subject, or handed over, is decided at its first send. This returns
/// the port to decide (host order), with the peer it read in `send.peer`
/// for [`note_peer`], or 0: no peer, decided already, or not the host's
/// (noted as decided under the version in force). The caller decides
/// (outside this frame: the decision's own calls are deep) and, if
/// allowed, notes it with [`note_peer`].
#[inline(never)]
pub fn peer_to_decide(subject: &Subject, sock: *const u8, socket: *const u8, send: &mut SendPeer) -> u16 {
    // Read before the decision: a policy switched in between decides it again.
    let version = version_in_force();
    let (port, peer) = peer_of(sock, send.family);
    // No peer (not connected yet: TCP Fast Open's first send).
    if port == 0 {
        return 0;
    }
    send.peer = (port, peer);
    // A device chosen after the connect (the route is looked up again), or
    // one the route it keeps was looked up with: to the host whatever the
    // address, unless the peer's port itself was decided.
    let through_loopback = (send.to_loopback || kept_route_through_loopback(sock)) && is_v4(peer);
    let Some(key) = ipc::socket_key(sock, socket) else {
        return if through_loopback || is_local(peer) { u16::from_be(port as u16) } else { 0 };
    };
    if let Some(decided) = unsafe { CONNECTED_SOCKETS.get(&key) }
        && decided.profile_id == subject.profile_id
        && decided.policy_version == version
        && u32::from(decided.port) == port
        && decided.peer[0] == peer[0]
        && decided.peer[1] == peer[1]
        && (!through_loopback || decided.decided == DECIDED_ON_PORT)
    {
        return 0;
    }
    if through_loopback || is_local(peer) {
        return u16::from_be(port as u16);
    }
    ipc::note_decided(subject, sock, socket, version, (port, peer), 0);
    0
}

/// A send on a connected IPv4 or IPv6 socket, for [`peer_to_decide`]: the
/// socket's family, whether the send goes through lo (see
/// [`through_loopback`]), and the peer read (port 0: none).
pub struct SendPeer {
    pub family: u16,
    pub to_loopback: bool,
    pub peer: (u32, [u64; 2]),
}

/// Notes `peer`, the one [`peer_to_decide`] read (not the socket's
/// present one), as decided on its port for `subject` under `version`.
#[inline(never)]
pub fn note_peer(subject: &Subject, sock: *const u8, socket: *const u8, version: u64, peer: &(u32, [u64; 2])) {
    ipc::note_decided(subject, sock, socket, version, *peer, DECIDED_ON_PORT);
}

/// `sock`'s peer as CONNECTED_SOCKETS keeps it (port 0: none), by BTF loads.
#[inline(always)]
fn peer_of(sock: *const u8, family: u16) -> (u32, [u64; 2]) {
    let port = u32::from(btf_load::<u16>(sock, offset!(sock_dport)));
    let address = match family {
        AF_INET => mapped_v4(btf_load::<u32>(sock, offset!(sock_daddr))),
        _ => {
            let at = offset!(sock_v6_daddr);
            [btf_load::<u64>(sock, at), btf_load::<u64>(sock, at + 8)]
        }
    };
    (port, address)
}

/// The peer a connect or send to sockaddr `address` (`length` bytes)
/// names, as CONNECTED_SOCKETS keeps it: the port in network order, the
/// address as IPv6 words (IPv4 v4-mapped). `on_inet`: the socket is
/// AF_INET, whose sends take an AF_UNSPEC address as AF_INET (a connect
/// takes it as a disconnect). Anything else is no peer (port 0).
#[inline(always)]
pub fn sockaddr_peer(address: *const u8, length: i32, on_inet: bool) -> (u32, [u64; 2]) {
    let port = read_kernel::<u16>(address, 2);
    match read_kernel::<u16>(address, 0) {
        Some(AF_INET) if length >= 8 => peer_words(port, v4_words(address, 4)),
        Some(AF_UNSPEC) if on_inet && length >= 8 => peer_words(port, v4_words(address, 4)),
        Some(AF_INET6) if length >= 24 => peer_words(port, read_kernel::<[u64; 2]>(address, 8)),
        _ => (0, [0, 0]),
    }
}

/// A port and address as CONNECTED_SOCKETS keeps them; unreadable is no peer.
#[inline(always)]
fn peer_words(port: Option<u16>, address: Option<[u64; 2]>) -> (u32, [u64; 2]) {
    match (port, address) {
        (Some(port), Some(address)) => (u32::from(port), address),
        _ => (0, [0, 0]),
    }
}

/// The IPv4 address at `at` in `base` as the words of its v4-mapped IPv6
/// address.
#[inline(always)]
fn v4_words(base: *const u8, at: u32) -> Option<[u64; 2]> {
    Some(mapped_v4(read_kernel::<u32>(base, at)?))
}

/// An IPv4 address (network order) as the words of its v4-mapped IPv6
/// address (`::ffff:a.b.c.d`, little-endian).
#[inline(always)]
fn mapped_v4(ip: u32) -> [u64; 2] {
    [0, 0xffff_0000 | (u64::from(ip) << 32)]
}

/// The port (host order) of a `sockaddr_in` or `sockaddr_in6` whose
/// address is the host's own (v4-mapped too), or IPv4 and sent `to_loopback`.
#[inline(always)]
pub fn local_port(address: *const u8, length: i32, on_inet: bool, to_loopback: bool) -> Option<u16> {
    let (port, peer) = sockaddr_peer(address, length, on_inet);
    // Port 0 reaches no listener (glibc's address sorting connects UDP there).
    (port != 0 && ((to_loopback && is_v4(peer)) || is_local(peer))).then(|| u16::from_be(port as u16))
}

/// Whether peer words are an IPv4 address (v4-mapped).
#[inline(always)]
fn is_v4([high, low]: [u64; 2]) -> bool {
    high == 0 && low & 0xffff_ffff == 0xffff_0000
}

/// The loopback device's index, the same in every network namespace.
const LOOPBACK_IFINDEX: i32 = 1;

/// Whether an index read is the loopback device's (unreadable counts as it).
#[inline(always)]
fn on_loopback(index: Option<i32>) -> bool {
    !matches!(index, Some(index) if index != LOOPBACK_IFINDEX)
}

/// Whether an IPv4 connect or send on `sock` (of `socket`, with `msg` for
/// a send) goes out through the loopback device whatever its address: the
/// socket is bound to it (SO_BINDTODEVICE, SO_BINDTOIFINDEX), or, for a
/// datagram socket, IP_UNICAST_IF names it or the send's IP_PKTINFO (an
/// IPv6 socket's IPV6_PKTINFO, for a v4-mapped address) does. An
/// unreadable `uc_index` or control message (helper reads) counts as
/// through it. `family` is the socket's. `socket` and `sock` (its `sk`,
/// not NULL) are BTF pointers, `msg` too if not NULL.
#[inline(always)]
pub fn through_loopback(sock: *const u8, socket: *const u8, msg: *const u8, family: u16) -> bool {
    if btf_load::<i32>(sock, offset!(sock_bound_dev_if)) == LOOPBACK_IFINDEX {
        return true;
    }
    // TCP (and SMC, over TCP) routes by the bound device only.
    if btf_load::<u16>(socket, offset!(socket_type)) == SOCK_STREAM || family == AF_SMC {
        return false;
    }
    // `inet_sock` is beyond a `struct sock` pointer's type: a helper read.
    on_loopback(read_kernel::<i32>(sock, offset!(inet_sock_uc_index)))
        || (!msg.is_null() && pktinfo_to_loopback(msg, family == AF_INET6))
}

/// Whether the route a connected socket `sock` keeps (`sk_dst_cache`, what
/// its sends without control messages reuse) goes out through the loopback
/// device: one looked up while IP_UNICAST_IF named it stays after the
/// option is cleared.
#[inline(always)]
fn kept_route_through_loopback(sock: *const u8) -> bool {
    // By BTF loads. The route is `__rcu`, which the verifier types as maybe
    // NULL; a device that reads NULL (a fault reads 0) counts as loopback,
    // as an unreadable index did, rather than index 0, not loopback.
    let route = btf_load::<u64>(sock, offset!(sock_sk_dst_cache)) as *const u8;
    if route.is_null() {
        return false;
    }
    let device = btf_load::<u64>(route, offset!(dst_entry_dev)) as *const u8;
    device.is_null() || btf_load::<i32>(device, offset!(net_device_ifindex)) == LOOPBACK_IFINDEX
}

/// Whether an address (IPv6 words, IPv4 v4-mapped) is the host's own: ::1
/// and :: (which the kernel makes ::1), 127/8 and 0.0.0.0 (v4-mapped), or
/// in LOCAL_ADDRESSES.
#[inline(always)]
fn is_local([high, low]: [u64; 2]) -> bool {
    let loopback = low == 1 << 56 || low == 0;
    let mapped = low & 0xff_ffff_ffff == 0x7f_ffff_0000 || low == 0xffff_0000;
    if high == 0 && (loopback || mapped) {
        return true;
    }
    // The words in memory order are the address's bytes.
    let ip: LocalAddress = unsafe { core::mem::transmute([high, low]) };
    LOCAL_ADDRESSES.get(&Key::new(HOST_PREFIX, ip)).is_some()
}

/// `struct cmsghdr`: its length (size_t), level and type (ints).
const CMSG_HEADER: u64 = 16;
const SOL_IP: u64 = 0;
const IP_PKTINFO: u64 = 8;
const SOL_IPV6: u64 = 41;
const IPV6_PKTINFO: u64 = 50;
/// Most control messages looked at; a send with more counts as through
/// loopback. The kernel copies at most `optmem_max` bytes of them (20 KiB
/// by default before 6.9, 128 KiB since: 1,280 and 8,192 headers).
const MOST_CONTROL_MESSAGES: u32 = 8192;

/// Whether a send's control messages (the kernel's copy) choose the
/// loopback device: an IP_PKTINFO whose `ipi_ifindex` is it, or an
/// IPV6_PKTINFO whose `ipi6_ifindex` is (the kernel honours both for an
/// IPv4 destination). Walked as the kernel walks them; what cannot be read
/// or walked whole counts as choosing it.
#[inline(always)]
fn pktinfo_to_loopback(msg: *const u8, on_inet6: bool) -> bool {
    let length = btf_load::<u64>(msg, offset!(msghdr_msg_controllen));
    if length < CMSG_HEADER {
        return false;
    }
    // Read by the helper, a number to the verifier: loaded by BTF, 7.2
    // types it as memory, and its walk below then ties the verifier's
    // bound on the messages to each offset, past its jump budget.
    let Some(control) = read_kernel::<u64>(msg, offset!(msghdr_msg_control)) else {
        return true;
    };
    let (mut at, mut walked, mut chosen) = (0u64, false, false);
    repeat(MOST_CONTROL_MESSAGES, |_| {
        if at > length || length - at < CMSG_HEADER {
            walked = true;
            return false;
        }
        let header = (control + at) as *const u8;
        let Some([len, level_and_type]) = read_kernel::<[u64; 2]>(header, 0) else {
            chosen = true;
            return false;
        };
        // One the kernel would refuse ends the walk (and fails the send).
        if len < CMSG_HEADER || len > length - at {
            walked = true;
            return false;
        }
        // As ip_cmsg_send takes them: IP_PKTINFO of exactly its size,
        // IPV6_PKTINFO at least its size and on an IPv6 socket only (other
        // lengths fail the send).
        let ifindex_at = match (level_and_type & 0xffff_ffff, level_and_type >> 32) {
            (SOL_IP, IP_PKTINFO) if len == CMSG_HEADER + 12 => 16,
            (SOL_IPV6, IPV6_PKTINFO) if on_inet6 && len >= CMSG_HEADER + 20 => 32,
            _ => 0,
        };
        if ifindex_at != 0
            && !matches!(read_kernel::<i32>(header, ifindex_at), Some(index) if index != LOOPBACK_IFINDEX)
        {
            chosen = true;
            return false;
        }
        // CMSG_ALIGN: the next header starts 8-byte aligned.
        at += (len + 7) & !7;
        true
    });
    chosen || !walked
}
