//! Putting a compiled policy in force as one transaction: the kernel's maps,
//! the daemon's memory and the persisted bundle change together or not at
//! all. A failure half-way puts back what the kernel and the disk held.
//!
//! The order keeps every moment at least as strict as one of the two
//! policies (`Kernel::put_policy`): the new policy's protected inodes and
//! /proc trees join the old ones' and its rules are written under the
//! generation not in force; one word flips the generation and the matchers
//! follow; the bundle is persisted; only then does the old generation go
//! and what only the old policy protected leave.
//! One gap remains: between the flip and the last matcher written, an exec
//! is matched by the old matchers under the new rules (MATCHES has no
//! generation).

use super::*;

/// What the kernel needs of a policy besides its rules, walked and resolved
/// before any map changes: a refusal at this stage changes nothing.
pub(super) struct KernelPolicy {
    version: u64,
    pub(super) inodes: HashMap<FileKey, ProtectedEntry>,
    trees: HashSet<u32>,
    /// The roots whose entries must fit (`protect::roots_needing_entries`).
    roots: HashSet<FileKey>,
    proc_trees: HashMap<u64, u32>,
    pub(super) matches: subjects::Resolved,
}

/// What [`State::commit`] left of PROTECTED: the tree files that found no
/// room (decided by their names meanwhile), and whether the walk's find may
/// settle the misses counted before it (not if setting the protection
/// failed part-way).
pub(super) struct Committed {
    pub(super) protected_missed: usize,
    pub(super) settles: bool,
}

impl State {
    /// Walks `compiled`'s protected trees and resolves its matchers.
    pub(super) fn stage(&self, compiled: &CompiledPolicy) -> Result<KernelPolicy, protect::ProtectError> {
        let (inodes, trees) = self.protected_inodes(&compiled.policy.protect)?;
        let mut roots = protect::roots_needing_entries(&compiled.policy.protect, &self.config.own_paths(), &inodes);
        roots.extend(self.config.pod_protected().map(|(key, _)| key));
        Ok(KernelPolicy {
            version: compiled.version(),
            inodes,
            trees,
            roots,
            proc_trees: protect::proc_trees(&compiled.policy.protect),
            matches: subjects::resolve(&compiled.matchers),
        })
    }

    /// Puts `compiled` (staged as `staged`) in the kernel and, unless it is
    /// the persisted bundle being restored, `bundle` on disk. On failure
    /// the kernel and the disk hold what they held, and the error says so;
    /// the caller replaces `self.policy` only on success.
    pub(super) fn commit(
        &mut self,
        compiled: &CompiledPolicy,
        staged: &KernelPolicy,
        bundle: &str,
        restoring: bool,
    ) -> Result<Committed, BundleRefused> {
        let kept = match &self.policy {
            Some(policy) => format!("policy v{} stays in force", policy.version()),
            None => "the kernel keeps the policy it held".to_owned(),
        };
        // The trees the kernel protects now: the policy in force's, or at a
        // start the restored one's own (the pinned maps hold it).
        let kept_trees: HashSet<u32> = match &self.policy {
            Some(policy) => protect::tree_ids(&policy.policy.protect),
            None if restoring => staged.trees.clone(),
            None => HashSet::from([SELF_TREE]),
        };
        let staged_policy = StagedPolicy {
            version: staged.version,
            profiles: &compiled.profiles,
            rules: &compiled.rules,
            inodes: &staged.inodes,
            trees: &staged.trees,
            roots: &staged.roots,
            kept_trees: &kept_trees,
            proc_trees: &staged.proc_trees,
            matches: &staged.matches,
        };
        let state_dir = &self.config.state_dir;
        let persist = || match restoring {
            true => Ok(()),
            false => persist_bundle(state_dir, bundle, staged.version),
        };
        let leftovers = self.kernel.put_policy(&staged_policy, persist).map_err(|not_put| {
            let failed = match not_put.failed {
                PolicyStepFailed::Kernel(e) => CommitError::NotLoaded(e),
                PolicyStepFailed::Between(e) => CommitError::NotPersisted(e),
            };
            match not_put.undo {
                None => BundleRefused::NotCommitted { kept, source: failed },
                Some(undo) => BundleRefused::NotPutBack { failed, undo },
            }
        })?;
        // More in the kernel than the policy says, never less.
        if let Some(e) = leftovers.generation_before {
            warn!(version = staged.version, "the generation before stays in the kernel until the next apply: {e}");
        }
        let settles = leftovers.protection_before.is_none();
        if let Some(e) = leftovers.protection_before {
            warn!(version = staged.version, "what only the policy before protected stays protected: {e}");
        }
        let protected_missed = leftovers.protected_missed;
        if protected_missed > 0 {
            warn!(
                version = staged.version,
                "{protected_missed} protected files found no room in the kernel's map (PROTECTED is full): \
                 they are decided by their names until a walk finds them room"
            );
        }
        Ok(Committed { protected_missed, settles })
    }
}

/// Persists `bundle` (its policy's `version`) as the policy in force: the
/// bundle, then its version. On any failure both files are put back as
/// they were, so that a restart applies the policy the kernel holds.
fn persist_bundle(state_dir: &Path, bundle: &str, version: u64) -> Result<(), PersistError> {
    let version_text = version.to_string();
    let files =
        [(policy_bundle_path(state_dir), bundle.as_bytes()), (version_path(state_dir), version_text.as_bytes())];
    let mut before = Vec::new();
    for (path, _) in &files {
        match fs::read(path) {
            Ok(bytes) => before.push(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => before.push(None),
            Err(source) => return Err(PersistError::Read { path: path.display().to_string(), source }),
        }
    }
    for (written, (path, bytes)) in files.iter().enumerate() {
        let Err(source) = write_atomic(path, bytes) else { continue };
        let path = path.display().to_string();
        // Even a failed write may have replaced the file (a failed fsync
        // after the rename): every file up to this one goes back.
        let undone: Vec<String> = files[..=written]
            .iter()
            .zip(&before)
            .filter_map(|((path, _), before)| {
                let put_back = match before {
                    Some(bytes) => write_atomic(path, bytes),
                    None => fs::remove_file(path).or_else(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => Ok(()),
                        _ => Err(e),
                    }),
                };
                put_back.err().map(|e| format!("{}: {e}", path.display()))
            })
            .collect();
        return Err(match undone.is_empty() {
            true => PersistError::Write { path, source },
            false => PersistError::NotUndone { path, undone: undone.join(", "), source },
        });
    }
    Ok(())
}
