//! Generic netlink families: a family (wireguard, ethtool, ...) gets its
//! message type when its module registers it, so a policy naming one is
//! resolved on this host when it is applied, like a namespace name, and a
//! record names it by asking the controller again. Commands are numbers
//! within a family; a few are known by name.

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

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Commands Warrant knows by name, per family, as policy and records spell
/// them (`generic wireguard set_device`); any command is `cmd N`.
const COMMANDS: &[(&str, &[(&str, u8)])] = &[
    // WG_CMD_GET_DEVICE is what `wg show` sends (a dump, decided like any
    // command: it hands out the private key).
    ("wireguard", &[("get_device", 0), ("set_device", 1)]),
];

/// The commands Warrant knows by name for `family`.
fn named_commands(family: &str) -> &'static [(&'static str, u8)] {
    COMMANDS.iter().find(|(f, _)| *f == family).map_or(&[], |(_, commands)| commands)
}

/// Command `name` of generic family `family`, if Warrant knows it by name.
pub fn command_by_name(family: &str, name: &str) -> Option<u8> {
    named_commands(family).iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// A `netlink.other` target on generic family `id` as policy text:
/// `generic wireguard set_device`, `generic nlctrl cmd 1`, or, for a family
/// no longer registered, `generic type 30 cmd 1` (not a target: see
/// `Target::parse`).
pub fn render(id: u16, command: Option<u8>) -> String {
    let family = family_name(id);
    let mut text = match &family {
        Some(name) => format!("generic {name}"),
        None => format!("generic type {id}"),
    };
    if let Some(command) = command {
        let named = family
            .as_deref()
            .and_then(|family| named_commands(family).iter().find(|(_, c)| *c == command).map(|(n, _)| *n));
        match named {
            Some(name) => text.push_str(&format!(" {name}")),
            None => text.push_str(&format!(" cmd {command}")),
        }
    }
    text
}

/// A CTRL_CMD_GETFAMILY request carrying one attribute.
fn request(attr_type: u16, value: &[u8]) -> Vec<u8> {
    let attr_len = 4 + value.len();
    let total = 16 + 4 + align4(attr_len);
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&(total as u32).to_ne_bytes());
    msg.extend_from_slice(&GENL_ID_CTRL.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[CTRL_CMD_GETFAMILY, 1, 0, 0]);
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&attr_type.to_ne_bytes());
    msg.extend_from_slice(value);
    msg.resize(total, 0);
    msg
}

/// The value of attribute `wanted` in a CTRL_CMD_GETFAMILY reply, if the
/// reply is not an error and holds one.
fn attribute_in(reply: &[u8], wanted: u16) -> Option<&[u8]> {
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
        if u16_at(at + 2)? & 0x3fff == wanted {
            return reply.get(at + 4..at + attr_len);
        }
        at += align4(attr_len);
    }
    None
}

/// The controller's reply to `message`, if it answered.
fn ask(message: &[u8]) -> Option<Vec<u8>> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_GENERIC) };
    if raw < 0 {
        return None;
    }
    // SAFETY: a new fd nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
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
    reply.truncate(got as usize);
    Some(reply)
}

/// The message type of generic netlink family `name` on this host, if it
/// is registered (its module loaded).
pub fn family_id(name: &str) -> Option<u16> {
    if name.is_empty() || name.len() > FAMILY_NAME_MAX || name.contains('\0') {
        return None;
    }
    let mut value = name.as_bytes().to_vec();
    value.push(0);
    let reply = ask(&request(CTRL_ATTR_FAMILY_NAME, &value))?;
    let id = attribute_in(&reply, CTRL_ATTR_FAMILY_ID)?;
    Some(u16::from_ne_bytes(id.get(..2)?.try_into().ok()?))
}

/// The name of the generic netlink family with message type `id`, if one
/// is registered now (ids are handed out again after a module goes).
pub fn family_name(id: u16) -> Option<String> {
    let reply = ask(&request(CTRL_ATTR_FAMILY_ID, &id.to_ne_bytes()))?;
    let name = attribute_in(&reply, CTRL_ATTR_FAMILY_NAME)?;
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    let name = std::str::from_utf8(&name[..end]).ok()?;
    // A name goes into records as is: keep it to what families are named.
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.').then(|| name.to_owned())
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
        assert_eq!(family_name(GENL_ID_CTRL).as_deref(), Some("nlctrl"));
        assert_eq!(family_name(0xfff0), None);
    }

    #[test]
    fn targets_name_the_family_and_its_command() {
        assert_eq!(render(GENL_ID_CTRL, None), "generic nlctrl");
        assert_eq!(render(GENL_ID_CTRL, Some(1)), "generic nlctrl cmd 1");
        assert_eq!(render(0xfff0, Some(0)), "generic type 65520 cmd 0");
        assert_eq!(command_by_name("wireguard", "set_device"), Some(1));
        assert_eq!(command_by_name("wireguard", "flush"), None);
        assert_eq!(command_by_name("nlctrl", "set_device"), None);
    }

    #[test]
    fn a_request_is_one_aligned_message() {
        let message = request(CTRL_ATTR_FAMILY_NAME, b"wireguard\0");
        assert_eq!(message.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes(message[..4].try_into().unwrap()) as usize, message.len());
        assert_eq!(&message[24..33], b"wireguard");
    }
}
