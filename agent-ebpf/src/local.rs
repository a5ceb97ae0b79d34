//! The host itself as a destination: a subject's connect or addressed send
//! to one of the host's own addresses reaches whatever root service listens
//! there, so it is the action `ipc.loopback`, decided on the port (see
//! `warrant_common::action::IPC_LOOPBACK`). Loopback (127/8, ::1 and the
//! unspecified addresses, which the kernel routes to it) is recognised
//! here; every other address of the host (an interface's, a broadcast
//! address, a multicast group a local socket may hear) is looked up in
//! LOCAL_ADDRESSES, which the daemon keeps from the local routing table.

use aya_ebpf::maps::lpm_trie::Key;
use warrant_common::{LocalAddress, Subject, action, v4_mapped};

use crate::{
    ipc,
    maps::{CONNECTED_SOCKETS, LOCAL_ADDRESSES, kernel_offsets},
    policy::{decide_with, read_kernel, version_in_force},
};

const AF_UNSPEC: u16 = 0;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
/// A full address's prefix length in LOCAL_ADDRESSES.
const HOST_PREFIX: u32 = 128;

/// Decides a subject's connect or send to `address` (a kernel copy of
/// `length` bytes): `ipc.loopback` when it is the host's own, else 0.
/// `on_inet`: the socket is AF_INET, whose sends take an AF_UNSPEC address
/// as AF_INET (a connect takes it as a disconnect).
#[inline(always)]
pub fn decide(subject: &Subject, address: *const u8, length: i32, on_inet: bool) -> i32 {
    match local_port(address, length, on_inet) {
        Some(port) => decide_port(subject, port),
        None => 0,
    }
}

#[inline(always)]
fn decide_port(subject: &Subject, port: u16) -> i32 {
    decide_with(subject, action::IPC_LOOPBACK, |key| {
        let object = (&raw mut key.object).cast::<u64>();
        unsafe { object.write_volatile(port as u64) };
    })
}

/// A subject's send on an IPv4 or IPv6 socket `sock` (of `socket`) that
/// goes to its peer (a TCP connection whatever the address given, a
/// connected datagram socket sending without one): decided as
/// `ipc.loopback` when the peer is the host's own, once per socket,
/// profile and policy version (CONNECTED_SOCKETS). The subject's own
/// connect counts as that decision; a connection made before its holder
/// became a subject, or handed over, is decided here.
#[inline(never)]
pub fn decide_peer(subject: &Subject, sock: *const u8, socket: *const u8, family: u16) -> i32 {
    let offsets = kernel_offsets();
    let port = u16::from_be(read_kernel::<u16>(sock, offsets.sock_dport).unwrap_or(0));
    // No peer (not connected yet: TCP Fast Open's first send).
    if port == 0 {
        return 0;
    }
    let Some(key) = ipc::socket_key(sock, socket) else {
        return 0;
    };
    let version = version_in_force();
    if let Some(decided) = unsafe { CONNECTED_SOCKETS.get(&key) }
        && decided.profile_id == subject.profile_id
        && decided.policy_version == version
    {
        return 0;
    }
    let local = match family {
        AF_INET => is_local_v4(sock, offsets.sock_daddr),
        _ => is_local_v6(sock, offsets.sock_v6_daddr),
    };
    let verdict = if local { decide_port(subject, port) } else { 0 };
    if verdict == 0 {
        ipc::note_decided(subject, sock, socket, version);
    }
    verdict
}

/// The port of a `sockaddr_in` or `sockaddr_in6` whose address is the
/// host's own (v4-mapped too).
#[inline(always)]
fn local_port(address: *const u8, length: i32, on_inet: bool) -> Option<u16> {
    let family = match read_kernel::<u16>(address, 0)? {
        AF_UNSPEC if on_inet => AF_INET,
        family => family,
    };
    let port = u16::from_be(read_kernel::<u16>(address, 2)?);
    // Port 0 reaches no listener (glibc's address sorting connects UDP there).
    if port == 0 {
        return None;
    }
    let local = match family {
        AF_INET if length >= 8 => is_local_v4(address, 4),
        AF_INET6 if length >= 24 => is_local_v6(address, 8),
        _ => false,
    };
    local.then_some(port)
}

/// Whether the IPv4 address at `at` in `base` is the host's own: 127/8,
/// 0.0.0.0 (which the kernel routes to loopback), or in LOCAL_ADDRESSES.
#[inline(always)]
fn is_local_v4(base: *const u8, at: u32) -> bool {
    let Some(ip) = read_kernel::<[u8; 4]>(base, at) else {
        return false;
    };
    ip[0] == 127 || ip == [0; 4] || LOCAL_ADDRESSES.get(&Key::new(HOST_PREFIX, v4_mapped(ip))).is_some()
}

/// Whether the IPv6 address at `at` in `base` is the host's own: ::1 and ::
/// (which the kernel makes ::1), ::ffff:127.x.y.z and ::ffff:0.0.0.0, or in
/// LOCAL_ADDRESSES (v4-mapped ones as their IPv4 address).
#[inline(always)]
fn is_local_v6(base: *const u8, at: u32) -> bool {
    // As little-endian words.
    let high = read_kernel::<u64>(base, at).unwrap_or(u64::MAX);
    let low = read_kernel::<u64>(base, at + 8).unwrap_or(u64::MAX);
    let loopback = low == 1 << 56 || low == 0;
    let mapped = low & 0xff_ffff_ffff == 0x7f_ffff_0000 || low == 0xffff_0000;
    if high == 0 && (loopback || mapped) {
        return true;
    }
    read_kernel::<LocalAddress>(base, at).is_some_and(|ip| LOCAL_ADDRESSES.get(&Key::new(HOST_PREFIX, ip)).is_some())
}
