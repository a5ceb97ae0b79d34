//! A rule's target: parsed from policy text per the action's target kind,
//! packed into the kernel's key, and rendered back for records.

use thiserror::Error;
use warrant_common::{
    FAMILY_ANY, FileKey, NAME_LEN, TargetKey,
    action::{self, TargetKind},
    netlink,
    netlink_protocols::PROTOCOL_NAMES,
};

use super::names::{
    FAMILIES, HostNames, NETNS_RUN_DIR, Named, family_name, host_netns, made_by_subject_error, resolve_netns_word,
    tree_of,
};
use crate::{net_target, protect};

/// A parsed target. What it may be depends on the action's
/// [`TargetKind`]; `None` parts are wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `FAMILY [TABLE [OBJECT]]` (nftables), or `FAMILY` alone (legacy x_tables).
    Firewall { family: Option<u8>, table: Option<String>, object: Option<String> },
    /// An ipset set by name (`None`: any), and for rename and swap the other
    /// set (`None`: any).
    IpSet { set: Option<String>, other: Option<String> },
    /// A network namespace by nsfs inode number (`net:[4026532001]`, `host`
    /// for the host's own, or a name under /run/netns, resolved when the
    /// policy is applied); `None`: any.
    Namespace(Option<u64>),
    /// A protected tree (`None`: any) and, within it, one file (`None`:
    /// the whole tree).
    /// A protected tree (`None`: `*`), and in it one file (`inode`), or a
    /// new `name` in the directory `inode` (its device with `NAME_KEY`).
    File { tree: Option<u32>, inode: Option<FileKey>, name: Option<String> },
    /// A netlink protocol by number (`route`, `generic`, ... or a number),
    /// a message type (0: any; for `generic`, a family's id) and, for a
    /// generic family, a command (`None`: any); `None`: any protocol.
    Protocol(Option<(u8, u16, Option<u8>)>),
    /// A unix socket by the name its listener bound (`/run/x.sock`,
    /// `@abstract`); `None`: any.
    Socket(Option<String>),
    /// A loopback port; `None`: any.
    Port(Option<u16>),
    /// A network interface by name, in a namespace (nsfs inode: the host's
    /// for a bare name); `None`: any.
    Interface(Option<(String, u64)>),
    /// A route by table and prefix; `None`: any.
    Route(Option<net_target::Route>),
    /// Actions without a target: only `*`.
    Nothing,
}

/// Why a target does not parse.
#[derive(Debug, Error)]
pub enum TargetError {
    #[error("{0}")]
    Invalid(String),
    /// Well-formed, but names a namespace or file this host does not have.
    #[error("{0}")]
    NotOnThisHost(String),
}

