//! Warrants: installed (checked, snapshotted, counted once), restored after
//! a reboot, revoked, their uses noted, and what they changed rolled back.

use super::*;

impl State {
    pub(super) fn save_warrants(&self) -> Result<(), WarrantRefused> {
        let bytes = serde_json::to_vec_pretty(&self.warrants).expect("serialises");
        write_atomic(&warrants_path(&self.config.state_dir), &bytes).map_err(WarrantRefused::TableNotSaved)
    }

    pub(super) fn revoke_index(&mut self, index: u32, reason: &str) -> Result<(), WarrantRefused> {
        let w = self.warrants.get_mut(&index).ok_or(WarrantRefused::NoSuchIndex)?;
        w.revoked = true;
        let key = w.key;
        let id = w.approval.id.clone();
        // The kernel holds one warrant per target: a later warrant for the
        // same target (this one spent or expired) is not this one's to remove.
        if self.kernel.warrant(&key).is_some_and(|entry| entry.warrant_index == index) {
            self.kernel.remove_warrant(&key).map_err(WarrantRefused::NotRemoved)?;
        }
        self.save_warrants()?;
        self.record("warrant.revoked", json!({"warrant_id": id, "reason": reason}));
        Ok(())
    }

    /// Checks and installs a warrant. Every refusal, whichever way the
    /// warrant came (`via`: control, inbox), is audited.
    pub(super) fn install_warrant(&mut self, text: &str, via: &str) -> Result<reply::WarrantInstalled, WarrantRefused> {
        self.try_install_warrant(text).inspect_err(|refused| {
            let message = error_chain(refused);
            // As the refused warrant claims them: it may be unsigned.
            let claimed = Envelope::parse(text)
                .ok()
                .and_then(|e| e.unverified_text())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or_default();
            let text_of = |key: &str| claimed.get(key).and_then(Value::as_str).map(str::to_owned);
            let (id, request) = (text_of("id"), text_of("request"));
            self.record(
                "warrant.refused",
                json!({"warrant_id": id, "request": request, "via": via, "reason": message}),
            );
            if let Some(request) = request
                && requests::exists(&self.config.state_dir, &request)
            {
                self.refused_requests.insert(request, message);
            }
        })
    }

    fn try_install_warrant(&mut self, text: &str) -> Result<reply::WarrantInstalled, WarrantRefused> {
        let policy = self.policy.as_ref().ok_or(WarrantRefused::NoPolicy)?;
        let envelope = Envelope::parse(text).map_err(WarrantRefused::Envelope)?;
        let checked = approval::check(&envelope, policy, &self.host, now_unix()).map_err(WarrantRefused::Check)?;
        // Valid by the wall clock too: an anchor taken before NTP put a wrong
        // clock right is not trusted alone (see `crate::clock`).
        approval::check(&envelope, policy, &self.host, crate::clock::wall_now_unix())
            .map_err(WarrantRefused::WallClock)?;
        let a = &checked.approval;
        if self.ledger.contains(&a.id) {
            return Err(WarrantRefused::Replay { id: a.id.clone() });
        }
        // The approver signed what `warrant approve` showed; the request here
        // must still be that (a request approved elsewhere may be absent).
        if let (Some(request), Some(signed)) = (&a.request, &a.request_digest)
            && let Ok(local) = requests::load(&self.config.state_dir, request)
            && local.digest() != *signed
        {
            return Err(WarrantRefused::RequestChanged {
                request: request.clone(),
                local: local.digest(),
                signed: signed.clone(),
            });
        }
        if let Some(active) = self.kernel.warrant(&checked.key)
            && active.uses_left > 0
            && active.expires_ns > boot_now_ns()
        {
            let holder = self.warrants.get(&active.warrant_index).map(|w| w.approval.id.clone());
            return Err(WarrantRefused::StillActive { holder: holder.unwrap_or_else(|| "another warrant".into()) });
        }
        let index = self.warrants.keys().next_back().map_or(0, |i| i + 1);
        let (not_before_ns, expires_ns) = crate::clock::boot_window_ns(a.not_before, a.expires_at);
        let entry = WarrantEntry {
            not_before_ns,
            expires_ns,
            uses_left: a.max_uses as u64,
            warrant_index: index,
            _reserved: 0,
            content_digest: checked.content_digest,
        };
        // Before the kernel sees the warrant: what it covers, as it is now.
        if a.action.starts_with("nft.") {
            self.check_nft().map_err(WarrantRefused::Program)?;
        }
        let snapshot = rollback::take(&self.config.state_dir, &a.id, &a.action, &a.target, now_unix())
            .map_err(WarrantRefused::Snapshot)?;
        self.ledger.insert(a.id.clone());
        let ledger = serde_json::to_vec(&self.ledger).expect("serialises");
        write_atomic(&ledger_path(&self.config.state_dir), &ledger).map_err(WarrantRefused::Ledger)?;
        self.kernel.install_warrant(&checked.key, &entry).map_err(WarrantRefused::Kernel)?;
        let summary = reply::WarrantInstalled {
            warrant_id: a.id.clone(),
            approver: a.approver.clone(),
            profile: a.profile.clone(),
            action: a.action.clone(),
            target: a.target.clone(),
            max_uses: a.max_uses,
            expires_at: a.expires_at,
            request: a.request.clone(),
            reason: a.reason.clone(),
            approvers: checked.approvers.clone(),
            content_digest: a.content_digest.clone(),
            request_digest: a.request_digest.clone(),
            rollback: snapshot.as_ref().map(rollback::describe),
        };
        self.record_reply("warrant.installed", &summary);
        let installed = InstalledWarrant {
            uses_left: Some(entry.uses_left),
            approval: checked.approval,
            key: checked.key,
            revoked: false,
        };
        let answers = installed.approval.request.as_deref().and_then(|id| self.unanswered_profile(id));
        self.warrants.insert(index, installed);
        if let Some(profile) = answers {
            self.request_gate.close(&profile);
        }
        // The warrant is in force and on the record: a table that could not
        // be persisted is said loudly, not reported as a refusal.
        if let Err(e) = self.save_warrants() {
            let reason = error_chain(&e);
            error!("{reason}; the warrant is in force but would not be restored after a reboot");
        }
        Ok(summary)
    }

