//! Applying a policy bundle and rotating the trust root: verified, walked,
//! written to the kernel maps, persisted and recorded; refusals audited.

use super::*;
use crate::kernel::TracedTasks;

impl State {
    /// Verifies and applies a bundle; on any refusal the policy in force stays.
    /// The kernel's protected inodes for policy trees `trees` and Warrant's
    /// own files, with the tree ids they belong to.
    pub(super) fn protected_inodes(
        &self,
        trees: &[String],
    ) -> Result<(std::collections::HashMap<FileKey, ProtectedEntry>, HashSet<u32>), protect::ProtectError> {
        let own = self.config.own_paths();
        let roots = trees.iter().map(Path::new).chain(own.iter().map(PathBuf::as_path));
        for path in protect::on_overlayfs(roots) {
            warn!(path = %path.display(), "protected path is on overlayfs, where Warrant cannot protect files");
        }
        let mut inodes = protect::inodes(trees, &own)?;
        inodes.extend(self.config.pod_protected());
        Ok((inodes, protect::tree_ids(trees)))
    }

    /// Settles PROTECTED's misses up to `missed` (read before a walk whose
    /// every file went in): files with no entry are decided by their
    /// entries alone again. Recorded when a `protected.full` was (the
    /// load's own miss, one at every start, is not).
    pub(super) fn settle_protected_misses(&mut self, missed: Result<u64, crate::kernel::KernelError>) {
        match missed.and_then(|missed| self.kernel.settle_protected_misses(missed).map(|settled| (missed, settled))) {
            Ok((missed, true)) => {
                info!("PROTECTED's misses settled: every protected file has its entry again");
                if self.protected_misses_recorded > 1 {
                    self.record("protected.settled", json!({"missed_total": missed}));
                }
            }
            Ok((_, false)) => {}
            Err(e) => warn!("cannot settle PROTECTED's misses: {}", error_chain(&e)),
        }
    }

    /// Adds the inodes of policy `trees` and Warrant's `own` paths to the
    /// protected set, for a file the daemon itself just replaced (`what`).
    pub(super) fn protect_new_inodes(&mut self, trees: &[String], own: &[PathBuf], what: &str) {
        let added = protect::inodes(trees, own)
            .map_err(|e| e.to_string())
            .and_then(|entries| self.kernel.add_protected(&entries).map_err(|e| e.to_string()));
        if let Err(e) = added {
            error!("cannot protect {what}: {e}");
        }
    }

    /// Makes subjects of running processes the policy matches: the kernel
    /// only sees execs and cgroup moves from now on.
    pub(super) fn pick_up(&mut self, entries: &std::collections::HashMap<warrant_common::MatchKey, u32>) {
        // Twice: a match may fork between the walk and its pickup; its child
        // matches the same way and is found by the second walk.
        for _ in 0..2 {
            let found: Vec<_> = subjects::running_matches(entries, std::process::id())
                .into_iter()
                .filter(|found| self.kernel.subject_profile(found.pid).is_none())
                .collect();
            if found.is_empty() {
                break;
            }
            // Every match is noted before any is marked: what one makes
            // while another is being marked is looked at too.
            let handles: Vec<_> = found
                .iter()
                .map(|found| {
                    if let Err(e) = self.kernel.note_pickup(found.pid, found.profile_id) {
                        warn!(pid = found.pid, "cannot note the processes a process being picked up makes: {e}");
                    }
                    held::handle(found.pid)
                })
                .collect();
            // Every match is marked before any is looked at: one walk of
            // the traced tasks, after the last mark, serves them all (a
            // subject makes no new attachment outside its profile).
            let marked: Vec<_> = found
                .into_iter()
                .zip(handles)
                .filter_map(|(found, handle)| {
                    let own_threads_marked = self.mark_picked_up(&found)?;
                    Some((found.pid, handle, own_threads_marked, self.profile_name(found.profile_id)))
                })
                .collect();
            let traced = self.kernel.traced_tasks();
            for (pid, handle, own_threads_marked, profile) in marked {
                self.settle_pickup(pid, handle, own_threads_marked, &profile, &traced);
            }
            self.settle_pickup_children();
        }
    }

    fn profile_name(&self, profile_id: u32) -> String {
        self.policy.as_ref().map(|p| p.profile_name(profile_id)).unwrap_or_default()
    }

