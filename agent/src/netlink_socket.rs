//! The daemon's own netlink requests to the kernel (generic netlink's
//! controller, rtnetlink's route dumps): a socket, one message sent, what
//! comes back, and the attributes in it.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// `len` rounded up to netlink's 4-byte alignment (NLMSG_ALIGN, NLA_ALIGN).
pub(crate) fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// A netlink socket of `protocol` (close-on-exec, plus `flags`: e.g.
/// SOCK_NONBLOCK).
pub(crate) fn open(protocol: libc::c_int, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags, protocol) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sends `message` whole to the kernel.
pub(crate) fn send(socket: &OwnedFd, message: &[u8]) -> io::Result<()> {
    // SAFETY: the buffer outlives the call; the kernel is the peer (address 0).
    let sent = unsafe { libc::send(socket.as_raw_fd(), message.as_ptr().cast(), message.len(), 0) };
    if sent != message.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One read into `buffer`: how many bytes came.
pub(crate) fn recv(socket: &OwnedFd, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: writes at most buffer.len() bytes into it.
    let got = unsafe { libc::recv(socket.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(got as usize)
}

/// The attributes of `payload` from byte `start` on, as (type without its
/// nested and byte-order flags, value); a malformed one ends them.
pub(crate) fn attributes(payload: &[u8], start: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = start;
    std::iter::from_fn(move || {
        let header = payload.get(at..at + 4)?;
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let kind = u16::from_ne_bytes([header[2], header[3]]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = payload.get(at + 4..at + len)?;
        at += align4(len);
        Some((kind, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_aligned_and_a_malformed_one_ends_them() {
        let mut payload = vec![0u8; 2];
        payload.extend_from_slice(&[5, 0, 0x01, 0x80, 7, 0, 0, 0]);
        payload.extend_from_slice(&[8, 0, 2, 0, 1, 2, 3, 4]);
        payload.extend_from_slice(&[2, 0, 3, 0]);
        let read: Vec<_> = attributes(&payload, 2).collect();
        assert_eq!(read, [(1, &[7u8][..]), (2, &[1, 2, 3, 4][..])]);
        assert_eq!(align4(5), 8);
    }
}