    /// After a reboot the kernel's maps start empty: every warrant still
    /// live goes back in with the uses it had left. After a daemon restart
    /// the pinned map still holds them, and the kernel's count stands.
    pub(super) fn restore_warrants(&mut self) {
        let now = now_unix();
        let mut restored = Vec::new();
        for (index, w) in &self.warrants {
            if w.revoked || w.approval.expires_at <= now || self.kernel.warrant(&w.key).is_some() {
                continue;
            }
            let uses_left = w.uses_left.unwrap_or(w.approval.max_uses as u64);
            if uses_left == 0 {
                continue;
            }
            let (not_before_ns, expires_ns) =
                crate::clock::boot_window_ns(w.approval.not_before, w.approval.expires_at);
            let entry = WarrantEntry {
                not_before_ns,
                expires_ns,
                uses_left,
                warrant_index: *index,
                _reserved: 0,
                // Checked at install, so it parses; 0 (any content) if absent.
                content_digest: w.approval.content_digest.as_deref().and_then(approval::parse_digest).unwrap_or(0),
            };
            match self.kernel.install_warrant(&w.key, &entry) {
                Ok(()) => restored.push((w.approval.id.clone(), uses_left)),
                Err(e) => error!(warrant = %w.approval.id, "cannot restore a warrant into the kernel: {e}"),
            }
        }
        for (id, uses_left) in restored {
            self.record("warrant.restored", json!({"warrant_id": id, "uses_left": uses_left}));
        }
    }

    /// Persists the kernel's count of uses left for warrant `index`.
    pub(super) fn note_warrant_use(&mut self, index: u32) {
        let Some(w) = self.warrants.get_mut(&index) else { return };
        self.pending_after.insert(w.approval.id.clone());
        let left = self.kernel.warrant(&w.key).map_or(0, |e| e.uses_left);
        w.uses_left = Some(left);
        if let Err(e) = self.save_warrants() {
            error!("{}", error_chain(&e));
        }
    }

    /// Notes, for rollback, the state the changes of recently used warrants left.
    pub(super) fn note_changes(&mut self) {
        for id in std::mem::take(&mut self.pending_after) {
            if let Err(e) = rollback::note_after(&self.config.state_dir, &id) {
                error!(change = %id, "cannot note the state a change left: {e}");
            }
        }
    }

    /// Puts back what change (warrant) `id` covered, and records who did.
    pub(super) fn rollback(
        &mut self,
        id: &str,
        force: bool,
        caller: u32,
    ) -> Result<reply::RolledBack, RollbackRefused> {
        self.check_nft().map_err(RollbackRefused::Program)?;
        self.note_changes();
        let by = Box::new(reply::Caller {
            pid: caller,
            exe: exe_of(caller),
            uid: proc_field(caller, "Uid:"),
            loginuid: fs::read_to_string(format!("/proc/{caller}/loginuid")).ok().map(|t| t.trim().to_owned()),
        });
        match rollback::restore(&self.config.state_dir, id, force, now_unix()) {
            Ok(meta) => {
                let what = rollback::describe(&meta);
                // A restored file is a new inode: protect it as its tree is.
                if let rollback::Covered::File { path, .. } = &meta.covered
                    && let Some(policy) = &self.policy
                    && let Some(tree) = policy::tree_of(&policy.policy.protect, &path.to_string_lossy())
                {
                    let tree = tree.to_owned();
                    self.protect_new_inodes(&[tree], &[], "the restored file");
                }
                info!(change = id, %what, "change rolled back");
                let rolled_back = reply::RolledBack { change_id: id.to_owned(), restored: what, forced: force, by };
                self.record_reply("change.rolled_back", &rolled_back);
                Ok(rolled_back)
            }
            Err(e) => {
                let refused = RollbackRefused::Restore(e);
                let reason = error_chain(&refused);
                self.record("rollback.refused", json!({"change_id": id, "reason": reason, "by": by}));
                Err(refused)
            }
        }
    }
}
