//! Policy: what the security team signs. Parsing, validation, and compiling
//! to the kernel's RULES and PROFILES map entries.
//!
//! A rule names an action (exact, or a prefix ending in `*`) and a target.
//! Firewall targets are `FAMILY TABLE OBJECT`, where `*` may stand for the
//! trailing parts only (`inet filter *`, `inet * *`, `* * *`); legacy
//! x_tables targets are a family; network namespaces are a name under
//! /run/netns, `net:[INODE]` or `*`. The kernel picks the most specific
//! matching target; between rules for the same target the strictest tier wins.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use warrant_common::{
    FAMILY_ANY, FileKey, NAME_LEN, ProfileEntry, RuleEntry, TargetKey,
    action::{self, TargetKind},
    mode, netlink,
    netlink_protocols::{GENL_COMMAND_PRESENT, PROTOCOL_NAMES},
    tier,
};

use crate::{keys::PublicKey, net_target, protect};

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("policy is not valid TOML: {0}")]
    Toml(String),
    #[error("policy {0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(message.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Allow,
    Approve,
    Deny,
}

impl Tier {
    pub fn kernel_value(self) -> u32 {
        match self {
            Tier::Allow => tier::ALLOW,
            Tier::Approve => tier::APPROVE,
            Tier::Deny => tier::DENY,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub action: String,
    pub target: String,
    pub tier: Tier,
    /// For `allow` rules: `N/second`, `N/minute` or `N/hour`, counted per
    /// profile in the kernel. Past it, actions need a warrant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}

/// Parses a rate (`10/minute`) into (limit, window seconds).
pub fn parse_rate(text: &str) -> Result<(u32, u32), String> {
    let err = || format!("rate {text:?} must be N/second, N/minute or N/hour with N from 1");
    let (count, unit) = text.split_once('/').ok_or_else(err)?;
    let count: u32 = count.trim().parse().ok().filter(|n| *n > 0).ok_or_else(err)?;
    let window = match unit.trim() {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        _ => return Err(err()),
    };
    Ok((count, window))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    /// Which processes are this profile's subjects, besides `warrant run`.
    #[serde(default, rename = "match", skip_serializing_if = "Match::is_empty")]
    pub matches: Match,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// New change requests this profile may open per minute (default: the
    /// daemon's `requests_per_minute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// A process that runs one of these executables (by inode), in one of these
/// cgroup v2 cgroups (or one made under it), or with one of these real uids,
/// becomes a subject of the profile at its next exec, or at once if it is
/// running when the policy is applied.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub exe: Vec<String>,
    /// Paths below the cgroup v2 root (`/system.slice/agent.service`).
    #[serde(default)]
    pub cgroup: Vec<String>,
    #[serde(default)]
    pub uid: Vec<u32>,
}

impl Match {
    pub fn is_empty(&self) -> bool {
        self.exe.is_empty() && self.cgroup.is_empty() && self.uid.is_empty()
    }
}

/// One way a process becomes a subject, as the policy names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Matcher {
    Exe(String),
    Cgroup(String),
    Uid(u32),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responsible {
    pub name: String,
    pub role: String,
    /// Public key: base64 of an Ed25519 key (a `warrant keygen` file), or
    /// an OpenSSH line, `ssh-ed25519 AAAA...` or, for a hardware token,
    /// `sk-ssh-ed25519@openssh.com AAAA...` (signs with `--ssh-key`).
    pub key: String,
    /// For a hardware (sk-) key: count this person's signature only when
    /// the token verified them (PIN or biometric), not on a touch alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_verification: bool,
    /// Action patterns this person may approve (`nft.rule.add`, `nft.*`).
    pub may_approve: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Must grow with every bundle a host accepts.
    pub version: u64,
    /// RFC 3339; a bundle past this is refused.
    pub expires: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Config trees subjects' file actions are decided on (a file, or a
    /// directory and everything that is or comes to be under it).
    #[serde(default)]
    pub protect: Vec<String>,
    #[serde(default, rename = "responsible")]
    pub responsibles: Vec<Responsible>,
    /// Trees guarded besides guarded.rs's, set by the daemon (never read
    /// from a policy file): see [`compile_guarding`].
    #[serde(skip)]
    pub extra_guarded: Vec<String>,
    /// Action patterns whose warrants need two distinct Responsible
    /// Individuals, each allowed to approve the action (`warrant cosign`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub two_person: Vec<String>,
    #[serde(rename = "profile")]
    pub profiles: Vec<Profile>,
}

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
    File { tree: Option<u32>, inode: Option<FileKey> },
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

/// What a target names on this host: network namespaces by name, files by path.
pub trait HostNames {
    fn netns(&self, name: &str) -> Option<u64>;
    fn file(&self, path: &str) -> Option<FileKey>;
    /// The message type of generic netlink family `name` (see `crate::genl`).
    fn genl_family(&self, name: &str) -> Option<u16> {
        crate::genl::family_id(name)
    }
    /// The profile whose subject made the name (pinned a namespace under
    /// it, wrote the file), if one did: such a name is not resolved, since
    /// a rule meant for what an operator will put there would cover what
    /// the subject put there (see `warrant_common::Mark`).
    fn made_by_subject(&self, _name: Named) -> Option<String> {
        None
    }
}

/// `names`, with every name resolved whoever made it.
struct EveryName<'a>(&'a dyn HostNames);

impl HostNames for EveryName<'_> {
    fn netns(&self, name: &str) -> Option<u64> {
        self.0.netns(name)
    }
    fn file(&self, path: &str) -> Option<FileKey> {
        self.0.file(path)
    }
    fn genl_family(&self, name: &str) -> Option<u16> {
        self.0.genl_family(name)
    }
}

/// A name [`HostNames::made_by_subject`] is asked about.
#[derive(Clone, Copy, Debug)]
pub enum Named<'a> {
    /// A name under /run/netns.
    Netns(&'a str),
    File(&'a str),
}

/// Why a name a subject made is not resolved.
fn made_by_subject_error(text: &str, what: &str, profile: &str) -> TargetError {
    TargetError::NotOnThisHost(format!(
        "target {text:?}: {what} was made by a subject (profile {profile}), so the name is not resolved; \
         if it is what the policy means, `warrant unmark` it and apply again"
    ))
}

/// The names of the machine this runs on.
pub struct ThisHost;

impl HostNames for ThisHost {
    fn netns(&self, name: &str) -> Option<u64> {
        resolve_netns_name(name)
    }
    fn file(&self, path: &str) -> Option<FileKey> {
        protect::file_key(std::path::Path::new(path))
    }
}

/// The protected tree `path` is in: the longest entry of `protect` that is
/// `path` or a directory above it.
pub fn tree_of<'a>(protect: &'a [String], path: &str) -> Option<&'a str> {
    protect
        .iter()
        .filter(|tree| {
            path == tree.as_str() || path.strip_prefix(tree.as_str()).is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|tree| tree.len())
        .map(String::as_str)
}

pub const FAMILIES: &[(&str, u8)] = &[("inet", 1), ("ip", 2), ("arp", 3), ("netdev", 5), ("bridge", 7), ("ip6", 10)];

pub fn family_name(family: u8) -> String {
    FAMILIES
        .iter()
        .find(|(_, v)| *v == family)
        .map(|(n, _)| (*n).to_owned())
        .unwrap_or_else(|| if family == FAMILY_ANY { "*".into() } else { format!("family{family}") })
}

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The target name of the host's own network namespace (the daemon's).
pub const HOST_NETNS: &str = "host";

