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
    maps::LOCAL_ADDRESSES,
    policy::{decide_with, read_kernel},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// A full address's prefix length in LOCAL_ADDRESSES.
const HOST_PREFIX: u32 = 128;

/// Decides a subject's connect or send to `address` (a kernel copy of
/// `length` bytes): `ipc.loopback` when it is the host's own, else 0.
#[inline(always)]
pub fn decide_connect(subject: &Subject, address: *const u8, length: i32) -> i32 {
    match local_port(address, length) {
        Some(port) => decide_with(subject, action::IPC_LOOPBACK, |key| {
            let object = (&raw mut key.object).cast::<u64>();
            unsafe { object.write_volatile(port as u64) };
        }),
        None => 0,
    }
}

/// The port of a `sockaddr_in` or `sockaddr_in6` whose address is the
/// host's own (v4-mapped too).
#[inline(always)]
fn local_port(address: *const u8, length: i32) -> Option<u16> {
    let family = read_kernel::<u16>(address, 0)?;
    let port = u16::from_be(read_kernel::<u16>(address, 2)?);
    // Port 0 reaches no listener (glibc's address sorting connects UDP there).
    if port == 0 {
        return None;
    }
    let ip: LocalAddress = match family {
        AF_INET if length >= 8 => {
            let ip = read_kernel::<[u8; 4]>(address, 4)?;
            // 127/8, or 0.0.0.0, which the kernel routes to loopback.
            if ip[0] == 127 || ip == [0; 4] {
                return Some(port);
            }
            v4_mapped(ip)
        }
        AF_INET6 if length >= 24 => {
            // sin6_addr at 8 (as little-endian words): ::1 and :: (which the
            // kernel makes ::1), ::ffff:127.x.y.z and ::ffff:0.0.0.0.
            let high = read_kernel::<u64>(address, 8)?;
            let low = read_kernel::<u64>(address, 16)?;
            let loopback = low == 1 << 56 || low == 0;
            let mapped = low & 0xff_ffff_ffff == 0x7f_ffff_0000 || low == 0xffff_0000;
            if high == 0 && (loopback || mapped) {
                return Some(port);
            }
            read_kernel::<LocalAddress>(address, 8)?
        }
        _ => return None,
    };
    LOCAL_ADDRESSES.get(&Key::new(HOST_PREFIX, ip)).map(|_| port)
}