impl Target {
    /// Parses `text` as a target of an action of `kind`: namespace names
    /// and file paths are looked up in `names`, files must be under one of
    /// the `protect` trees. A tree's own path names the whole tree.
    pub fn parse(kind: TargetKind, text: &str, protect: &[String], names: &dyn HostNames) -> Result<Self, TargetError> {
        let text = text.trim();
        match kind {
            TargetKind::Firewall | TargetKind::Family => Self::parse_firewall(kind, text).map_err(TargetError::Invalid),
            TargetKind::IpSet => {
                let parts: Vec<&str> = text.split_whitespace().collect();
                let name = |i: usize| parts.get(i).filter(|p| **p != "*").map(|p| (*p).to_owned());
                let (set, other) = (name(0), name(1));
                if parts.is_empty() || parts.len() > 2 || (set.is_none() && other.is_some()) {
                    return Err(TargetError::Invalid(format!("target {text:?} must be \"SET\", \"SET OTHER\" or \"*\"")));
                }
                if [&set, &other].into_iter().flatten().any(|n| n.len() > 31) {
                    return Err(TargetError::Invalid(format!("target {text:?}: ipset names are at most 31 bytes")));
                }
                Ok(Target::IpSet { set, other })
            }
            TargetKind::File if text == "*" => Ok(Target::File { tree: None, inode: None, name: None }),
            TargetKind::File => {
                let tree = tree_of(protect, text).ok_or_else(|| {
                    TargetError::Invalid(format!("target {text:?} is not under any protected tree (protect = {protect:?})"))
                })?;
                let inode = if text == tree {
                    None
                } else {
                    if let Some(profile) = names.made_by_subject(Named::File(text)) {
                        return Err(made_by_subject_error(text, "the file", &profile));
                    }
                    Some(names.file(text).ok_or_else(|| {
                        TargetError::NotOnThisHost(format!("target {text:?}: no such file on this host"))
                    })?)
                };
                Ok(Target::File { tree: Some(protect::tree_id(tree)), inode, name: None })
            }
            TargetKind::Namespace if text == "*" => Ok(Target::Namespace(None)),
            TargetKind::Namespace => resolve_netns_word(text, text, "the name", names)?
                .map(|inode| Target::Namespace(Some(inode)))
                .ok_or_else(|| {
                    TargetError::NotOnThisHost(format!(
                        "target {text:?}: no network namespace by that name in {NETNS_RUN_DIR} (use a name, net:[INODE] or *)"
                    ))
                }),
            TargetKind::Protocol if text == "*" => Ok(Target::Protocol(None)),
            TargetKind::Protocol => {
                let words: Vec<&str> = text.split_whitespace().collect();
                let protocol = words.first().and_then(|w| parse_protocol(w)).ok_or_else(|| {
                    let names: Vec<&str> = PROTOCOL_NAMES.iter().map(|(_, n)| *n).collect();
                    TargetError::Invalid(format!(
                        "target {text:?}: not a netlink protocol (a number below 32, or one of {}, or *)",
                        names.join(", ")
                    ))
                })?;
                let generic = protocol == GENERIC_PROTOCOL;
                let family = |family: &str| {
                    names.genl_family(family).ok_or_else(|| {
                        TargetError::NotOnThisHost(format!(
                            "target {text:?}: no generic netlink family {family:?} is registered here (is its module loaded?)"
                        ))
                    })
                };
                let (msg_type, command) = match words[1..] {
                    [] => (0, None),
                    ["type", number] if !generic => (
                        number.parse::<u16>().ok().filter(|n| *n != 0).ok_or_else(|| {
                            TargetError::Invalid(format!("target {text:?}: the message type must be a number from 1"))
                        })?,
                        None,
                    ),
                    // What a record shows for a family id no longer registered. Not a
                    // target: the kernel hands a freed id to the next family
                    // registered, whatever it is.
                    ["type", ..] if generic => {
                        return Err(TargetError::Invalid(format!(
                            "target {text:?}: a generic netlink family is named, not numbered (its id goes to the next \
                             family registered once it is gone): name the family, generic FAMILY cmd N, once its \
                             module is loaded"
                        )));
                    }
                    [name] if generic => (family(name)?, None),
                    [name, "cmd", number] if generic => {
                        let command = number.parse::<u8>().map_err(|_| {
                            TargetError::Invalid(format!("target {text:?}: the command must be a number from 0 to 255"))
                        })?;
                        (family(name)?, Some(command))
                    }
                    [name, command] if generic => {
                        let command = crate::genl::command_by_name(name, command).ok_or_else(|| {
                            TargetError::Invalid(format!(
                                "target {text:?}: {command:?} is not a command Warrant knows by name for family {name:?} (write `cmd N`)"
                            ))
                        })?;
                        (family(name)?, Some(command))
                    }
                    _ => {
                        return Err(TargetError::Invalid(format!(
                            "target {text:?} must be PROTOCOL, PROTOCOL type N, generic FAMILY, generic FAMILY COMMAND \
                             (e.g. generic wireguard set_device), generic FAMILY cmd N, or *"
                        )));
                    }
                };
                Ok(Target::Protocol(Some((protocol, msg_type, command))))
            }
            TargetKind::Port if text == "*" => Ok(Target::Port(None)),
            TargetKind::Port => text.parse::<u16>().ok().filter(|p| *p != 0).map(|p| Target::Port(Some(p))).ok_or_else(|| {
                TargetError::Invalid(format!("target {text:?} must be a port (1-65535) or *"))
            }),
            TargetKind::Socket if text == "*" => Ok(Target::Socket(None)),
            TargetKind::Socket => {
                if !(text.starts_with('/') || text.starts_with('@')) || text.len() > NAME_LEN - 2 {
                    return Err(TargetError::Invalid(format!(
                        "target {text:?} must be a socket path, @name for an abstract socket, or *, of at most {} bytes",
                        NAME_LEN - 2
                    )));
                }
                Ok(Target::Socket(Some(text.to_owned())))
            }
            TargetKind::Interface if text == "*" => Ok(Target::Interface(None)),
            TargetKind::Interface => net_target::parse_interface(text, names),
            TargetKind::Route if text == "*" => Ok(Target::Route(None)),
            TargetKind::Route => net_target::parse_route(text, names),
            TargetKind::None | TargetKind::Inode if text == "*" => Ok(Target::Nothing),
            TargetKind::None | TargetKind::Inode => {
                Err(TargetError::Invalid(format!("target {text:?}: this action has no target; write \"*\"")))
            }
        }
    }

