//! What a policy's names are on this host: network namespaces by name
//! (under /run/netns, or the host's own), files by path, nftables families.

use warrant_common::{FAMILY_ANY, FileKey};

use super::TargetError;
use crate::protect;

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
pub(super) struct EveryName<'a>(pub(super) &'a dyn HostNames);

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
pub(super) fn made_by_subject_error(text: &str, what: &str, profile: &str) -> TargetError {
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
pub(super) fn host_netns() -> Option<u64> {
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