/// The nsfs inode number of the namespace named `name`: `host` is the
/// daemon's own, any other name is looked up under /run/netns.
pub fn resolve_netns_name(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let path = if name == HOST_NETNS {
        std::path::PathBuf::from("/proc/self/ns/net")
    } else {
        std::path::Path::new(NETNS_RUN_DIR).join(name)
    };
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The daemon's own network namespace (the host's), looked up once.
fn host_netns() -> Option<u64> {
    static HOST: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *HOST.get_or_init(|| resolve_netns_name(HOST_NETNS))
}

/// The nsfs inode `word` (part of target `text`) names: `net:[N]`, `host`
/// or a name under /run/netns; None if there is none. A name a subject made
/// is refused, `what` saying what `word` is.
pub(crate) fn resolve_netns_word(
    text: &str,
    word: &str,
    what: &str,
    names: &dyn HostNames,
) -> Result<Option<u64>, TargetError> {
    if let Some(inode) = parse_netns_inode(word) {
        return Ok(Some(inode));
    }
    match names.made_by_subject(Named::Netns(word)) {
        Some(profile) => Err(made_by_subject_error(text, what, &profile)),
        None => Ok(names.netns(word)),
    }
}

/// The inode in `net:[N]` or a bare number.
fn parse_netns_inode(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("net:[").and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    digits.parse().ok().filter(|n| *n != 0)
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
            TargetKind::File if text == "*" => Ok(Target::File { tree: None, inode: None }),
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
                Ok(Target::File { tree: Some(protect::tree_id(tree)), inode })
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
        let mut key = TargetKey::zeroed();
        key.profile_id = profile_id;
        key.action = action_id;
        match self {
            Target::Firewall { family, table, object } => {
                key.family = family.unwrap_or(FAMILY_ANY);
                if let Some(table) = table {
                    key.table[..table.len()].copy_from_slice(table.as_bytes());
                }
                if let Some(object) = object {
                    key.object[..object.len()].copy_from_slice(object.as_bytes());
                }
            }
            Target::Namespace(Some(inode)) => key.object[..8].copy_from_slice(&inode.to_le_bytes()),
            // The kernel's exact key for "no target" is all zero; `*` is the
            // family wildcard it reaches last.
            Target::Namespace(None) | Target::File { tree: None, .. } | Target::IpSet { set: None, .. } => {
                key.family = FAMILY_ANY
            }
            Target::IpSet { set: Some(set), other } => {
                key.table[..set.len()].copy_from_slice(set.as_bytes());
                if let Some(other) = other {
                    key.object[..other.len()].copy_from_slice(other.as_bytes());
                }
            }
            Target::File { tree: Some(tree), inode } => {
                key.table[..4].copy_from_slice(&tree.to_le_bytes());
                if let Some(inode) = inode {
                    key.object[..8].copy_from_slice(&inode.ino.to_le_bytes());
                    key.object[8..16].copy_from_slice(&inode.dev.to_le_bytes());
                }
            }
            Target::Protocol(Some((protocol, msg_type, command))) => {
                key.family = *protocol;
                key.table[..2].copy_from_slice(&msg_type.to_le_bytes());
                if let Some(command) = command {
                    key.object[0] = *command;
                    key.object[1] = GENL_COMMAND_PRESENT;
                }
            }
            Target::Socket(Some(name)) => key.table[..name.len()].copy_from_slice(name.as_bytes()),
            Target::Socket(None) => key.family = FAMILY_ANY,
            Target::Port(Some(port)) => key.object[..2].copy_from_slice(&port.to_le_bytes()),
            Target::Port(None) => key.family = FAMILY_ANY,
            Target::Protocol(None) => key.family = FAMILY_ANY,
            Target::Interface(Some((name, netns))) => {
                key.table[..name.len()].copy_from_slice(name.as_bytes());
                key.object[8..16].copy_from_slice(&netns.to_le_bytes());
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
            let inode = action::netns_target(key);
            if inode == 0 { "*".to_owned() } else { format!("net:[{inode}]") }
        }
        TargetKind::None => "*".to_owned(),
        TargetKind::Interface => net_target::render_interface(key, host_netns()),
        TargetKind::Route => net_target::render_route(key, host_netns()),
        TargetKind::Port => {
            let port = u16::from_le_bytes([key.object[0], key.object[1]]);
            if port == 0 { "*".to_owned() } else { port.to_string() }
        }
        TargetKind::Inode => {
            let word = |i: usize| u64::from_le_bytes(key.object[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            let (ino, dev) = (word(0), word(1));
            format!("inode {}:{ino}", protect::dev_text(dev))
        }
        TargetKind::Socket => {
            let kept = &key.table[..NAME_LEN - 1];
            let end = kept.iter().position(|b| *b == 0).unwrap_or(kept.len());
            let name = String::from_utf8_lossy(&kept[..end]).into_owned();
            match (name.is_empty(), key.table[NAME_LEN - 1] == 0xff) {
                (true, _) => "*".to_owned(),
                (false, true) => format!("{name}... (longer than {} bytes)", NAME_LEN - 1),
                (false, false) => name,
            }
        }
        TargetKind::Protocol => {
            let protocol = match PROTOCOL_NAMES.iter().find(|(n, _)| *n == u16::from(key.family)) {
                Some((_, name)) => (*name).to_owned(),
                None => key.family.to_string(),
            };
            let msg_type = u16::from_le_bytes([key.table[0], key.table[1]]);
            let command = (key.object[1] == GENL_COMMAND_PRESENT).then_some(key.object[0]);
            match (msg_type, key.family == GENERIC_PROTOCOL) {
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

/// A netlink protocol's number from its name or number.
/// NETLINK_GENERIC.
const GENERIC_PROTOCOL: u8 = 16;

fn parse_protocol(text: &str) -> Option<u8> {
    match PROTOCOL_NAMES.iter().find(|(_, n)| *n == text) {
        Some((number, _)) => Some(*number as u8),
        None => text.parse::<u8>().ok().filter(|n| *n < 32),
    }
}

/// The tree id and inode a file key names.
pub fn file_target(key: &TargetKey) -> (u32, Option<FileKey>) {
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    let tree = u32::from_le_bytes(key.table[..4].try_into().unwrap_or_default());
    let inode = FileKey { ino: word(&key.object[..8]), dev: word(&key.object[8..16]) };
    (tree, (inode.ino != 0).then_some(inode))
}

/// The one target kind shared by every action in `ids`.
pub fn shared_target_kind(pattern: &str, ids: &[u32]) -> Result<TargetKind, String> {
    let kind = action::target_kind(ids[0]);
    if ids.iter().any(|id| action::target_kind(*id) != kind) {
        return Err(format!(
            "action {pattern:?} mixes actions whose targets differ (firewall, family, ipset, namespace, file); split the rule"
        ));
    }
    Ok(kind)
}

/// Every action id an action pattern names.
pub fn expand_action(pattern: &str) -> Result<Vec<u32>, String> {
    if pattern.starts_with("self") {
        return Err(format!(
            "action {pattern:?}: self-protection actions are always denied and cannot appear in policy"
        ));
    }
    let ids: Vec<u32> = match pattern.strip_suffix('*') {
        Some(prefix) => action::ALL
            .iter()
            .filter(|(i, n)| n.starts_with(prefix) && !action::is_self_protection(*i))
            .map(|(i, _)| *i)
            .collect(),
        None => action::by_name(pattern).into_iter().collect(),
    };
    if ids.is_empty() {
        let known: Vec<&str> = action::ALL.iter().map(|(_, n)| *n).collect();
        return Err(format!("action {pattern:?} names no known action (known: {})", known.join(", ")));
    }
    Ok(ids)
}

/// Whether an action pattern (`nft.rule.add`, `nft.*`) covers `action_name`.
fn pattern_matches(pattern: &str, action_name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => action_name.starts_with(prefix),
        None => pattern == action_name,
    }
}

/// A policy checked for consistency, with what the kernel needs.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub policy: Policy,
    pub expires_unix: u64,
    pub profile_ids: BTreeMap<String, u32>,
    pub profiles: Vec<(u32, ProfileEntry)>,
    pub rules: HashMap<TargetKey, RuleEntry>,
    /// Rule index -> (profile, rule), for audit records and explanations.
    pub rule_names: Vec<(String, Rule)>,
    pub responsibles: Vec<(Responsible, PublicKey)>,
    /// Rules naming namespaces this host does not have; they cover nothing.
    pub unresolved: Vec<String>,
    /// How processes become subjects, with their profile ids.
    pub matchers: Vec<(Matcher, u32)>,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        toml::from_str(text).map_err(|e| PolicyError::Toml(e.message().to_owned()))
    }
}

/// Parses an RFC 3339 time to unix seconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| format!("{text:?} is before 1970"))
}

/// A profile's kernel id, from its name: running subjects keep their
/// profile when a new policy reorders, adds or removes profiles.
pub fn profile_id(name: &str) -> u32 {
    warrant_common::hash::fnv1a_32(name.as_bytes())
}

/// Compiles `policy` for this host (namespace names, file paths).
pub fn compile(policy: Policy) -> Result<CompiledPolicy, PolicyError> {
    compile_with(policy, &ThisHost)
}

/// Compiles `policy` for this host with `extra` guarded trees besides
/// [`crate::guarded::GUARDED`]: the daemon's query socket directory, whose
/// socket every subject reaches and none may replace.
pub fn compile_guarding(
    mut policy: Policy,
    extra: &[String],
    names: &dyn HostNames,
) -> Result<CompiledPolicy, PolicyError> {
    policy.extra_guarded = extra.to_vec();
    compile_with(policy, names)
}

/// Compiles `policy`, looking names up in `names`.
pub fn compile_with(mut policy: Policy, names: &dyn HostNames) -> Result<CompiledPolicy, PolicyError> {
    let expires_unix = parse_time(&policy.expires).map_err(|e| invalid(format!("expires: {e}")))?;
    if policy.profiles.is_empty() {
        return Err(invalid("has no [[profile]]"));
    }
    for tree in &policy.protect {
        if !tree.starts_with('/')
            || tree.len() < 2
            || tree.ends_with('/')
            || tree.contains("/../")
            || tree.contains("//")
        {
            return Err(invalid(format!("protect: {tree:?} must be an absolute path without a trailing `/` or `..`")));
        }
    }
    // Guarded surfaces are protected trees of every policy (see guarded.rs).
    let mut guarded = crate::guarded::present(&policy.protect);
    for extra in std::mem::take(&mut policy.extra_guarded) {
        if !policy.protect.contains(&extra) && !guarded.contains(&extra) && Path::new(&extra).exists() {
            guarded.push(extra);
        }
    }
    policy.protect.extend(guarded.iter().cloned());
    let mut profile_ids = BTreeMap::new();
    let mut profiles = Vec::new();
    let mut rules: HashMap<TargetKey, RuleEntry> = HashMap::new();
    let mut rule_names = Vec::new();
    let mut unresolved = Vec::new();
    let mut matchers: Vec<(Matcher, u32)> = Vec::new();
    for profile in &policy.profiles {
        if profile.name.is_empty() || profile.name.contains(char::is_whitespace) {
            return Err(invalid(format!("profile name {:?} must be one word", profile.name)));
        }
        let id = profile_id(&profile.name);
        if profile_ids.insert(profile.name.clone(), id).is_some() {
            return Err(invalid(format!("names profile {:?} twice", profile.name)));
        }
        if profile_ids.values().filter(|other| **other == id).count() > 1 {
            return Err(invalid(format!(
                "profile {:?}: its id collides with another profile's; rename it",
                profile.name
            )));
        }
        let kernel_mode = match profile.mode {
            Mode::Enforce => mode::ENFORCE,
            Mode::Audit => mode::AUDIT,
        };
        profiles.push((id, ProfileEntry { mode: kernel_mode, _reserved: 0 }));
        let named = profile
            .matches
            .exe
            .iter()
            .map(|e| Matcher::Exe(e.clone()))
            .chain(profile.matches.cgroup.iter().map(|c| Matcher::Cgroup(c.clone())))
            .chain(profile.matches.uid.iter().map(|u| Matcher::Uid(*u)));
        for matcher in named {
            match &matcher {
                Matcher::Exe(path) | Matcher::Cgroup(path) if !path.starts_with('/') => {
                    return Err(invalid(format!("profile {:?}: match path {path:?} must be absolute", profile.name)));
                }
                Matcher::Uid(0) => {
                    return Err(invalid(format!(
                        "profile {:?}: matching uid 0 would confine every root process, operators included",
                        profile.name
                    )));
                }
                _ => {}
            }
            if let Some((_, other)) = matchers.iter().find(|(m, _)| *m == matcher) {
                return Err(invalid(format!(
                    "profile {:?}: {matcher:?} already matches profile #{other}",
                    profile.name
                )));
            }
            matchers.push((matcher, id));
        }
        let mut named_trees = Vec::new();
        let mut named_sockets: Vec<String> = Vec::new();
        let mut named_ports: Vec<u16> = Vec::new();
        for rule in &profile.rules {
            let rule_index = rule_names.len() as u32;
            let context = |e: String| invalid(format!("profile {:?}: {e}", profile.name));
            let actions = expand_action(&rule.action).map_err(context)?;
            let every_target = rule.target.trim() == "*";
            let kind = match shared_target_kind(&rule.action, &actions) {
                Ok(kind) => kind,
                // `*` is every target of every kind (`ipc.* *`): each action takes its own.
                Err(_) if every_target => action::target_kind(actions[0]),
                Err(e) => return Err(context(e)),
            };
            let (rate_limit, rate_window_secs) = match &rule.rate {
                None => (0, 0),
                Some(_) if rule.tier != Tier::Allow => {
                    return Err(context(format!("rule for {}: only `allow` rules take a rate", rule.action)));
                }
                Some(rate) => parse_rate(rate).map_err(context)?,
            };
            // Only what a rule lets through is withheld from a name a subject
            // made: a `deny` or `approve` rule on it still binds.
            let unmarked = EveryName(names);
            let rule_names_from: &dyn HostNames = if rule.tier == Tier::Allow { names } else { &unmarked };
            let target = match Target::parse(kind, &rule.target, &policy.protect, rule_names_from) {
                Ok(target) => target,
                Err(TargetError::NotOnThisHost(e)) => {
                    // A namespace or file this host does not have: the rule covers nothing here.
                    unresolved.push(format!("profile {:?}: {e}", profile.name));
                    rule_names.push((profile.name.clone(), rule.clone()));
                    continue;
                }
                Err(TargetError::Invalid(e)) => return Err(context(e)),
            };
            for action_id in actions {
                let own_kind = action::target_kind(action_id);
                let key = match every_target && own_kind != kind {
                    true => Target::parse(own_kind, "*", &policy.protect, rule_names_from)
                        .map(|t| t.key(id, action_id))
                        .unwrap_or_else(|_| target.key(id, action_id)),
                    false => target.key(id, action_id),
                };
                let entry = RuleEntry { tier: rule.tier.kernel_value(), rule_index, rate_limit, rate_window_secs };
                match rules.get(&key) {
                    // The strictest tier wins for one target (deny > approve > allow).
                    Some(existing) if existing.tier >= entry.tier => {}
                    _ => {
                        rules.insert(key, entry);
                    }
                }
            }
            match &target {
                Target::File { tree: Some(tree), .. } => named_trees.push(*tree),
                Target::Socket(Some(name)) => named_sockets.push(name.clone()),
                Target::Port(Some(port)) => named_ports.push(*port),
                _ => {}
            }
            rule_names.push((profile.name.clone(), rule.clone()));
        }
        // Sockets every program may reach (the journal, nscd), unless the
        // profile's rules say otherwise.
        for socket in crate::guarded::SOCKETS_ALLOWED.iter().filter(|s| !named_sockets.contains(&s.to_string())) {
            allow_socket_rule(&mut rules, &mut rule_names, (&profile.name, id), socket);
        }
        for port in crate::guarded::LOOPBACK_PORTS_ALLOWED.iter().filter(|p| !named_ports.contains(p)) {
            let rule = Rule { action: "ipc.loopback".into(), target: port.to_string(), tier: Tier::Allow, rate: None };
            let entry = RuleEntry {
                tier: tier::ALLOW,
                rule_index: rule_names.len() as u32,
                rate_limit: 0,
                rate_window_secs: 0,
            };
            rules.insert(Target::Port(Some(*port)).key(id, action::IPC_LOOPBACK), entry);
            rule_names.push((profile.name.clone(), rule));
        }
        // A guarded surface the profile's rules do not name is denied, even
        // where a `file.* *` rule allows the rest.
        for tree in guarded.iter().filter(|t| !named_trees.contains(&protect::tree_id(t))) {
            let rule = Rule { action: "file.*".into(), target: tree.clone(), tier: Tier::Deny, rate: None };
            let entry =
                RuleEntry { tier: tier::DENY, rule_index: rule_names.len() as u32, rate_limit: 0, rate_window_secs: 0 };
            let target = Target::File { tree: Some(protect::tree_id(tree)), inode: None };
            for action_id in action::FILE_WRITE..=action::FILE_XATTR {
                rules.insert(target.key(id, action_id), entry);
            }
            rule_names.push((profile.name.clone(), rule));
        }
    }
    for pattern in &policy.two_person {
        expand_action(pattern).map_err(|e| invalid(format!("two_person: {e}")))?;
    }
    let mut responsibles: Vec<(Responsible, PublicKey)> = Vec::new();
    for ri in &policy.responsibles {
        let key = PublicKey::parse(&ri.key).ok_or_else(|| {
            invalid(format!(
                "responsible {:?}: key is neither a base64 Ed25519 public key nor an OpenSSH ssh-ed25519 or sk-ssh-ed25519@openssh.com line",
                ri.name
            ))
        })?;
        if ri.user_verification && !key.is_hardware() {
            return Err(invalid(format!(
                "responsible {:?}: user_verification needs a hardware key (sk-ssh-ed25519@openssh.com)",
                ri.name
            )));
        }
        for pattern in &ri.may_approve {
            expand_action(pattern).map_err(|e| invalid(format!("responsible {:?}: {e}", ri.name)))?;
        }
        // One key is one person, in whichever encoding it is written.
        if let Some((other, _)) = responsibles.iter().find(|(_, k)| *k == key) {
            return Err(invalid(format!(
                "responsibles {:?} and {:?} hold the same key: one person cannot be two approvers",
                other.name, ri.name
            )));
        }
        responsibles.push((ri.clone(), key));
    }
    Ok(CompiledPolicy {
        policy,
        expires_unix,
        profile_ids,
        profiles,
        rules,
        rule_names,
        responsibles,
        unresolved,
        matchers,
    })
}

/// An `ipc.connect` allow rule for `socket` in the profile (name, id).
fn allow_socket_rule(
    rules: &mut HashMap<TargetKey, RuleEntry>,
    rule_names: &mut Vec<(String, Rule)>,
    (profile, id): (&str, u32),
    socket: &str,
) {
    let rule = Rule { action: "ipc.connect".into(), target: socket.to_owned(), tier: Tier::Allow, rate: None };
    let entry =
        RuleEntry { tier: tier::ALLOW, rule_index: rule_names.len() as u32, rate_limit: 0, rate_window_secs: 0 };
    rules.insert(Target::Socket(Some(socket.to_owned())).key(id, action::IPC_CONNECT), entry);
    rule_names.push((profile.to_owned(), rule));
}

impl CompiledPolicy {
    /// Lets every profile connect to `socket` (Warrant's query socket),
    /// unless a rule of the profile names it.
    pub fn allow_socket(&mut self, socket: &str) {
        for (name, &id) in &self.profile_ids {
            let key = Target::Socket(Some(socket.to_owned())).key(id, action::IPC_CONNECT);
            if !self.rules.contains_key(&key) {
                allow_socket_rule(&mut self.rules, &mut self.rule_names, (name, id), socket);
            }
        }
    }

    /// Whether the policy is past its `expires` at `now` (unix seconds).
    pub fn expired_at(&self, now: u64) -> bool {
        self.expires_unix <= now
    }

    pub fn version(&self) -> u64 {
        self.policy.version
    }

    /// The Responsible Individual holding `key`, if that person may approve `action_name`.
    pub fn approver_for(&self, key: &PublicKey, action_name: &str) -> Option<&Responsible> {
        self.responsibles.iter().find_map(|(ri, k)| {
            let may = ri.may_approve.iter().any(|p| pattern_matches(p, action_name));
            (k == key && may).then_some(ri)
        })
    }

    /// Whether warrants for `action_name` need two Responsible Individuals.
    pub fn needs_two_people(&self, action_name: &str) -> bool {
        self.policy.two_person.iter().any(|p| pattern_matches(p, action_name))
    }

    pub fn responsible_by_key(&self, key: &PublicKey) -> Option<&Responsible> {
        self.responsibles.iter().find(|(_, k)| k == key).map(|(ri, _)| ri)
    }

    pub fn profile_name(&self, id: u32) -> String {
        self.profile_ids
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| format!("profile#{id}"))
    }
}
