//! The maps a policy occupies: its rules and profiles (under a generation),
//! the protected inodes and /proc trees, and the exec-time matchers. A new
//! policy goes in as one change that is either committed or aborted, and an
//! aborted change puts back exactly what it replaced: the kernel's own
//! additions since (files created in a protected tree, cgroups made under a
//! matched one) stay.

use super::protected::{left_to_names, needs_entry, no_room};
use super::*;

/// A policy written into the kernel and not yet committed: what it
/// replaced, to put back if it is aborted.
#[must_use = "a policy change is committed or aborted"]
struct PolicyChange {
    /// The generation in force before, and the one written.
    before: u8,
    written: u8,
    /// The settings word flipped to `written`.
    flipped: bool,
    /// Each PROTECTED and PROC_TREES key the change wrote, with what was
    /// there (None: nothing).
    protected_before: Vec<(FileKey, Option<ProtectedEntry>)>,
    proc_trees_before: Vec<(u64, Option<u32>)>,
    /// MATCHES, CGROUP_PATHS and the match kinds before the switch.
    matches_before: Option<Matches>,
}

/// The exec-time matchers, as `Kernel::set_matches` takes them.
struct Matches {
    entries: StdHashMap<MatchKey, u32>,
    cgroup_paths: StdHashMap<u64, u32>,
    kinds: u32,
}

/// A policy as the kernel takes it, walked and resolved before any map
/// changes: its profiles and rules, the inodes it protects (`inodes`, of
/// the protected `trees`), its /proc trees and its exec-time matchers.
pub struct StagedPolicy<'a> {
    pub version: u64,
    pub profiles: &'a [(u32, ProfileEntry)],
    pub rules: &'a StdHashMap<TargetKey, RuleEntry>,
    pub inodes: &'a StdHashMap<FileKey, ProtectedEntry>,
    pub trees: &'a std::collections::HashSet<u32>,
    /// Roots whose entries must fit (`protect::roots_needing_entries`).
    pub roots: &'a std::collections::HashSet<FileKey>,
    /// Trees the kernel protected before this policy (Warrant's own among
    /// them): their files that find no room in a full PROTECTED are left to
    /// the names lookup, having been protected by an entry or a counted
    /// miss. A new tree's must fit: a link of one outside the tree, or a
    /// mount inside it, would be beyond that lookup.
    pub kept_trees: &'a std::collections::HashSet<u32>,
    pub proc_trees: &'a StdHashMap<u64, u32>,
    pub matches: &'a crate::subjects::Resolved,
}

/// Why [`Kernel::put_policy`] left the policy before in force.
#[derive(Debug)]
pub struct PolicyNotPut<E> {
    pub failed: PolicyStepFailed<E>,
    /// Putting back what the kernel held failed too: it holds a mix.
    pub undo: Option<Box<KernelError>>,
}

impl<E: std::fmt::Display> std::fmt::Display for PolicyNotPut<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.failed {
            PolicyStepFailed::Kernel(e) => write!(f, "{e}")?,
            PolicyStepFailed::Between(e) => write!(f, "{e}")?,
        }
        match &self.undo {
            Some(undo) => write!(f, "; putting back what the kernel held failed too: {undo}"),
            None => write!(f, "; what the kernel held is back"),
        }
    }
}

/// The step of [`Kernel::put_policy`] that failed.
#[derive(Debug)]
pub enum PolicyStepFailed<E> {
    /// Writing the new policy or switching to it.
    Kernel(Box<KernelError>),
    /// The caller's step between the switch and the commit.
    Between(E),
}

/// What a policy put in force left in the kernel beyond itself: more than
/// the policy says (the generation before; what only the policy before
/// protected), never less. Each stays until the next apply.
#[derive(Debug, Default)]
pub struct PolicyLeftovers {
    pub generation_before: Option<KernelError>,
    pub protection_before: Option<KernelError>,
    /// Tree files that found no room in PROTECTED even then: counted as
    /// misses, decided by their names until a walk finds room.
    pub protected_missed: usize,
}

impl Kernel {
    /// Puts `staged` in force as one change. Every moment is at least as
    /// strict as one of the two policies: the new protection joins the old
    /// and the rules are written under the generation not in force; one
    /// word flips the generation and the matchers follow; then `between`
    /// runs (the daemon persists the bundle there), and only if it succeeds
    /// does the generation before go and what only it protected leave. A
    /// failure up to `between` puts back what the kernel held.
    pub fn put_policy<E>(
        &mut self,
        staged: &StagedPolicy,
        between: impl FnOnce() -> Result<(), E>,
    ) -> Result<PolicyLeftovers, PolicyNotPut<E>> {
        let mut change = self
            .begin_policy(staged)
            .map_err(|e| PolicyNotPut { failed: PolicyStepFailed::Kernel(Box::new(e)), undo: None })?;
        let matches = staged.matches;
        let switched = self
            .switch_policy(&mut change, &matches.entries, &matches.cgroup_paths, matches.kinds)
            .map_err(|e| PolicyStepFailed::Kernel(Box::new(e)))
            .and_then(|()| between().map_err(PolicyStepFailed::Between));
        if let Err(failed) = switched {
            return Err(PolicyNotPut { failed, undo: self.abort_policy(change).err().map(Box::new) });
        }
        let generation_before = self.commit_policy(change, staged.rules).err();
        let (protected_missed, protection_before) = match self.set_protected(staged) {
            Ok(missed) => (missed, self.set_proc_trees(staged.proc_trees).err()),
            Err((missed, e)) => (missed, Some(e)),
        };
        Ok(PolicyLeftovers { generation_before, protection_before, protected_missed })
    }

