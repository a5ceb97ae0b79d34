//! Policy: what the security team signs. Parsing, validation, and compiling
//! to the kernel's RULES and PROFILES map entries.
//!
//! A rule names an action (exact, or a prefix ending in `*`) and a target.
//! Firewall targets are `FAMILY TABLE OBJECT`, where `*` may stand for the
//! trailing parts only (`inet filter *`, `inet * *`, `* * *`); legacy
//! x_tables targets are a family; network namespaces are a name under
//! /run/netns, `net:[INODE]` or `*`. The kernel picks the most specific
//! matching target; between rules for the same target the strictest tier wins.

mod compile;
mod names;
mod target;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use warrant_common::tier;

pub use compile::{
    CompiledPolicy, IndexedRule, IndexedRules, compile, compile_guarding, compile_with, expand_action,
    shared_target_kind,
};
pub(crate) use names::resolve_netns_word;
pub use names::{
    FAMILIES, HOST_NETNS, HostNames, NETNS_RUN_DIR, Named, ThisHost, family_name, resolve_netns_name, tree_of,
};
pub use target::{BY_REFERENCE_TEXT, Target, TargetError, file_target, render_target};

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
