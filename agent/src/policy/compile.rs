//! Compiling a policy for this host: every rule checked and turned into the
//! kernel's RULES and PROFILES entries, guarded surfaces added.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use warrant_common::{
    ProfileEntry, RuleEntry, TargetKey,
    action::{self, TargetKind},
    mode, tier,
};

use super::names::{EveryName, HostNames, Named, ThisHost};
use super::target::{Target, TargetError};
use super::{Matcher, Mode, Policy, PolicyError, Responsible, Rule, Tier, invalid, parse_rate, parse_time, profile_id};
use crate::{keys::PublicKey, protect};

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
    /// The rules by the index the kernel's entries carry, for audit
    /// records and explanations.
    pub rules_by_index: IndexedRules,
    pub responsibles: Vec<(Responsible, PublicKey)>,
    /// Rules naming namespaces this host does not have; they cover nothing.
    pub unresolved: Vec<String>,
    /// The policy's `protect` paths whose file a subject wrote: protected
    /// all the same, but what they hold is an agent's (see README, marks).
    pub protected_written: Vec<String>,
    /// How processes become subjects, with their profile ids.
    pub matchers: Vec<(Matcher, u32)>,
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
    // A path the policy protects that a subject wrote stays protected
    // (refusing it would hand it back to the agent), but the operator is
    // told that what it holds is the agent's, not what the policy meant.
    let protected_written = policy
        .protect
        .iter()
        .filter_map(|tree| {
            let profile = names.made_by_subject(Named::File(tree))?;
            Some(format!(
                "protect {tree:?}: the file was written by a subject (profile {profile}); it is protected, \
                 but what it holds is the agent's: read it, then `warrant unmark` it"
            ))
        })
        .collect();
    // Guarded surfaces are protected trees of every policy (see guarded.rs).
    let mut guarded = crate::guarded::to_protect(&policy.protect);
    for extra in std::mem::take(&mut policy.extra_guarded) {
        if !policy.protect.contains(&extra) && !guarded.contains(&extra) && Path::new(&extra).exists() {
            guarded.push(extra);
        }
    }
    policy.protect.extend(guarded.iter().cloned());
    let mut profile_ids = BTreeMap::new();
    let mut profiles = Vec::new();
    let mut rules: HashMap<TargetKey, RuleEntry> = HashMap::new();
    let mut rules_by_index = IndexedRules::default();
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
            let rule_index = rules_by_index.next_index();
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
                    rules_by_index.push(&profile.name, rule.clone());
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
            rules_by_index.push(&profile.name, rule.clone());
        }
        // Sockets every program may reach (the journal, nscd), unless the
        // profile's rules say otherwise.
        for socket in crate::guarded::SOCKETS_ALLOWED.iter().filter(|s| !named_sockets.contains(&s.to_string())) {
            allow_socket_rule(&mut rules, &mut rules_by_index, (&profile.name, id), socket);
        }
        for port in crate::guarded::LOOPBACK_PORTS_ALLOWED.iter().filter(|p| !named_ports.contains(p)) {
            let rule = Rule { action: "ipc.loopback".into(), target: port.to_string(), tier: Tier::Allow, rate: None };
            let entry = RuleEntry {
                tier: tier::ALLOW,
                rule_index: rules_by_index.next_index(),
                rate_limit: 0,
                rate_window_secs: 0,
            };
            rules.insert(Target::Port(Some(*port)).key(id, action::IPC_LOOPBACK), entry);
            rules_by_index.push(&profile.name, rule);
        }
        // A guarded surface the profile's rules do not name is denied, even
        // where a `file.* *` rule allows the rest.
        for tree in guarded.iter().filter(|t| !named_trees.contains(&protect::tree_id(t))) {
            let rule = Rule { action: "file.*".into(), target: tree.clone(), tier: Tier::Deny, rate: None };
            let entry = RuleEntry {
                tier: tier::DENY,
                rule_index: rules_by_index.next_index(),
                rate_limit: 0,
                rate_window_secs: 0,
            };
            let target = Target::File { tree: Some(protect::tree_id(tree)), inode: None, name: None };
            for action_id in action::FILE_WRITE..=action::FILE_XATTR {
                rules.insert(target.key(id, action_id), entry);
            }
            rules_by_index.push(&profile.name, rule);
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
        rules_by_index,
        responsibles,
        unresolved,
        protected_written,
        matchers,
    })
}