    /// Begins a policy change. The new policy's protection joins the old
    /// (an entry that fully protects an inode is not made an ancestor-only
    /// one), and `profiles` and `rules` are written under the generation
    /// not in force, which nothing reads yet: while the change is open the
    /// old rules decide, with at least the old protection. On failure,
    /// what was written is undone.
    fn begin_policy(&mut self, staged: &StagedPolicy) -> Result<PolicyChange, KernelError> {
        let before = self.settings.get(&SETTINGS_INDEX, 0).map_err(map_err("SETTINGS"))?.active_generation();
        let mut change = PolicyChange {
            before,
            written: before ^ 1,
            flipped: false,
            protected_before: Vec::new(),
            proc_trees_before: Vec::new(),
            matches_before: None,
        };
        match self.write_change(&mut change, staged) {
            Ok(()) => Ok(change),
            Err(e) => {
                if let Err(undo) = self.abort_policy(change) {
                    return Err(KernelError::Undo { error: Box::new(e), undo: Box::new(undo) });
                }
                Err(e)
            }
        }
    }

    fn write_change(&mut self, change: &mut PolicyChange, staged: &StagedPolicy) -> Result<(), KernelError> {
        // What the names lookup of a full map stands on goes in first, and
        // must; a tree's file that finds no room is left to that lookup.
        let left_to_names = |key: &FileKey, entry: &ProtectedEntry| left_to_names(key, entry, staged);
        let (needed, tree_files): (Vec<_>, Vec<_>) = staged.inodes.iter().partition(|(k, e)| !left_to_names(k, e));
        let mut missed = 0;
        self.raise_file_state()?;
        for (key, entry) in needed.into_iter().chain(tree_files) {
            let old = self.protected.get(key, 0).ok();
            if old.is_some_and(|old| old.flags == 0 && entry.flags & warrant_common::PROTECTED_ANCESTOR != 0) {
                continue;
            }
            match self.protected.insert(key, entry, 0) {
                Ok(()) => change.protected_before.push((*key, old)),
                // Tried again once the policy before has left.
                Err(e) if no_room(&e) && left_to_names(key, entry) => missed += 1,
                Err(e) if no_room(&e) => return Err(KernelError::ProtectedFull { what: needs_entry(key, entry) }),
                Err(e) => return Err(map_err("PROTECTED")(e)),
            }
        }
        self.raise_file_state()?;
        // Counted before the switch, so that the names lookup is on while
        // the new policy decides; a later walk settles them.
        if missed > 0 {
            self.note_protected_misses(missed)?;
        }
        let mut trees = self.hash_map::<u64, u32>("PROC_TREES")?;
        for (key, tree) in staged.proc_trees {
            change.proc_trees_before.push((*key, trees.get(key, 0).ok()));
            trees.insert(key, tree, 0).map_err(map_err("PROC_TREES"))?;
        }
        // Leftovers of an earlier change that could not be cleaned up.
        self.remove_generation(change.written)?;
        for (id, entry) in staged.profiles {
            self.profiles.insert(profile_key(change.written, *id), entry, 0).map_err(map_err("PROFILES"))?;
        }
        for (key, rule) in staged.rules {
            let key = TargetKey { generation: change.written, ..*key };
            self.rules.insert(key, rule, 0).map_err(map_err("RULES"))?;
        }
        let written = change.written as usize;
        self.write_settings(|settings| settings.policy_versions[written] = staged.version)
    }

    /// Puts the written policy in force: one settings word flips the
    /// generation, then the matchers follow (`set_matches`).
    fn switch_policy(
        &mut self,
        change: &mut PolicyChange,
        entries: &StdHashMap<MatchKey, u32>,
        cgroup_paths: &StdHashMap<u64, u32>,
        kinds: u32,
    ) -> Result<(), KernelError> {
        change.matches_before = Some(self.matches()?);
        let written = change.written;
        self.write_settings(|settings| settings.generation = written as u32)?;
        change.flipped = true;
        self.set_matches(entries, cgroup_paths, kinds)
    }

