//! Generic netlink family ids: a family (wireguard, ethtool, ...) gets its
//! message type when its module registers it, so a policy naming one is
//! resolved on this host when it is applied, like a namespace name.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

const NETLINK_GENERIC: libc::c_int = 16;
/// The controller family's fixed id.
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
/// Longest family name the kernel takes (GENL_NAMSIZ less its NUL).
const FAMILY_NAME_MAX: usize = 15;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The CTRL_CMD_GETFAMILY request for `name`.
fn request(name: &str) -> Vec<u8> {
    let attr_len = 4 + name.len() + 1;
    let total = 16 + 4 + align4(attr_len);
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&(total as u32).to_ne_bytes());
    msg.extend_from_slice(&GENL_ID_CTRL.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[CTRL_CMD_GETFAMILY, 1, 0, 0]);
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&CTRL_ATTR_FAMILY_NAME.to_ne_bytes());
    msg.extend_from_slice(name.as_bytes());
    msg.resize(total, 0);
    msg
}

/// The family id in a CTRL_CMD_GETFAMILY reply, if it holds one.
fn family_id_in(reply: &[u8]) -> Option<u16> {
    let u16_at = |at: usize| reply.get(at..at + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let len = u32::from_ne_bytes(reply.get(..4)?.try_into().ok()?) as usize;
    if u16_at(4)? == NLMSG_ERROR || len > reply.len() {
        return None;
    }
    let mut at = 16 + 4;
    while at + 4 <= len {
        let attr_len = u16_at(at)? as usize;
        if attr_len < 4 {
            return None;
        }
        if u16_at(at + 2)? & 0x3fff == CTRL_ATTR_FAMILY_ID {
            return u16_at(at + 4);
        }
        at += align4(attr_len);
    }
    None
}

/// The message type of generic netlink family `name` on this host, if it
/// is registered (its module loaded).
pub fn family_id(name: &str) -> Option<u16> {
    if name.is_empty() || name.len() > FAMILY_NAME_MAX || name.contains('\0') {
        return None;
    }
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_GENERIC) };
    if raw < 0 {
        return None;
    }
    // SAFETY: a new fd nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let message = request(name);
    // SAFETY: the buffer outlives the call; the kernel is the peer (address 0).
    let sent = unsafe { libc::send(socket.as_raw_fd(), message.as_ptr().cast(), message.len(), 0) };
    if sent != message.len() as isize {
        return None;
    }
    let mut reply = vec![0u8; 8192];
    // SAFETY: writes at most reply.len() bytes into it.
    let got = unsafe { libc::recv(socket.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if got <= 0 {
        return None;
    }
    family_id_in(&reply[..got as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_names_its_own_family() {
        // nlctrl is always registered, with the controller's fixed id.
        assert_eq!(family_id("nlctrl"), Some(GENL_ID_CTRL));
        assert_eq!(family_id("no-such-family"), None);
        assert_eq!(family_id(""), None);
    }

    #[test]
    fn a_request_is_one_aligned_message() {
        let message = request("wireguard");
        assert_eq!(message.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes(message[..4].try_into().unwrap()) as usize, message.len());
        assert_eq!(&message[24..33], b"wireguard");
    }
}