    /// Marks a running process the policy matches: whether all its threads
    /// were, or None if it is no subject (gone, already one, or not marked;
    /// its pickup's noting ended).
    fn mark_picked_up(&mut self, found: &subjects::Pickup) -> Option<bool> {
        let profile = self.profile_name(found.profile_id);
        let marked = match self.kernel.mark_process(found.pid, found.profile_id) {
            Ok(0) => None,
            Ok(threads) => {
                let exe = exe_of(found.pid);
                info!(pid = found.pid, profile, by = found.by, "running process picked up as a subject");
                self.record(
                    "subject.picked_up",
                    json!({"pid": found.pid, "exe": exe, "profile": profile, "by": found.by, "threads": threads}),
                );
                Some(true)
            }
            Err(e) => {
                warn!(pid = found.pid, "cannot pick up a matching process: {e}");
                // Its leader may be marked all the same.
                self.kernel.subject_profile(found.pid).is_some().then_some(false)
            }
        };
        if marked.is_none() {
            let _ = self.kernel.end_pickup(found.pid);
        }
        marked
    }

    /// After process `pid` was picked up as a subject of `profile`: stops
    /// it if it holds what the pickup cannot take back (`traced`: a walk of
    /// the traced tasks made after it was marked), and ends the noting of
    /// the processes it makes. Those made before are looked at by
    /// [`Self::settle_pickup_children`].
    pub(super) fn settle_pickup(
        &mut self,
        pid: u32,
        handle: std::io::Result<OwnedFd>,
        own_threads_marked: bool,
        profile: &str,
        traced: &Result<TracedTasks, String>,
    ) {
        self.stop_if_holding(pid, handle, own_threads_marked, profile, traced);
        if let Err(e) = self.kernel.end_pickup(pid) {
            warn!(pid, "cannot end a pickup: {e}");
        }
    }

    /// Looks at every process made during a pickup the way the process
    /// picked up was (each keeps what its parent held), until a pass finds
    /// none (eight at most): one made while a pass ran is found by the next.
    pub(super) fn settle_pickup_children(&mut self) {
        for _ in 0..8 {
            let children = match self.kernel.pickup_children() {
                Ok(children) if !children.is_empty() => children,
                Ok(_) => return,
                Err(e) => return warn!("cannot list the processes made during a pickup: {e}"),
            };
            // Each made by a thread not yet marked is marked now; one walk
            // of the traced tasks after the last mark serves them all.
            let marked: Vec<_> = children
                .into_iter()
                .map(|(child, pickup)| {
                    let handle = held::handle(child);
                    let marked = self.kernel.subject_profile(child).is_some()
                        || self.kernel.mark_process(child, pickup.profile_id).is_ok();
                    (child, handle, marked, self.profile_name(pickup.profile_id))
                })
                .collect();
            let traced = self.kernel.traced_tasks();
            for (child, handle, marked, name) in marked {
                self.stop_if_holding(child, handle, marked, &name, &traced);
                if let Err(e) = self.kernel.forget_pickup_child(child) {
                    warn!(pid = child, "cannot forget a process made during a pickup: {e}");
                }
            }
        }
    }

    /// Stops process `pid`, just picked up as a subject of `profile`, if it
    /// holds what the pickup cannot take back (see `held`), and records it.
    pub(super) fn stop_if_holding(
        &mut self,
        pid: u32,
        handle: std::io::Result<OwnedFd>,
        own_threads_marked: bool,
        profile: &str,
        traced: &Result<TracedTasks, String>,
    ) {
        let profile_id = self.kernel.subject_profile(pid);
        let mut holdings = held::untakeable(
            pid,
            |key| self.kernel.protects(key),
            |tgid| profile_id.is_some() && self.kernel.subject_profile(tgid) == profile_id,
        )
        .unwrap_or_else(|reason| vec![held::Holding::Unreadable { reason }]);
        match traced {
            Ok(traced) => holdings.extend(
                traced
                    .of(pid)
                    .filter(|&(tgid, _)| profile_id.is_none() || self.kernel.subject_profile(tgid) != profile_id)
                    .map(|(tgid, tid)| held::Holding::Tracee { tgid, tid }),
            ),
            Err(reason) => holdings.push(held::Holding::Unreadable { reason: format!("the traced tasks: {reason}") }),
        }
        // Fail closed: a thread left unmarked would act unconfined.
        if !own_threads_marked && std::path::Path::new(&format!("/proc/{pid}")).exists() {
            holdings.push(held::Holding::Unmarked);
        }
        if holdings.is_empty() {
            return;
        }
        let stopped = handle.and_then(|pidfd| held::stop(&pidfd));
        let reasons: Vec<String> = holdings.iter().map(ToString::to_string).collect();
        warn!(pid, profile, held = ?reasons, "a picked-up subject held what confinement cannot take back: stopped");
        self.record(
            "subject.stopped",
            json!({"pid": pid, "exe": exe_of(pid), "profile": profile, "held": reasons,
                   "stopped": stopped.as_ref().is_ok(), "error": stopped.err().map(|e| e.to_string())}),
        );
    }

