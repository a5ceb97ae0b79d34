//! Change requests seen from both ends: batched notifications and drop
//! reports for people, and a subject's questions about its own profile.

use super::*;

impl State {
    /// The profile of request `id` if it has no answer yet (no warrant
    /// for it, not declined): asked before an answer is stored, and the
    /// profile's count closed once it is, so nothing is counted twice.
    pub(super) fn unanswered_profile(&self, id: &str) -> Option<String> {
        let request = requests::load(&self.config.state_dir, id).ok()?;
        let answered =
            request.declined.is_some() || self.warrants.values().any(|w| w.approval.request.as_deref() == Some(id));
        (!answered).then_some(request.profile)
    }

    /// A subject's question about its own profile (never another's).
    /// The caller is named by the kernel, which noted the profile of the
    /// subject that made connection `caller` (a socket cookie) as it made
    /// it: no pid, which a caller's exit frees for another process.
    pub(super) fn answer(&self, query: query::Query, caller: u64) -> Result<Reply, QueryRefused> {
        let profile_id = self.kernel.unix_caller(caller).ok_or(QueryRefused::NotASubject)?;
        let profile = match &self.policy {
            Some(policy) => policy.profile_name(profile_id),
            None => format!("profile#{profile_id}"),
        };
        match query {
            query::Query::Why => {
                let denials = self.recent_denials.of(&profile);
                Ok(Reply::Denials(reply::Denials { profile, denials }))
            }
            query::Query::MyRequests => {
                let all = requests::list(&self.config.state_dir).map_err(QueryRefused::CannotList)?;
                let requests = all.into_iter().filter(|r| r.profile == profile).collect();
                Ok(Reply::MyRequests(reply::MyRequests { profile, requests }))
            }
            query::Query::RequestState { id } => {
                let status = self.request_state(&profile, &id)?;
                let exit_code = status.exit_code();
                Ok(Reply::RequestAnswer(reply::RequestAnswer { profile, request: id, exit_code, status }))
            }
        }
    }

    /// Where change request `id` stands, for a subject of `profile`.
    pub(super) fn request_state(&self, profile: &str, id: &str) -> Result<query::RequestState, QueryRefused> {
        let request = requests::load(&self.config.state_dir, id)
            .ok()
            .filter(|r| r.profile == profile)
            .ok_or_else(|| QueryRefused::NoRequest { id: id.to_owned(), profile: profile.to_owned() })?;
        let now = boot_now_ns();
        let mut spent = None;
        for (index, w) in self.warrants.iter().filter(|(_, w)| w.approval.request.as_deref() == Some(id)) {
            let entry = self.kernel.warrant(&w.key).filter(|_| !w.revoked);
            match entry {
                Some(e) if e.warrant_index == *index && e.uses_left > 0 && e.expires_ns > now => {
                    return Ok(query::RequestState::Approved {
                        warrant_id: w.approval.id.clone(),
                        uses_left: e.uses_left,
                        expires_at: w.approval.expires_at,
                    });
                }
                _ => spent = Some(w.approval.id.clone()),
            }
        }
        // A live warrant wins over a decline; a decline over a spent warrant.
        if let Some(reason) = request.declined {
            return Ok(query::RequestState::Declined { reason });
        }
        if let Some(warrant_id) = spent {
            return Ok(query::RequestState::Expired { warrant_id });
        }
        if let Some(reason) = self.refused_requests.get(id) {
            return Ok(query::RequestState::Refused { reason: reason.clone() });
        }
        Ok(query::RequestState::Pending)
    }

    /// Once per tick: one notify run for the requests opened since the
    /// last, and one `requests.dropped` record per profile that had
    /// attempts past its limits.
    pub(super) fn flush_requests(&mut self) {
        for (profile, count) in self.request_gate.take_unreported_drops() {
            let total = self.request_gate.dropped().get(&profile).copied().unwrap_or(count);
            warn!(profile, count, "approve-tier attempts opened no change request (past the request limits)");
            self.record("requests.dropped", json!({"profile": profile, "count": count, "total": total}));
        }
        let batch = self.request_gate.take_notify_batch();
        if !batch.is_empty() {
            self.notify(&batch);
        }
    }

    pub(super) fn notify(&self, batch: &[ChangeRequest]) {
        let Some(command) = &self.config.notify_command else { return };
        let payload = serde_json::to_vec(&json!({"host": self.host, "requests": batch})).expect("serialises");
        let shell = Path::new("/bin/sh");
        if let Err(refused) = self.check_program(shell) {
            error!("notify command not run: {}", error_chain(&refused));
            return;
        }
        let spawned = crate::programs::command(shell).args(["-c", command]).stdin(std::process::Stdio::piped()).spawn();
        match spawned {
            Ok(mut child) => {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(&payload);
                }
                std::thread::spawn(move || child.wait());
            }
            Err(e) => warn!("notify command failed to start: {e}"),
        }
    }
}