    fn parse_firewall(kind: TargetKind, text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(format!("target {text:?} must be \"FAMILY TABLE OBJECT\" (e.g. \"inet filter input\")"));
        }
        let part = |i: usize| parts.get(i).copied().filter(|p| *p != "*");
        let family = match part(0) {
            None => None,
            Some(name) => Some(FAMILIES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| {
                format!("target {text:?}: unknown family {name:?} (inet, ip, ip6, arp, bridge, netdev or *)")
            })?),
        };
        let table = part(1).map(str::to_owned);
        let object = part(2).map(str::to_owned);
        if kind == TargetKind::Family && parts.len() > 1 {
            return Err(format!("target {text:?} must be a family alone (ip, ip6, arp, bridge or *)"));
        }
        if (family.is_none() && (table.is_some() || object.is_some())) || (table.is_none() && object.is_some()) {
            return Err(format!(
                "target {text:?}: `*` may only stand for the trailing parts (\"inet filter *\", \"inet * *\")"
            ));
        }
        for name in [&table, &object].into_iter().flatten() {
            if name.starts_with('#') {
                return Err(format!(
                    "target {text:?}: names starting with # are how records show an object taken by handle; only * covers those"
                ));
            }
            if name.len() > NAME_LEN - 2 {
                return Err(format!("target {text:?}: name {name:?} is longer than {} bytes", NAME_LEN - 2));
            }
        }
        Ok(Target::Firewall { family, table, object })
    }

    /// What a change request adds to a new name's path when what the agent
    /// makes there is not a regular file, from the type in the kernel's
    /// key (see `FileKey::of_new_name`); "" for a file.
    pub fn new_name_kind(key: FileKey) -> &'static str {
        match key.new_name_parts().1 {
            0o100000 => "",
            0o040000 => NOT_A_FILE[0],
            0o120000 => NOT_A_FILE[1],
            _ => NOT_A_FILE[2],
        }
    }

    /// A warrant's target `text` that is not there yet: one new name in a
    /// directory that is, under a protected tree. The kernel decides a
    /// subject's create, link or move there on the same key.
    pub fn new_file_name(text: &str, protect: &[String], names: &dyn HostNames) -> Result<Target, TargetError> {
        if NOT_A_FILE.iter().any(|kind| text.ends_with(kind)) {
            return Err(TargetError::Invalid(format!(
                "target {text:?}: a warrant lets the agent make one regular file; a directory, symlink or node \
                 in a protected tree needs a rule naming the tree"
            )));
        }
        let tree = tree_of(protect, text).ok_or_else(|| {
            TargetError::Invalid(format!("target {text:?} is not under any protected tree (protect = {protect:?})"))
        })?;
        let path = std::path::Path::new(text);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
            return Err(TargetError::Invalid(format!("target {text:?} names no file")));
        };
        if name.len() >= warrant_common::FILE_NAME_LEN || name == ".." {
            return Err(TargetError::Invalid(format!(
                "target {text:?}: a new file's name must be shorter than {} bytes",
                warrant_common::FILE_NAME_LEN
            )));
        }
        // As written: the path an RI reads is the directory the key names.
        if std::fs::canonicalize(dir).ok().as_deref() != Some(dir) {
            return Err(TargetError::NotOnThisHost(format!(
                "target {text:?}: no directory {} on this host, as written (a warrant names one new file in a \
                 directory that is there, by its path without symlinks or `..`)",
                dir.display()
            )));
        }
        let dir_key = names.file(&dir.to_string_lossy()).ok_or_else(|| {
            TargetError::NotOnThisHost(format!("target {text:?}: cannot read directory {}", dir.display()))
        })?;
        // A regular file: the kernel's key carries the type of what is made.
        let dir_key = FileKey::of_new_name(dir_key, warrant_common::S_IFREG);
        Ok(Target::File { tree: Some(protect::tree_id(tree)), inode: Some(dir_key), name: Some(name.to_owned()) })
    }

    /// Whether the target names one thing, as a warrant's must.
    pub fn is_exact(&self, kind: TargetKind) -> bool {
        match self {
            Target::Firewall { family, table, .. } => {
                family.is_some() && (kind == TargetKind::Family || table.is_some())
            }
            Target::Namespace(inode) => inode.is_some(),
            Target::IpSet { set, .. } => set.is_some(),
            Target::File { inode, .. } => inode.is_some(),
            // Warrants match the kernel's key exactly, and it always has the
            // type (a missing one is type 0, which some protocols send), and
            // for generic netlink a family (ids start at 0x10) and the command.
            Target::Protocol(protocol) => protocol.is_some_and(|(protocol, msg_type, command)| {
                protocol != GENERIC_PROTOCOL || (msg_type != 0 && command.is_some())
            }),
            Target::Socket(name) => name.is_some(),
            Target::Port(port) => port.is_some(),
            Target::Interface(interface) => interface.is_some(),
            Target::Route(route) => route.as_ref().is_some_and(|r| r.prefix.is_some()),
            Target::Nothing => true,
        }
    }

    /// The map key for `profile_id` and `action_id`; wildcards are zero / FAMILY_ANY.
    pub fn key(&self, profile_id: u32, action_id: u32) -> TargetKey {
        let mut key = TargetKey::new(profile_id, action_id);
        match self {
            Target::Firewall { family, table, object } => {
                key = TargetKey::firewall(
                    profile_id,
                    action_id,
                    family.unwrap_or(FAMILY_ANY),
                    table.as_deref().unwrap_or_default().as_bytes(),
                    object.as_deref().unwrap_or_default().as_bytes(),
                )
            }
            Target::Namespace(Some(inode)) => key.set_netns(*inode),
            // The kernel's exact key for "no target" is all zero; `*` is the
            // family wildcard it reaches last.
            Target::Namespace(None) | Target::File { tree: None, .. } | Target::IpSet { set: None, .. } => {
                key.family = FAMILY_ANY
            }
            Target::IpSet { set: Some(set), other } => {
                key = TargetKey::ipset(
                    profile_id,
                    action_id,
                    set.as_bytes(),
                    other.as_deref().unwrap_or_default().as_bytes(),
                )
            }
            Target::File { tree: Some(tree), inode, name } => {
                key.set_file(*tree, inode.map(|i| (i.ino, i.dev)));
                key.set_file_name(name.as_deref().unwrap_or_default().as_bytes());
            }
            Target::Protocol(Some((protocol, msg_type, command))) => {
                key.set_protocol(*protocol, *msg_type);
                if let Some(command) = command {
                    key.set_generic_command(*command);
                }
            }
            Target::Socket(Some(name)) => key.set_socket(name.as_bytes()),
            Target::Socket(None) => key.family = FAMILY_ANY,
            Target::Port(Some(port)) => key.set_port(*port),
            Target::Port(None) => key.family = FAMILY_ANY,
            Target::Protocol(None) => key.family = FAMILY_ANY,
            Target::Interface(Some((name, netns))) => {
                key.set_interface_name(name.as_bytes());
                key.set_interface_netns(*netns);
            }
            Target::Interface(None) | Target::Route(None) => key.family = FAMILY_ANY,
            Target::Route(Some(route)) => route.fill(&mut key),
            Target::Nothing => {}
        }
        key
    }
}