/// The rules of a compiled policy by the index the kernel's entries carry.
/// Only this module adds to it (compiling, `allow_socket`), so an index
/// always names the rule it was given for.
#[derive(Clone, Debug, Default)]
pub struct IndexedRules(Vec<IndexedRule>);

/// One rule as a decision names it.
#[derive(Clone, Debug)]
pub struct IndexedRule {
    pub profile: String,
    pub rule: Rule,
    /// How an audit record names it (`profile#index: action target -> tier`),
    /// made once: every decision record names its rule.
    pub text: String,
}

impl IndexedRules {
    /// The index the next rule added takes.
    fn next_index(&self) -> u32 {
        self.0.len() as u32
    }

    fn push(&mut self, profile: &str, rule: Rule) {
        let index = self.0.len();
        let rate = rule.rate.as_ref().map(|rate| format!(" at most {rate}")).unwrap_or_default();
        // The tier as policies write it; the target as written (a path's case is its own).
        let tier = format!("{:?}", rule.tier).to_lowercase();
        let text = format!("{profile}#{index}: {} {} -> {tier}{rate}", rule.action, rule.target);
        self.0.push(IndexedRule { profile: profile.to_owned(), rule, text });
    }

    /// The rule at `index`, if the policy has one there.
    pub fn get(&self, index: u32) -> Option<&IndexedRule> {
        self.0.get(index as usize)
    }

    pub fn iter(&self) -> impl Iterator<Item = &IndexedRule> {
        self.0.iter()
    }
}

/// An `ipc.connect` allow rule for `socket` in the profile (name, id).
fn allow_socket_rule(
    rules: &mut HashMap<TargetKey, RuleEntry>,
    rules_by_index: &mut IndexedRules,
    (profile, id): (&str, u32),
    socket: &str,
) {
    let rule = Rule { action: "ipc.connect".into(), target: socket.to_owned(), tier: Tier::Allow, rate: None };
    let entry =
        RuleEntry { tier: tier::ALLOW, rule_index: rules_by_index.next_index(), rate_limit: 0, rate_window_secs: 0 };
    rules.insert(Target::Socket(Some(socket.to_owned())).key(id, action::IPC_CONNECT), entry);
    rules_by_index.push(profile, rule);
}

impl CompiledPolicy {
    /// Lets every profile connect to `socket` (Warrant's query socket),
    /// unless a rule of the profile names it.
    pub fn allow_socket(&mut self, socket: &str) {
        for (name, &id) in &self.profile_ids {
            let key = Target::Socket(Some(socket.to_owned())).key(id, action::IPC_CONNECT);
            if !self.rules.contains_key(&key) {
                allow_socket_rule(&mut self.rules, &mut self.rules_by_index, (name, id), socket);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_named_by_its_profile_index_action_target_tier_and_rate() {
        let rule = |action: &str, target: &str, tier, rate: Option<&str>| Rule {
            action: action.into(),
            target: target.into(),
            tier,
            rate: rate.map(Into::into),
        };
        let mut rules = IndexedRules::default();
        assert_eq!(rules.next_index(), 0);
        rules.push("agent", rule("nft.rule.add", "inet filter input", Tier::Approve, None));
        rules.push("Ops", rule("file.write", "/etc/MyApp.conf", Tier::Allow, Some("5/minute")));
        assert_eq!(rules.next_index(), 2);
        assert_eq!(rules.get(0).unwrap().text, "agent#0: nft.rule.add inet filter input -> approve");
        assert_eq!(rules.get(1).unwrap().text, "Ops#1: file.write /etc/MyApp.conf -> allow at most 5/minute");
        assert!(rules.get(2).is_none());
    }
}