    /// Verifies and applies a bundle. Whichever way the bundle came (`via`:
    /// control, bundle_dir FILE, restore, config bundle), the application
    /// or the refusal is audited with it.
    pub(super) fn apply_bundle(
        &mut self,
        bundle: &str,
        restoring: bool,
        via: &str,
    ) -> Result<reply::PolicyApplied, BundleRefused> {
        self.try_apply_bundle(bundle, restoring, via).inspect_err(|refused| {
            // As the refused bundle claims it: it may be unsigned.
            let version = Envelope::parse(bundle)
                .ok()
                .and_then(|e| e.unverified_text())
                .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
                .and_then(|table| table.get("version")?.as_integer());
            let reason = error_chain(refused);
            self.record(refused.audit_kind(), json!({"version": version, "via": via, "reason": reason}));
        })
    }

    fn try_apply_bundle(
        &mut self,
        bundle: &str,
        restoring: bool,
        via: &str,
    ) -> Result<reply::PolicyApplied, BundleRefused> {
        if !restoring && let Some(unsettled) = self.unsettled_refusal("bundle") {
            return Err(unsettled.into());
        }
        let started = std::time::Instant::now();
        let envelope = Envelope::parse(bundle).map_err(BundleRefused::Envelope)?;
        let (payload, signers) = self.verify_bundle(&envelope, restoring).map_err(BundleRefused::Envelope)?;
        let text = String::from_utf8(payload).map_err(|_| BundleRefused::NotUtf8)?;
        let compiled =
            compile_here(&self.config, &text, &marks::MarkedNames { state: self }).map_err(BundleRefused::Policy)?;
        let accepted = self.last_version();
        let version = compiled.version();
        if version < accepted || (version == accepted && !restoring) {
            return Err(BundleRefused::NotNewer { version, accepted });
        }
        // The bundle in force, restored at start, stays in force past its
        // expiry (never fail open); check_expiry says so loudly.
        if compiled.expired_at(now_unix()) && !restoring {
            return Err(BundleRefused::Expired { version, expires: compiled.policy.expires.clone() });
        }
        let mut phases = BTreeMap::new();
        // `verify` is everything before: the signature, the parse and compile.
        let mut phase_started = started;
        let mut phase = |name: &str| {
            phases.insert(name.to_owned(), phase_started.elapsed().as_secs_f64() * 1e3);
            phase_started = std::time::Instant::now();
        };
        phase("verify");
        // Walked before anything changes, so a refusal leaves the policy in force whole.
        // PROTECTED's misses before the walk: a commit of all it found settles them.
        let missed = self.kernel.protected_misses();
        let staged = self.stage(&compiled).map_err(BundleRefused::Walk)?;
        phase("walk");
        // All or nothing: on failure the kernel and the disk hold what they held.
        let committed = self.commit(&compiled, &staged, bundle, restoring)?;
        phase("commit");
        if committed.settles {
            self.settle_protected_misses(missed);
        }
        let state_dir = self.config.state_dir.clone();
        // Kept so that its decisions, read after a later reload or restart,
        // name its rules; without it they say the version is unknown.
        if let Err(e) = versions::EarlierPolicies::persist(&state_dir, version, bundle) {
            warn!(version, "cannot keep a copy of the bundle for naming its decisions later: {e}");
        }
        let signer_ids: Vec<String> = signers.iter().map(crate::keys::PublicKey::id).collect();
        let profiles: Vec<String> = compiled.profile_ids.keys().cloned().collect();
        let mut unresolved = compiled.unresolved.clone();
        unresolved.extend(staged.matches.unresolved.iter().cloned());
        for rule in &unresolved {
            warn!(version, "{rule}; the rule covers nothing on this host");
        }
        let protected_written = compiled.protected_written.clone();
        for path in &protected_written {
            warn!(version, "{path}");
        }
        if let Some(replaced) = self.policy.replace(compiled) {
            self.earlier_policies.keep(replaced);
        }
        self.expiry_reported = false;
        self.drop_orphan_warrants();
        self.resolve_mount_roots();
        self.record(
            "policy.applied",
            json!({"version": version, "via": via, "signers": signer_ids, "profiles": profiles,
                   "unresolved": unresolved, "protected_written": protected_written,
                   "protected_missed": committed.protected_missed}),
        );
        phase("record");
        self.pick_up(&staged.matches.entries);
        phase("pick_up");
        let protected_inodes = Some(staged.inodes.len());
        // What the walk of the trees, the staged maps and the pickups' reads
        // of /proc took is freed: give it back.
        drop(staged);
        give_back_freed_memory();
        phase("give_back");
        // From the bundle received to every map written, persisted and the
        // running processes picked up: what `cargo xtask bench` reports.
        let apply_ms = started.elapsed().as_secs_f64() * 1e3;
        info!(version, apply_ms = apply_ms.round(), phases_ms = %serde_json::to_string(&phases).unwrap_or_default(), "policy applied");
        Ok(reply::PolicyApplied {
            version,
            profiles,
            apply_ms,
            apply_phases_ms: phases,
            protected_inodes,
            protected_missed: committed.protected_missed,
        })
    }

