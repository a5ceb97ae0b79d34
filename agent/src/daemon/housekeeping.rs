//! The 2 s tick: watched directories, audit checkpoints, ring loss, a
//! full PROTECTED and policy expiry.

use super::*;

impl State {
    /// Every 2 s: watched directories, expiry, ring loss, checkpoints,
    /// rollback notes, batched notifications, marks, the daemon's own checks.
    pub(super) fn tick(&mut self) {
        self.check_watched_dirs();
        self.check_expiry();
        self.check_lost_events();
        self.check_protected_misses();
        self.heal_protected();
        self.resolve_mount_roots();
        self.check_mount_points();
        self.checkpoint(false);
        self.note_changes();
        self.flush_requests();
        self.save_marks(false);
        self.check_not_confined();
        self.check_clock();
    }

    /// The daemon's last words: what waits is written, the end (and the
    /// task whose end it is, if one failed) recorded and checkpointed.
    pub(super) fn stop(&mut self, failed: Option<(&'static str, String)>) {
        self.flush_requests();
        self.save_marks(false);
        if let Some((task, why)) = &failed {
            error!(task, "{why}; exiting for a restart (enforcement stays pinned)");
            self.record("daemon.task_failed", json!({"task": task, "error": why}));
        }
        self.record("daemon.stopped", json!({}));
        self.checkpoint(true);
        // The pinned programs outlive this process. A process that reuses
        // its pid is told apart by its start time anyway (a daemon killed
        // outright clears nothing); this says no daemon runs at all.
        if let Err(e) = self.kernel.clear_daemon() {
            warn!("could not tell the kernel the daemon has stopped: {e}");
        }
    }

    /// Records when the wall clock drifts from the anchored one past
    /// `SKEW_REPORTED_SECS` (and when it comes back): someone set it.
    pub(super) fn check_clock(&mut self) {
        let skew = crate::clock::skew_secs();
        let skewed = skew.abs() > crate::clock::SKEW_REPORTED_SECS;
        if skewed != self.clock_skew_reported {
            self.clock_skew_reported = skewed;
            warn!(skew, "the wall clock differs from Warrant's anchored clock by {skew} s");
            self.record("clock.skew", json!({"skew_secs": skew, "validity_uses": "anchored"}));
        }
    }

    /// The kernel never makes the daemon a subject; if it ever finds itself
    /// one, it says so once (its own writes may be refused from then on).
    pub(super) fn check_not_confined(&mut self) {
        let Some(profile) = self.kernel.subject_profile(std::process::id()) else { return };
        if !self.confined_reported {
            self.confined_reported = true;
            error!(profile, "the daemon is a subject: its audit writes and maps may be refused; restart it");
            self.record("daemon.confined", json!({"profile": self.profile_label(profile)}));
        }
    }

    /// Applies new bundles from `bundle_dir` and installs warrants from
    /// `inbox_dir`, each through the same checks as the control socket.
    pub(super) fn check_watched_dirs(&mut self) {
        if let Some(dir) = self.config.bundle_dir.clone() {
            for path in new_files(&dir) {
                let Ok(meta) = fs::metadata(&path) else { continue };
                let stamp = (
                    path.clone(),
                    meta.len(),
                    meta.modified()
                        .map(|t| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0))
                        .unwrap_or(0),
                );
                if !self.seen_bundles.insert(stamp.clone()) {
                    continue;
                }
                let text = fs::read_to_string(&path);
                // The bundle in force, seen again after a restart: nothing to do.
                let in_force = fs::read_to_string(policy_bundle_path(&self.config.state_dir)).ok();
                if let (Ok(text), Some(in_force)) = (&text, &in_force)
                    && text.trim() == in_force.trim()
                {
                    continue;
                }
                let file = self.config.shown(&path);
                let outcome = match text {
                    Ok(text) => self.apply_bundle(&text, false, &format!("bundle_dir {file}")),
                    Err(e) => {
                        let refused = BundleRefused::Unreadable(e);
                        let reason = error_chain(&refused);
                        self.record("policy.refused", json!({"via": format!("bundle_dir {file}"), "reason": reason}));
                        Err(refused)
                    }
                };
                match outcome {
                    Ok(_) => info!(file, "bundle from the watched directory applied"),
                    Err(refused) => {
                        if self.trust_unsettled.is_some() {
                            self.bundles_awaiting_trust.push(stamp);
                        }
                        warn!(file, "{}", error_chain(&refused))
                    }
                }
            }
        }
        if let Some(inbox) = self.config.inbox_dir.clone() {
            for path in new_files(&inbox) {
                let via = format!("inbox {}", path.display());
                let outcome = match fs::read_to_string(&path) {
                    Ok(text) => self.install_warrant(&text, &via),
                    Err(e) => {
                        let refused = WarrantRefused::Unreadable(e);
                        let reason = error_chain(&refused);
                        self.record("warrant.refused", json!({"via": via, "reason": reason}));
                        Err(refused)
                    }
                };
                let (to, reason) = match outcome {
                    Ok(_) => ("installed", None),
                    Err(refused) => ("refused", Some(error_chain(&refused))),
                };
                let dest = inbox.join(to);
                let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
                let moved =
                    fs::create_dir_all(&dest).and_then(|()| fs::rename(&path, dest.join(&name))).and_then(|()| {
                        match &reason {
                            Some(reason) => {
                                let mut note = dest.join(&name).into_os_string();
                                note.push(".reason");
                                fs::write(note, format!("{reason}\n"))
                            }
                            None => Ok(()),
                        }
                    });
                if let Err(e) = moved {
                    error!(file = %path.display(), "cannot move a warrant out of the inbox: {e}");
                }
            }
        }
    }

