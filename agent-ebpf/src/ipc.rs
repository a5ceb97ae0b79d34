//! Unix sockets: the way to a root deputy. A subject's connect (stream,
//! seqpacket) or datagram send to a named unix socket is the action
//! `ipc.connect`, decided on the name the listener bound: a path, or
//! `@name` for an abstract socket. The name is the listener's, not the one
//! the subject dialled, so a hard link, symlink or bind mount of the
//! socket file leads to the same decision. Unnamed sockets (socketpair)
//! are not actions: both ends already belong to whoever made them.
//!
//! A connection is decided again at its first send by a subject that did
//! not make it under the policy in force: one made before its holder
//! became a subject (picked up running, or carried across a matched exec),
//! or handed over by another process.

use aya_ebpf::{
    helpers::generated::{bpf_get_socket_cookie, bpf_probe_read_kernel},
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{
    DECIDED_ON_PORT, NAME_LEN, SELF_TREE, SOCKET_NAME_CUT, SocketKey, SocketVerdict, Subject, TargetKey, action,
};

use crate::{
    files, local,
    maps::{CONNECTED_SOCKETS, UNIX_CALLERS, offset},
    policy::{btf_load, decide_with, read_kernel, version_in_force},
    selfprotect, subjects,
    uapi::{
        AF_INET, AF_INET6, AF_KEY, AF_PACKET, AF_SMC, AF_UNIX, AF_UNSPEC, AF_XDP, SOCK_RAW, SOCK_SEQPACKET, SOCK_STREAM,
    },
};

const EPERM: i32 = 1;
/// `sizeof(sa_family_t)`: `sun_path` follows it in `struct sockaddr_un`.
const SUN_PATH_AT: u32 = 2;
/// Most bytes of a name kept in a key's table (a path of 62 bytes and its
/// NUL); a longer name is marked in the last byte.
const NAME_MAX: u32 = NAME_LEN as u32 - 1;

#[lsm(hook = "unix_stream_connect")]
pub fn unix_stream_connect(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(3);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let other: *const u8 = ctx.arg(1);
    let version = version_in_force();
    let verdict = decide_connect(&subject, other);
    if verdict == 0 {
        let sock: *const u8 = ctx.arg(0);
        let socket = btf_load::<u64>(sock, offset!(sock_sk_socket)) as *const u8;
        note_decided(&subject, sock, socket, version, (0, [0, 0]), 0);
        // The listener's end of the connection: who made it, for the daemon.
        let accepted: *mut core::ffi::c_void = ctx.arg(2);
        let cookie = unsafe { bpf_get_socket_cookie(accepted) };
        let _ = UNIX_CALLERS.insert(&cookie, &subject.profile_id, 0);
    }
    verdict
}

#[lsm(hook = "unix_may_send")]
pub fn unix_may_send(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(2);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let other: *const u8 = ctx.arg(1);
    let sk = btf_load::<u64>(other, offset!(socket_sk)) as *const u8;
    if sk.is_null() {
        return -EPERM;
    }
    decide_connect(&subject, sk)
}

/// Decides `ipc.connect` on the name of the unix socket `other` (a
/// `struct sock`); unnamed sockets pass. A socket file of Warrant's own
/// (the control socket) is refused whatever the policy says: the daemon's
/// check of its caller's pid could be raced (a child connects and exits).
#[inline(always)]
fn decide_connect(subject: &Subject, other: *const u8) -> i32 {
    let Some(dentry) = read_kernel::<u64>(other, offset!(unix_sock_path_dentry)) else {
        return -EPERM;
    };
    let dentry = dentry as *const u8;
    // By its names too: the control socket a start over a full PROTECTED
    // bound has no entry.
    if !dentry.is_null()
        && let Some((_, SELF_TREE)) = files::protected_at(dentry)
    {
        return selfprotect::refuse(subject, action::SELF_FILES);
    }
    let Some(addr) = read_kernel::<u64>(other, offset!(unix_sock_addr)) else {
        return -EPERM;
    };
    if addr == 0 {
        return 0;
    }
    let addr = addr as *const u8;
    let Some(len) = read_kernel::<i32>(addr, offset!(unix_address_len)) else {
        return -EPERM;
    };
    let name_len = (len as u32).saturating_sub(SUN_PATH_AT);
    let name = unsafe { addr.add((offset!(unix_address_name) + SUN_PATH_AT) as usize) };
    decide_with(subject, action::IPC_CONNECT, |key| copy_name(key, name, name_len))
}

/// Writes the socket name at `name` (`len` bytes of `sun_path`) into the
/// key's table: an abstract name's leading NUL becomes `@`; a name longer
/// than NAME_MAX keeps its start and gets 0xff in the last byte, which no
/// policy name has.
#[inline(always)]
fn copy_name(key: &mut TargetKey, name: *const u8, len: u32) {
    let kept = if len > NAME_MAX { NAME_MAX } else { len };
    let table = (&raw mut key.table).cast::<u8>();
    // SAFETY: `kept` is at most NAME_MAX, inside `table`.
    unsafe {
        if kept > 0 && bpf_probe_read_kernel(table.cast(), kept, name.cast()) != 0 {
            table.write_volatile(0xff);
            return;
        }
        if kept > 0 && table.read_volatile() == 0 {
            table.write_volatile(b'@');
        }
        if len > NAME_MAX {
            table.add(NAME_LEN - 1).write_volatile(SOCKET_NAME_CUT);
        }
    }
}

/// A subject's send on a connected unix stream or seqpacket socket (which
/// `unix_may_send` does not see): decided as `ipc.connect` on the peer's
/// name, once per socket, profile and policy version. The subject's own
/// connect, allowed under the policy in force, counts as that decision.
/// `socket` is the hook's; `sock` its `sk`, not NULL.
#[inline(always)]
fn connected_send(subject: &Subject, socket: *const u8, sock: *const u8) -> i32 {
    let kind = btf_load::<u16>(socket, offset!(socket_type));
    if kind != SOCK_STREAM && kind != SOCK_SEQPACKET {
        return 0;
    }
    if btf_load::<u16>(sock, offset!(sock_family)) != AF_UNIX {
        return 0;
    }
    let peer = read_kernel::<u64>(sock, offset!(unix_sock_peer)).unwrap_or(0) as *const u8;
    if peer.is_null() {
        // Not connected: the kernel refuses the send itself.
        return 0;
    }
    let Some(key) = socket_key(sock, socket) else {
        return -EPERM;
    };
    if let Some(decided) = unsafe { CONNECTED_SOCKETS.get(&key) }
        && decided.profile_id == subject.profile_id
        && decided.policy_version == version_in_force()
    {
        return 0;
    }
    // The peer is the listener's side of the connection: it carries the
    // listener's name and socket file.
    let version = version_in_force();
    let verdict = decide_connect(subject, peer);
    if verdict == 0 {
        note_decided(subject, sock, socket, version, (0, [0, 0]), 0);
    }
    verdict
}

/// Records that `sock` (whose `struct socket` is `socket`) may send for
/// `subject` under policy `version` (read before the decision: a policy
/// switched in between decides it again), to peer `port` and `peer` (see
/// `SocketVerdict`), `decided` as there. A full map evicts its oldest entry.
#[inline(always)]
pub fn note_decided(
    subject: &Subject,
    sock: *const u8,
    socket: *const u8,
    version: u64,
    (port, peer): (u32, [u64; 2]),
    decided: u16,
) {
    if let Some(key) = socket_key(sock, socket) {
        let decided =
            SocketVerdict { policy_version: version, profile_id: subject.profile_id, port: port as u16, decided, peer };
        let _ = CONNECTED_SOCKETS.insert(&key, &decided, 0);
    }
}

/// `sock`'s key: its address and its socket inode's number. `socket` is a
/// BTF pointer (a hook's argument or loaded from one): a process's socket's
/// inode is its file's, reached by BTF loads; a kernel socket
/// (`sock_create_kern`: an SMB or NFS client's, sending from the calling
/// process) has no file, and its inode, which follows the `struct socket`
/// in `struct socket_alloc`, beyond the type, is read by the helper.
#[inline(always)]
pub fn socket_key(sock: *const u8, socket: *const u8) -> Option<SocketKey> {
    if socket.is_null() {
        return None;
    }
    let file = btf_load::<u64>(socket, offset!(socket_file)) as *const u8;
    let ino = if file.is_null() {
        let inode = unsafe { socket.add(offset!(socket_alloc_vfs_inode) as usize) };
        read_kernel::<u64>(inode, offset!(inode_i_ino))?
    } else {
        // Pointers the verifier does not trust: a NULL one reads 0.
        let inode = btf_load::<u64>(file, offset!(file_f_inode)) as *const u8;
        btf_load::<u64>(inode, offset!(inode_i_ino))
    };
    Some(SocketKey { sock: sock as u64, ino })
}

/// `socket_connect(sock, address, addrlen)`: a subject's connect to one of
/// the host's own addresses is `ipc.loopback` on the port (see [`local`]).
/// `address` is the kernel's copy.
#[lsm(hook = "socket_connect")]
pub fn socket_connect(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(3);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let address: *const u8 = ctx.arg(1);
    let length: i32 = ctx.arg(2);
    let version = version_in_force();
    let socket: *const u8 = ctx.arg(0);
    // Loaded by BTF: NULL only once the socket is released, which its
    // owner's reference (the file, or a kernel owner's) prevents. Checked:
    // from 6.10 the verifier types `sk` as maybe NULL; refused if it is.
    let sock = btf_load::<u64>(socket, offset!(socket_sk)) as *const u8;
    if sock.is_null() {
        return -EPERM;
    }
    // Whatever the socket's family: SMC connects a TCP socket of its own,
    // which no hook sees, to the address given here.
    let family = btf_load::<u16>(sock, offset!(sock_family));
    let routed = matches!(family, AF_INET | AF_INET6 | AF_SMC | 0);
    let to_loopback = routed && local::through_loopback(sock, socket, core::ptr::null(), family);
    let port = local::local_port(address, length, false, to_loopback);
    let verdict = port.map_or(0, |port| local::decide_port(&subject, port));
    // The peer it connects to is decided: its sends are not, again.
    if verdict == 0 && matches!(family, AF_INET | AF_INET6) {
        let decided = if port.is_some() { DECIDED_ON_PORT } else { 0 };
        note_decided(&subject, sock, socket, version, local::sockaddr_peer(address, length, false), decided);
    }
    verdict
}

/// `socket_sendmsg(sock, msg, size)`: a send with an address (UDP's
/// `sendto`, TCP Fast Open's `sendto(MSG_FASTOPEN)`, which connects without
/// `socket_connect`) to one of the host's own addresses is `ipc.loopback`
/// too; a send
/// on a connected unix stream or seqpacket socket, with an address or
/// without, is decided on its peer once (see [`connected_send`]); a send on
/// a PF_KEY socket is `net.xfrm.other`, and one on a raw IP, packet or XDP
/// socket `net.raw`.
#[lsm(hook = "socket_sendmsg")]
pub fn socket_sendmsg(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(3);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    // Whatever address comes with it: a connected unix stream socket
    // ignores one, and seqpacket drops it (without `unix_may_send`).
    let socket: *const u8 = ctx.arg(0);
    // As in `socket_connect`: a socket in use has its `sk`.
    let sock = btf_load::<u64>(socket, offset!(socket_sk)) as *const u8;
    if sock.is_null() {
        return -EPERM;
    }
    let verdict = connected_send(&subject, socket, sock);
    if verdict != 0 {
        return verdict;
    }
    // PF_KEY, IPsec's older interface: flushes and adds states and policies
    // as xfrm netlink does. Every send is decided, its reads (dumps) too.
    let family = btf_load::<u16>(sock, offset!(sock_family));
    if family == AF_KEY {
        return crate::policy::decide_action(&subject, action::NET_XFRM_OTHER, 0, 0, [0, 0]);
    }
    // Packets the subject made itself: `net.raw`, whatever the address.
    let inet = matches!(family, AF_INET | AF_INET6);
    let kind = btf_load::<u16>(socket, offset!(socket_type));
    if (inet && kind == SOCK_RAW) || family == AF_PACKET || family == AF_XDP {
        return crate::policy::decide_action(&subject, action::NET_RAW, 0, 0, [0, 0]);
    }
    let msg: *const u8 = ctx.arg(1);
    let address = btf_load::<u64>(msg, offset!(msghdr_msg_name)) as *const u8;
    // To the peer: a stream socket's always (an address given is ignored),
    // a datagram socket's when it names none (an IPv6 one also when it names
    // AF_UNSPEC, which it takes as none).
    let to_peer = kind == SOCK_STREAM
        || address.is_null()
        || (family == AF_INET6 && read_kernel::<u16>(address, 0) == Some(AF_UNSPEC));
    // (Family 0, which no socket has, is taken as one that could be IPv4.)
    let routed = inet || family == AF_SMC || family == 0;
    let to_loopback = routed && local::through_loopback(sock, socket, msg, family);
    if inet && to_peer {
        // Read before the decision: a policy switched in between decides it again.
        let version = version_in_force();
        // The peer decided on is the one noted: another thread's connect
        // may change the socket's meanwhile.
        let mut send = local::SendPeer { family, to_loopback, peer: (0, [0, 0]) };
        let port = local::peer_to_decide(&subject, sock, socket, &mut send);
        if port != 0 {
            let verdict = local::decide_port(&subject, port);
            if verdict != 0 {
                return verdict;
            }
            local::note_peer(&subject, sock, socket, version, &send.peer);
        }
    }
    if address.is_null() {
        return 0;
    }
    let length = btf_load::<i32>(msg, offset!(msghdr_msg_namelen));
    local::decide(&subject, address, length, family == AF_INET, to_loopback)
}