    /// A bundle's payload and signers, if the trust chain verifies it. A new
    /// bundle needs the root in force; the persisted one (`restoring`) was
    /// accepted under a root that may since have rotated.
    fn verify_bundle(
        &self,
        envelope: &Envelope,
        restoring: bool,
    ) -> Result<(Vec<u8>, Vec<crate::keys::PublicKey>), crate::trust::TrustError> {
        let roots = if restoring { &self.trust_chain[..] } else { &self.trust_chain[self.trust_chain.len() - 1..] };
        roots
            .iter()
            .rev()
            .map(|root| envelope.verify(POLICY_PAYLOAD_TYPE, &root.keys, root.threshold))
            .reduce(|newest, older| newest.or(older))
            .expect("the trust chain is never empty")
    }

    /// Whether `bundle`, the persisted policy, says the configured keys are
    /// the host's: the chain verifies it (its signature only: a bundle that
    /// no longer applies here for another reason, a tree gone, still tells),
    /// and, with no rotation since, every configured key signed it (a key
    /// added beside the host's would verify as well).
    pub(super) fn persisted_signed_by_configured(&self, bundle: &str) -> bool {
        let Ok(envelope) = Envelope::parse(bundle) else { return false };
        let Ok((_, signers)) = self.verify_bundle(&envelope, true) else { return false };
        let signed: BTreeSet<String> = signers.iter().map(crate::keys::PublicKey::id).collect();
        self.trust_chain.len() > 1 || self.trust_chain[0].key_ids().iter().all(|id| signed.contains(id))
    }

    /// Accepts a new trust root signed by a threshold of the one in force.
    pub(super) fn rotate_trust(&mut self, text: &str) -> Result<reply::TrustRotated, TrustRefused> {
        let refused = |state: &mut Self, version: Option<u64>, refused: TrustRefused| {
            let reason = error_chain(&refused);
            let mut record = json!({"via": "control", "reason": reason});
            if let Some(version) = version {
                record["version"] = version.into();
            }
            state.record("trust.refused", record);
            refused
        };
        if let Some(unsettled) = self.unsettled_refusal("trust root") {
            return Err(refused(self, None, unsettled.into()));
        }
        let current = self.trust_chain.last().expect("the trust chain is never empty").clone();
        let rotated = Envelope::parse(text)
            .map_err(trust_root::TrustRootError::from)
            .and_then(|envelope| current.rotate(&envelope));
        let root = match rotated {
            Ok(root) => root,
            Err(e) => return Err(refused(self, None, e.into())),
        };
        let dir = trust_roots_dir(&self.config.state_dir);
        let persisted = fs::create_dir_all(&dir)
            .and_then(|()| write_atomic(&dir.join(format!("{:08}.bundle", root.version)), text.as_bytes()));
        if let Err(source) = persisted {
            let not_persisted = TrustRefused::NotPersisted { dir: dir.display().to_string(), source };
            return Err(refused(self, Some(root.version), not_persisted));
        }
        let summary = reply::TrustRotated {
            version: root.version,
            threshold: root.threshold,
            keys: root.key_ids(),
            previous_version: current.version,
        };
        self.record_reply("trust.rotated", &summary);
        info!(version = root.version, "trust root rotated");
        self.trust_chain.push(root);
        Ok(summary)
    }