    /// Keeps a switched change: rate windows start afresh (rule indexes
    /// name other rules now) and the generation before leaves. What only
    /// the policy before protected is the caller's to release
    /// (`set_protected`, `set_proc_trees`).
    fn commit_policy(
        &mut self,
        change: PolicyChange,
        rules: &StdHashMap<TargetKey, RuleEntry>,
    ) -> Result<(), KernelError> {
        let indexes = rules.values().map(|r| r.rule_index + 1).max().unwrap_or(0).min(self.rates.len());
        for index in 0..indexes {
            self.rates.set(index, RateWindow::default(), 0).map_err(map_err("RATES"))?;
        }
        self.remove_generation(change.before)
    }

    /// Undoes what `change` did, the old rules first and the protection
    /// last, every step tried; the first error is returned.
    fn abort_policy(&mut self, change: PolicyChange) -> Result<(), KernelError> {
        let mut result = Ok(());
        let mut step = |outcome: Result<(), KernelError>| {
            if result.is_ok() {
                result = outcome;
            }
        };
        if change.flipped {
            let before = change.before;
            step(self.write_settings(|settings| settings.generation = before as u32));
        }
        if let Some(matches) = &change.matches_before {
            step(self.set_matches(&matches.entries, &matches.cgroup_paths, matches.kinds));
        }
        step(self.remove_generation(change.written));
        step(self.raise_file_state());
        for (key, old) in change.protected_before.iter().rev() {
            step(match old {
                Some(entry) => self.protected.insert(key, entry, 0).map_err(map_err("PROTECTED")),
                None => remove_key(&mut self.protected, "PROTECTED", key),
            });
        }
        step(self.raise_file_state());
        match self.hash_map::<u64, u32>("PROC_TREES") {
            Ok(mut trees) => {
                for (key, old) in change.proc_trees_before.iter().rev() {
                    step(match old {
                        Some(tree) => trees.insert(key, tree, 0).map_err(map_err("PROC_TREES")),
                        None => remove_key(&mut trees, "PROC_TREES", key),
                    });
                }
            }
            Err(e) => step(Err(e)),
        }
        result
    }

    /// Removes every rule and profile of `generation`.
    fn remove_generation(&mut self, generation: u8) -> Result<(), KernelError> {
        remove_where(&mut self.rules, "RULES", |key, _| key.generation == generation)?;
        remove_where(&mut self.profiles, "PROFILES", |key, _| (key >> 32) as u8 == generation)
    }

    /// Makes `trees` (path hash -> tree id) the protected trees under /proc.
    fn set_proc_trees(&mut self, trees: &StdHashMap<u64, u32>) -> Result<(), KernelError> {
        replace_entries(&mut self.hash_map("PROC_TREES")?, "PROC_TREES", trees, |_, _| false)
    }

    /// Whether the kernel protects file `key` (a tree's file or directory,
    /// or one of Warrant's own; not a directory above a tree).
    pub fn protects(&self, key: &FileKey) -> bool {
        self.protected.get(key, 0).is_ok_and(|entry| entry.flags & warrant_common::PROTECTED_ANCESTOR == 0)
    }

    /// Makes `entries` the exec-time matches and tells the kernel which
    /// kinds to look up. Cgroup entries the kernel added for cgroups made
    /// under a matched one stay while that profile still matches cgroups.
    pub fn set_matches(
        &mut self,
        entries: &StdHashMap<MatchKey, u32>,
        cgroup_paths: &StdHashMap<u64, u32>,
        kinds: u32,
    ) -> Result<(), KernelError> {
        replace_entries(&mut self.hash_map("CGROUP_PATHS")?, "CGROUP_PATHS", cgroup_paths, |_, _| false)?;
        let cgroup_profiles: std::collections::HashSet<u32> =
            entries.iter().filter(|(k, _)| k.kind == match_kind::CGROUP).map(|(_, p)| *p).collect();
        replace_entries(&mut self.hash_map("MATCHES")?, "MATCHES", entries, |key, profile| {
            key.kind == match_kind::CGROUP && cgroup_profiles.contains(profile)
        })?;
        self.write_settings(|settings| settings.match_kinds = kinds)
    }

    /// The exec-time matchers in the kernel now.
    fn matches(&mut self) -> Result<Matches, KernelError> {
        let kinds = self.settings.get(&SETTINGS_INDEX, 0).map_err(map_err("SETTINGS"))?.match_kinds;
        let entries = self.hash_map::<MatchKey, u32>("MATCHES")?.iter().collect::<Result<_, _>>();
        let entries = entries.map_err(map_err("MATCHES"))?;
        let cgroup_paths = self.hash_map::<u64, u32>("CGROUP_PATHS")?.iter().collect::<Result<_, _>>();
        let cgroup_paths = cgroup_paths.map_err(map_err("CGROUP_PATHS"))?;
        Ok(Matches { entries, cgroup_paths, kinds })
    }
}
