//! Policy: what the security team signs. Parsing, validation, and compiling
//! to the kernel's RULES and PROFILES map entries.
//!
//! A rule names an action (exact, or a prefix ending in `*`) and a target
//! `FAMILY TABLE OBJECT`, where `*` may stand for the trailing parts only
//! (`inet filter *`, `inet * *`, `* * *`). The kernel picks the most specific
//! matching target; between rules for the same target the strictest tier wins.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use warrant_common::{FAMILY_ANY, NAME_LEN, ProfileEntry, RuleEntry, TargetKey, action, mode, tier};

use crate::trust;

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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responsible {
    pub name: String,
    pub role: String,
    /// Ed25519 public key, base64.
    pub key: String,
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
    #[serde(default, rename = "responsible")]
    pub responsibles: Vec<Responsible>,
    #[serde(rename = "profile")]
    pub profiles: Vec<Profile>,
}

/// A parsed target: exact parts, then `None` for wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub family: Option<u8>,
    pub table: Option<String>,
    pub object: Option<String>,
}

pub const FAMILIES: &[(&str, u8)] =
    &[("inet", 1), ("ip", 2), ("arp", 3), ("netdev", 5), ("bridge", 7), ("ip6", 10)];

pub fn family_name(family: u8) -> String {
    FAMILIES
        .iter()
        .find(|(_, v)| *v == family)
        .map(|(n, _)| (*n).to_owned())
        .unwrap_or_else(|| if family == FAMILY_ANY { "*".into() } else { format!("family{family}") })
}

impl Target {
    /// Parses `FAMILY [TABLE [OBJECT]]`; missing trailing parts are `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(format!("target {text:?} must be \"FAMILY TABLE OBJECT\" (e.g. \"inet filter input\")"));
        }
        let part = |i: usize| parts.get(i).copied().filter(|p| *p != "*");
        let family = match part(0) {
            None => None,
            Some(name) => Some(
                FAMILIES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("target {text:?}: unknown family {name:?} (inet, ip, ip6, arp, bridge, netdev or *)"))?,
            ),
        };
        let table = part(1).map(str::to_owned);
        let object = part(2).map(str::to_owned);
        if (family.is_none() && (table.is_some() || object.is_some())) || (table.is_none() && object.is_some()) {
            return Err(format!("target {text:?}: `*` may only stand for the trailing parts (\"inet filter *\", \"inet * *\")"));
        }
        for name in [&table, &object].into_iter().flatten() {
            if name.len() > NAME_LEN - 2 {
                return Err(format!("target {text:?}: name {name:?} is longer than {} bytes", NAME_LEN - 2));
            }
        }
        Ok(Target { family, table, object })
    }

    pub fn is_exact(&self) -> bool {
        self.family.is_some() && self.table.is_some()
    }

    /// The map key for `profile_id` and `action_id`; wildcards are zero / FAMILY_ANY.
    pub fn key(&self, profile_id: u32, action_id: u32) -> TargetKey {
        let mut key = TargetKey::zeroed();
        key.profile_id = profile_id;
        key.action = action_id;
        key.family = self.family.unwrap_or(FAMILY_ANY);
        if let Some(table) = &self.table {
            key.table[..table.len()].copy_from_slice(table.as_bytes());
        }
        if let Some(object) = &self.object {
            key.object[..object.len()].copy_from_slice(object.as_bytes());
        }
        key
    }
}

/// Renders a key's target as policy text (`inet filter input`).
pub fn render_target(key: &TargetKey) -> String {
    let name = |bytes: &[u8; NAME_LEN]| {
        let s = String::from_utf8_lossy(warrant_common::name_bytes(bytes)).into_owned();
        if s.is_empty() { "*".to_owned() } else { s }
    };
    let object = warrant_common::name_bytes(&key.object);
    if warrant_common::name_bytes(&key.table).is_empty() && object.is_empty() {
        // Family-only targets (legacy x_tables); no family at all: self-protection.
        return if key.family == 0 { "*".to_owned() } else { family_name(key.family) };
    }
    let mut text = format!("{} {}", family_name(key.family), name(&key.table));
    if !object.is_empty() {
        text.push(' ');
        text.push_str(&String::from_utf8_lossy(object));
    }
    text
}

/// Every action id an action pattern names.
pub fn expand_action(pattern: &str) -> Result<Vec<u32>, String> {
    if pattern.starts_with("self") {
        return Err(format!("action {pattern:?}: self-protection actions are always denied and cannot appear in policy"));
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
    pub responsibles: Vec<(Responsible, VerifyingKey)>,
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

pub fn compile(policy: Policy) -> Result<CompiledPolicy, PolicyError> {
    let expires_unix = parse_time(&policy.expires).map_err(|e| invalid(format!("expires: {e}")))?;
    if policy.profiles.is_empty() {
        return Err(invalid("has no [[profile]]"));
    }
    let mut profile_ids = BTreeMap::new();
    let mut profiles = Vec::new();
    let mut rules: HashMap<TargetKey, RuleEntry> = HashMap::new();
    let mut rule_names = Vec::new();
    for (index, profile) in policy.profiles.iter().enumerate() {
        if profile.name.is_empty() || profile.name.contains(char::is_whitespace) {
            return Err(invalid(format!("profile name {:?} must be one word", profile.name)));
        }
        let id = index as u32;
        if profile_ids.insert(profile.name.clone(), id).is_some() {
            return Err(invalid(format!("names profile {:?} twice", profile.name)));
        }
        let kernel_mode = match profile.mode {
            Mode::Enforce => mode::ENFORCE,
            Mode::Audit => mode::AUDIT,
        };
        profiles.push((id, ProfileEntry { mode: kernel_mode, _reserved: 0 }));
        for rule in &profile.rules {
            let rule_index = rule_names.len() as u32;
            let context = |e: String| invalid(format!("profile {:?}: {e}", profile.name));
            let actions = expand_action(&rule.action).map_err(context)?;
            let target = Target::parse(&rule.target).map_err(context)?;
            for action_id in actions {
                let key = target.key(id, action_id);
                let entry = RuleEntry { tier: rule.tier.kernel_value(), rule_index };
                match rules.get(&key) {
                    // The strictest tier wins for one target (deny > approve > allow).
                    Some(existing) if existing.tier >= entry.tier => {}
                    _ => {
                        rules.insert(key, entry);
                    }
                }
            }
            rule_names.push((profile.name.clone(), rule.clone()));
        }
    }
    let mut responsibles = Vec::new();
    for ri in &policy.responsibles {
        let key = trust::parse_public_key(&ri.key).ok_or_else(|| {
            invalid(format!("responsible {:?}: key is not a base64 Ed25519 public key", ri.name))
        })?;
        for pattern in &ri.may_approve {
            expand_action(pattern).map_err(|e| invalid(format!("responsible {:?}: {e}", ri.name)))?;
        }
        responsibles.push((ri.clone(), key));
    }
    Ok(CompiledPolicy { policy, expires_unix, profile_ids, profiles, rules, rule_names, responsibles })
}

impl CompiledPolicy {
    pub fn version(&self) -> u64 {
        self.policy.version
    }

    /// The Responsible Individual holding `key`, if that person may approve `action_name`.
    pub fn approver_for(&self, key: &VerifyingKey, action_name: &str) -> Option<&Responsible> {
        self.responsibles.iter().find_map(|(ri, k)| {
            let may = ri.may_approve.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => action_name.starts_with(prefix),
                None => p == action_name,
            });
            (k == key && may).then_some(ri)
        })
    }

    pub fn responsible_by_key(&self, key: &VerifyingKey) -> Option<&Responsible> {
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