    /// Pins version 0 of the chain (the configuration's keys, at a host's
    /// first start or upgrade), audited.
    pub(super) fn pin_trust_root(&mut self) {
        let root = self.trust_chain[0].clone();
        let path = trust_pin::pin_path(&self.config.state_dir).display().to_string();
        match trust_pin::pin(&self.config.state_dir, &root) {
            Ok(()) => {
                let summary = json!({"threshold": root.threshold, "keys": root.key_ids(), "file": path});
                self.record("trust.pinned", summary);
            }
            Err(e) => {
                let reason = error_chain(&e);
                error!("cannot pin trust root v0: {reason}");
                self.record("trust.not_pinned", json!({"file": path, "reason": reason}));
            }
        }
    }

    /// Says, loudly, that the configuration's keys wait for root's word.
    pub(super) fn record_unsettled(&mut self, config: &TrustRoot, why: &str) {
        let in_force = &self.trust_chain[0];
        error!(
            configured = ?config.key_ids(),
            in_force = ?in_force.key_ids(),
            "{why}: no new bundle or trust root is accepted until root runs `warrant trust accept-config` \
             (after checking the configured keys) or puts the configuration back"
        );
        let summary = json!({"reason": why,
                             "configured": {"threshold": config.threshold, "keys": config.key_ids()},
                             "in_force": {"threshold": in_force.threshold, "keys": in_force.key_ids()}});
        self.record("trust.unsettled", summary);
    }

    /// Root's word that the configuration's keys, as read at start, are the
    /// ones to trust: they are pinned as version 0 and the persisted
    /// rotations replayed from them (one that no longer follows ends the
    /// chain, as at start). The policy in force stays. Root names the keys
    /// it checked (`checked`, ids): anything else waiting is not pinned.
    pub(super) fn accept_config_trust(
        &mut self,
        checked: &[String],
        threshold: usize,
    ) -> Result<reply::ConfigTrustAccepted, TrustRefused> {
        let Some(root) = self.trust_unsettled.clone() else {
            return Err(TrustRefused::NothingWaiting);
        };
        let waiting: BTreeSet<String> = root.key_ids().into_iter().collect();
        let named: BTreeSet<String> = checked.iter().map(|id| id.trim().to_string()).collect();
        if waiting != named || threshold != root.threshold {
            let refused = TrustRefused::NotNamed { waiting_threshold: root.threshold, waiting, threshold, named };
            self.record("trust.refused", json!({"via": "accept-config", "reason": refused.to_string()}));
            return Err(refused);
        }
        trust_pin::pin(&self.config.state_dir, &root)?;
        self.trust_unsettled = None;
        for stamp in std::mem::take(&mut self.bundles_awaiting_trust) {
            self.seen_bundles.remove(&stamp);
        }
        let previous = self.trust_chain[0].key_ids();
        let (chain, broken) = load_trust_chain(&self.config, root);
        self.trust_chain = chain;
        let current = self.trust_chain.last().expect("the trust chain is never empty");
        let summary = reply::ConfigTrustAccepted {
            keys: self.trust_chain[0].key_ids(),
            threshold: self.trust_chain[0].threshold,
            previous_keys: previous,
            version_in_force: current.version,
        };
        self.record_reply("trust.config_accepted", &summary);
        if let Some((file, reason)) = broken {
            self.record("trust.refused", json!({"via": format!("restore {file}"), "reason": reason}));
        }
        Ok(summary)
    }

    /// Why a new bundle or trust root is refused now, if it is: the
    /// configuration's keys are not settled.
    fn unsettled_refusal(&self, what: &'static str) -> Option<Unsettled> {
        self.trust_unsettled.as_ref().map(|config| Unsettled { what, keys: config.key_ids() })
    }

    /// Warrants whose approver is no longer an RI for their action go.
    pub(super) fn drop_orphan_warrants(&mut self) {
        let Some(policy) = &self.policy else { return };
        let mut orphans = Vec::new();
        for (index, w) in &self.warrants {
            if w.revoked {
                continue;
            }
            let still = policy.responsibles.iter().any(|(ri, key)| {
                ri.name == w.approval.approver && policy.approver_for(key, &w.approval.action).is_some()
            });
            if !still {
                orphans.push(*index);
            }
        }
        for index in orphans {
            if let Err(e) = self.revoke_index(index, "approver no longer a Responsible Individual in policy") {
                let reason = error_chain(&e);
                error!(index, "cannot revoke a warrant whose approver the policy dropped: {reason}");
            }
        }
    }
}