/// Renders a key's target as policy text (`inet filter input`, `net:[4026532001]`).
pub fn render_target(key: &TargetKey) -> String {
    match action::target_kind(key.action) {
        TargetKind::Namespace => {
            let inode = key.netns();
            if inode == 0 { "*".to_owned() } else { format!("net:[{inode}]") }
        }
        TargetKind::None => "*".to_owned(),
        TargetKind::Interface => net_target::render_interface(key, host_netns()),
        TargetKind::Route => net_target::render_route(key, host_netns()),
        TargetKind::Port => {
            let port = key.port();
            if port == 0 { "*".to_owned() } else { port.to_string() }
        }
        TargetKind::Inode => {
            let (ino, dev) = key.inode();
            format!("inode {}:{ino}", protect::dev_text(dev))
        }
        TargetKind::Socket => {
            let (name, cut) = key.socket();
            let name = String::from_utf8_lossy(name).into_owned();
            match (name.is_empty(), cut) {
                (true, _) => "*".to_owned(),
                (false, true) => format!("{name}... (longer than {} bytes)", NAME_LEN - 1),
                (false, false) => name,
            }
        }
        TargetKind::Protocol => {
            let (number, msg_type, command) = key.protocol();
            let protocol = match PROTOCOL_NAMES.iter().find(|(n, _)| *n == u16::from(number)) {
                Some((_, name)) => (*name).to_owned(),
                None => number.to_string(),
            };
            match (msg_type, number == GENERIC_PROTOCOL) {
                (0, _) => protocol,
                (_, true) => crate::genl::render(msg_type, command),
                (_, false) => format!("{protocol} type {msg_type}"),
            }
        }
        TargetKind::IpSet => {
            let set = String::from_utf8_lossy(warrant_common::name_bytes(&key.table)).into_owned();
            let other = String::from_utf8_lossy(warrant_common::name_bytes(&key.object)).into_owned();
            match (set.is_empty(), other.is_empty()) {
                (true, _) => "*".to_owned(),
                (false, true) => set,
                (false, false) => format!("{set} {other}"),
            }
        }
        TargetKind::File => {
            let (tree, inode) = file_target(key);
            match (tree, inode) {
                (0, _) => "*".to_owned(),
                (tree, None) => format!("tree:{tree:08x}"),
                (tree, Some(dir)) if dir.is_name() => {
                    format!("tree:{tree:08x} dir-inode:{} name:{}", dir.ino, String::from_utf8_lossy(key.file_name()))
                }
                (tree, Some(inode)) => format!("tree:{tree:08x} inode:{}", inode.ino),
            }
        }
        TargetKind::Family => family_name(key.family),
        TargetKind::Firewall => {
            let name = |bytes: &[u8; NAME_LEN]| {
                let bytes = warrant_common::name_bytes(bytes);
                if netlink::is_by_reference(bytes) {
                    BY_REFERENCE_TEXT.to_owned()
                } else {
                    String::from_utf8_lossy(bytes).into_owned()
                }
            };
            let table = name(&key.table);
            let mut text = format!("{} {}", family_name(key.family), if table.is_empty() { "*" } else { &table });
            let object = name(&key.object);
            if !object.is_empty() {
                text.push(' ');
                text.push_str(&object);
            }
            text
        }
    }
}

/// How records show a name the kernel took by handle or batch id
/// ([`netlink::BY_REFERENCE`]); policy names may not start with `#`.
pub const BY_REFERENCE_TEXT: &str = "#handle";

/// NETLINK_GENERIC.
const GENERIC_PROTOCOL: u8 = 16;

/// A netlink protocol's number from its name or number.
fn parse_protocol(text: &str) -> Option<u8> {
    match PROTOCOL_NAMES.iter().find(|(_, n)| *n == text) {
        Some((number, _)) => Some(*number as u8),
        None => text.parse::<u8>().ok().filter(|n| *n < 32),
    }
}

/// The tree id and inode a file key names.
/// What a change request adds to a new name that is not a regular file
/// (see [`Target::new_name_kind`]); a warrant's target with one is refused.
pub const NOT_A_FILE: [&str; 3] = [" (a directory)", " (a symlink)", " (a device node, fifo or socket)"];

pub fn file_target(key: &TargetKey) -> (u32, Option<FileKey>) {
    let (ino, dev) = key.inode();
    (key.file_tree(), (ino != 0).then_some(FileKey { ino, dev }))
}
