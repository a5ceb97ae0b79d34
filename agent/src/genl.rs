//! Generic netlink families: a family (wireguard, ethtool, ...) gets its
//! message type when its module registers it, so a policy naming one is
//! resolved on this host when it is applied, like a namespace name, and a
//! record names it by asking the controller again. Commands are numbers
//! within a family; a few are known by name.

use crate::netlink_socket::{self, align4};

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
    let len = u32::from_ne_bytes(reply.get(..4)?.try_into().ok()?) as usize;
    let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if kind == NLMSG_ERROR {
        return None;
    }
    // After the nlmsghdr and the genlmsghdr.
    netlink_socket::attributes(reply.get(..len)?, 16 + 4).find(|(kind, _)| *kind == wanted).map(|(_, value)| value)
}

/// The controller's reply to `message`, if it answered.
fn ask(message: &[u8]) -> Option<Vec<u8>> {
    let socket = netlink_socket::open(NETLINK_GENERIC, 0).ok()?;
    netlink_socket::send(&socket, message).ok()?;
    let mut reply = vec![0u8; 8192];
    let got = netlink_socket::recv(&socket, &mut reply).ok().filter(|&got| got > 0)?;
    reply.truncate(got);
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
