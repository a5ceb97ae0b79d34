//! The policies a kernel decision may name. A decision event carries the
//! version of the policy the kernel read; one read from the ring after a
//! reload (or after a restart) must be written with that policy's rule
//! text, never the one in force now. The last [`KEPT`] versions are kept in
//! memory and as bundle files in the state directory; a version older than
//! those is said to be unknown rather than guessed.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use crate::{durable::write_atomic, policy::CompiledPolicy, trust::Envelope};

/// Versions kept besides the one in force.
pub(super) const KEPT: usize = 8;

#[derive(Default)]
pub(super) struct EarlierPolicies {
    by_version: BTreeMap<u64, CompiledPolicy>,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("policies")
}

fn file_of(state_dir: &Path, version: u64) -> PathBuf {
    dir(state_dir).join(format!("{version:020}.bundle"))
}

impl EarlierPolicies {
    /// The kept bundles of the state directory other than version
    /// `current`. They were verified when they were accepted, and the
    /// directory is one of Warrant's own, which subjects cannot write.
    pub(super) fn load(config: &crate::config::Config, current: u64) -> Self {
        let mut kept = Self::default();
        let Ok(entries) = fs::read_dir(dir(&config.state_dir)) else { return kept };
        for entry in entries.flatten() {
            let compiled = fs::read_to_string(entry.path())
                .ok()
                .and_then(|text| Envelope::parse(&text).ok()?.unverified_text())
                .and_then(|text| super::compile_here(config, &text, &crate::policy::ThisHost).ok());
            if let Some(compiled) = compiled.filter(|c| c.version() != current) {
                kept.by_version.insert(compiled.version(), compiled);
            }
        }
        kept.prune();
        kept
    }

    /// Keeps `bundle`, accepted as `version`, on disk for later restarts.
    pub(super) fn persist(state_dir: &Path, version: u64, bundle: &str) -> std::io::Result<()> {
        fs::create_dir_all(dir(state_dir))?;
        write_atomic(&file_of(state_dir, version), bundle.as_bytes())?;
        // The one in force and KEPT before it; older files go.
        let mut files: Vec<PathBuf> = fs::read_dir(dir(state_dir))?.flatten().map(|e| e.path()).collect();
        files.sort();
        for old in files.iter().rev().skip(KEPT + 1) {
            let _ = fs::remove_file(old);
        }
        Ok(())
    }

    /// `replaced`, no longer in force, stays nameable.
    pub(super) fn keep(&mut self, replaced: CompiledPolicy) {
        self.by_version.insert(replaced.version(), replaced);
        self.prune();
    }

    pub(super) fn get(&self, version: u64) -> Option<&CompiledPolicy> {
        self.by_version.get(&version)
    }

    fn prune(&mut self) {
        while self.by_version.len() > KEPT {
            self.by_version.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;

    fn bundle(version: u64) -> String {
        let demo =
            include_str!("../../../policies/demo.toml").replacen("version = 1", &format!("version = {version}"), 1);
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        Envelope::sign(crate::trust::POLICY_PAYLOAD_TYPE, demo.as_bytes(), &[key]).to_json()
    }

    fn compiled(version: u64) -> CompiledPolicy {
        let text = Envelope::parse(&bundle(version)).unwrap().unverified_text().unwrap();
        policy::compile(policy::Policy::parse(&text).unwrap()).unwrap()
    }

    #[test]
    fn the_last_versions_are_kept_across_a_restart_and_older_ones_are_unknown() {
        let state = std::env::temp_dir().join(format!("warrant-versions-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let mut earlier = EarlierPolicies::default();
        for version in 1..=12 {
            EarlierPolicies::persist(&state, version, &bundle(version)).unwrap();
            if version < 12 {
                earlier.keep(compiled(version));
            }
        }
        // In memory: the 8 before the one in force (12).
        assert!(earlier.get(3).is_none());
        assert_eq!(earlier.get(4).map(CompiledPolicy::version), Some(4));
        assert_eq!(earlier.get(11).map(CompiledPolicy::version), Some(11));
        // After a restart: the same, read back from the state directory.
        let config = crate::config::Config { state_dir: state.clone(), ..Default::default() };
        let restarted = EarlierPolicies::load(&config, 12);
        assert!(restarted.get(3).is_none() && restarted.get(12).is_none());
        assert!((4..=11).all(|v| restarted.get(v).is_some()));
        assert_eq!(fs::read_dir(dir(&state)).unwrap().count(), KEPT + 1);
        let _ = fs::remove_dir_all(&state);
    }
}