    /// Signs a checkpoint of the audit log when records came since the last
    /// one and the interval has passed (or `now`, at shutdown).
    pub(super) fn checkpoint(&mut self, now: bool) {
        let (records, _) = self.audit.head();
        let (last, at) = self.last_checkpoint;
        let due = at.elapsed().as_secs() >= self.config.checkpoint_interval_secs;
        if records == last || !(now || due) {
            return;
        }
        match self.audit.checkpoint(&self.host_key, &audit_origin(&self.host)) {
            Ok(()) => self.last_checkpoint = (records, std::time::Instant::now()),
            Err(e) => error!("audit checkpoint failed: {e}"),
        }
    }

    /// Decisions the kernel made but could not report (its event ring was
    /// full) become a gap record: the log says how many it does not hold.
    pub(super) fn check_lost_events(&mut self) {
        let lost = match self.kernel.lost_events() {
            Ok(lost) => lost,
            Err(e) => {
                error!("cannot read the kernel's lost-event counter: {e}");
                return;
            }
        };
        // A counter below the recorded count: the maps were made anew (a reboot).
        let recorded = if lost < self.lost_events_recorded { 0 } else { self.lost_events_recorded };
        if lost == recorded {
            self.lost_events_recorded = lost;
            return;
        }
        error!(lost = lost - recorded, "the kernel's event ring was full: decisions were enforced but not reported");
        self.record(
            "audit.gap",
            json!({"lost_events": lost - recorded, "lost_total": lost, "cause": "kernel event ring full"}),
        );
        self.lost_events_recorded = lost;
        if let Err(e) = write_atomic(&lost_events_path(&self.config.state_dir), lost.to_string().as_bytes()) {
            error!("cannot persist the lost-event count: {e}");
        }
    }

    /// Files PROTECTED had no room for (it is full: big trees, or files an
    /// agent keeps making in one it may) become a record: until a walk
    /// finds room, the kernel decides files with no entry by their names,
    /// which costs every subject's write a walk of its directories.
    pub(super) fn check_protected_misses(&mut self) {
        let Ok(missed) = self.kernel.protected_misses() else { return };
        if missed <= self.protected_misses_recorded {
            return;
        }
        let new = missed - self.protected_misses_recorded;
        error!(
            missed = new,
            "PROTECTED is full: new protected files are decided by their names until a walk finds room"
        );
        self.record(
            "protected.full",
            json!({"missed": new, "missed_total": missed, "until": "a walk of the trees that finds room for every file"}),
        );
        self.protected_misses_recorded = missed;
    }

    /// While PROTECTED's misses are unsettled and it has room again (the
    /// agent's files went), walks the trees in force at most every
    /// `HEAL_INTERVAL`: when every file found fits, the misses counted
    /// before the walk settle, as an apply's would, and files with no entry
    /// are decided by their entries alone again, without waiting for the
    /// security team's next bundle. Only with a policy in force: without
    /// one (a restore that failed) the pinned trees are not known.
    pub(super) fn heal_protected(&mut self) {
        const HEAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
        if self.policy.is_none()
            || self.protected_healed_at.is_some_and(|at| at.elapsed() < HEAL_INTERVAL)
            || !self.kernel.protected_misses_unsettled()
            || !self.kernel.protected_has_room()
        {
            return;
        }
        let trees = self.protected_trees();
        self.protected_healed_at = Some(std::time::Instant::now());
        let missed = self.kernel.protected_misses();
        let added = self
            .protected_inodes(&trees)
            .map_err(|e| e.to_string())
            .and_then(|(entries, _)| self.kernel.add_missing_protected(&entries).map_err(|e| error_chain(&e)));
        match added {
            Ok(()) => self.settle_protected_misses(missed),
            Err(e) => warn!("PROTECTED has no room for every protected file yet: {e}"),
        }
    }

    /// A policy past `expires` keeps being enforced (never fall open), but
    /// the host must say so loudly until a new bundle arrives.
    pub(super) fn check_expiry(&mut self) {
        let Some(policy) = &self.policy else { return };
        if self.expiry_reported || !policy.expired_at(now_unix()) {
            return;
        }
        let (version, expires) = (policy.version(), policy.policy.expires.clone());
        error!(version, %expires, "policy in force has EXPIRED; still enforcing it; apply a new bundle");
        self.record("policy.expired", json!({"version": version, "expires": expires, "still_enforced": true}));
        self.expiry_reported = true;
    }
}

/// The regular, non-hidden files directly in `dir`, by name.
pub(super) fn new_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        // Symlinks to files count: a Kubernetes ConfigMap mounts its files so.
        .filter(|e| {
            !e.file_name().to_string_lossy().starts_with('.') && fs::metadata(e.path()).is_ok_and(|m| m.is_file())
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}
