//! Kernel events: read from the ring, turned into audit records, change
//! requests and each profile's recent denials.

use super::*;

impl State {
    /// Names a decision's target for people: for a file, its path.
    pub(super) fn describe_target(&mut self, key: &TargetKey) -> String {
        let text = render_target(key);
        if action::target_kind(key.action) != action::TargetKind::File {
            return text;
        }
        let (tree_id, inode) = policy::file_target(key);
        let tree = self
            .policy
            .as_ref()
            .and_then(|p| p.policy.protect.iter().find(|t| protect::tree_id(t) == tree_id))
            .cloned();
        match (tree, inode) {
            (Some(tree), None) => tree,
            // binfmt_misc mounted after the apply: the tree's path.
            (Some(tree), Some(inode))
                if inode == warrant_common::FileKey { dev: 0, ino: warrant_common::proc_path::BINFMT_MISC } =>
            {
                tree
            }
            // A new name in a directory (see `warrant_common::FILE_NAME_AT`).
            (Some(tree), Some(dir)) if dir.is_name() => {
                let kind = policy::Target::new_name_kind(dir);
                let (dir, _) = dir.new_name_parts();
                let name = String::from_utf8_lossy(key.file_name()).into_owned();
                let name = if name.is_empty() { "(a name of 48 bytes or more)".to_owned() } else { name };
                match self.path_of(Path::new(&tree), dir) {
                    Some(dir) => format!("{}{kind}", dir.join(&name).display()),
                    None => format!("{tree} (a new name {name:?} in directory inode {}, since removed)", dir.ino),
                }
            }
            (Some(tree), Some(inode)) => self
                .path_of(Path::new(&tree), inode)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("{tree} (inode {}, since removed)", inode.ino)),
            (None, _) => text,
        }
    }

    /// A path of protected inode `key` under `tree`: the one named last if
    /// it still leads there, else found by walking the tree. Checked with
    /// a stat once per drain of the event ring (a batch of events read in
    /// one go: decisions are named in drains only).
    pub(super) fn path_of(&mut self, tree: &Path, key: warrant_common::FileKey) -> Option<PathBuf> {
        if let Some((path, checked_in)) = self.file_paths.get_mut(&key) {
            if *checked_in == self.drains {
                return Some(path.clone());
            }
            if protect::file_key(path) == Some(key) {
                *checked_in = self.drains;
                return Some(path.clone());
            }
        }
        let path = protect::find_path(tree, key)?;
        if self.file_paths.len() >= FILE_PATHS_KEPT {
            self.file_paths.clear();
        }
        self.file_paths.insert(key, (path.clone(), self.drains));
        Some(path)
    }

    /// Keeps the rendering of a rule's content for the decision after it.
    pub(super) fn on_rule_content(&mut self, content: &warrant_common::RuleContent) {
        let len = content.len as usize;
        let kept = len.min(content.bytes.len());
        let text = crate::nft_render::render(&content.bytes[..kept], kept == len);
        self.rule_contents.insert(content.digest, text);
    }

    pub(super) fn on_event(&mut self, event: &Event) {
        if event.action == action::SUBJECT_MATCHED {
            let by = match u32::from_le_bytes([event.table[0], event.table[1], event.table[2], event.table[3]]) {
                warrant_common::match_kind::EXE => "exe",
                warrant_common::match_kind::CGROUP => "cgroup",
                warrant_common::match_kind::WRITTEN => "written",
                _ => "uid",
            };
            let profile = self.policy.as_ref().map(|p| p.profile_name(event.profile_id));
            // The cgroup tracepoint sees the process's leader only: its other
            // threads are marked from here (exec-time matches have no others).
            // Only if the pid is still the process the kernel saw move.
            let moved = (by == "cgroup").then(|| held::handle_if_seen(event.tgid, event.boot_ns));
            let marked = match moved {
                Some(Ok(_)) => self.kernel.mark_process(event.tgid, event.profile_id).map_err(|e| {
                    warn!(pid = event.tgid, "cannot mark the threads of a process moved into a matched cgroup: {e}");
                }),
                _ => Ok(0),
            };
            let threads = *marked.as_ref().unwrap_or(&0);
            let (exe, comm) = (exe_of(event.tgid), comm_of(event));
            self.record(
                "subject.matched",
                json!({"pid": event.tgid, "exe": exe, "comm": comm, "uid": event.uid, "profile": profile, "by": by, "threads_marked_after": threads}),
            );
            // A process moved into a matched cgroup keeps its memory and files.
            if by == "cgroup" {
                match moved {
                    Some(Ok(handle)) => {
                        let traced = self.kernel.traced_tasks();
                        self.settle_pickup(
                            event.tgid,
                            Ok(handle),
                            marked.is_ok(),
                            &profile.unwrap_or_default(),
                            &traced,
                        )
                    }
                    // Gone, or its pid reused: the tracepoint's note ends here.
                    _ => drop(self.kernel.end_pickup(event.tgid)),
                }
                self.settle_pickup_children();
            }
            return;
        }
        let action_name = action::name(event.action).unwrap_or("unclassified");
        let target = self.describe_target(&event_key(event, 0));
        let exe = self.exe_names.name(event.tgid, event.exe, self.drains).unwrap_or_else(|| "?".into());
        let decided_under = self.policy_of_version(event.policy_version);
        let (profile, rule, profile_mode) = match decided_under {
            Some(p) => {
                // Self-protection consults no rule.
                let rule = (event.tier != tier::UNMATCHED && !action::is_self_protection(event.action))
                    .then(|| p.rules_by_index.get(event.rule_index).map(|named| named.text.clone()))
                    .flatten();
                let m = p.profiles.iter().find(|(id, _)| *id == event.profile_id).map(|(_, e)| e.mode);
                (p.profile_name(event.profile_id), rule, m)
            }
            // Profile ids are hashes of names: the policy in force still names it.
            None => {
                let name = self.policy.as_ref().map(|p| p.profile_name(event.profile_id));
                (name.unwrap_or_else(|| format!("profile#{}", event.profile_id)), None, None)
            }
        };
        let requests_per_minute = decided_under
            .and_then(|p| p.policy.profiles.iter().find(|x| x.name == profile))
            .and_then(|x| x.requests_per_minute);
        let comm = comm_of(event);
        // A short-lived process may be gone before its event is read.
        let exe = if exe == "?" { format!("? (exited; comm {comm})") } else { exe };
        let verdict_text = verdict_name(event.verdict);
        let mut fields = Fields::new();
        fields
            .add("pid", event.tgid)
            .add("tid", event.tid)
            .add("uid", event.uid)
            .add("exe", exe.as_str())
            .add("comm", comm.as_str())
            .add("profile", profile.as_str())
            .add("action", action_name)
            .add("target", target.as_str())
            .add("tier", tier_name(event.tier))
            .add("verdict", verdict_text)
            .add("rule", rule)
            .add("policy_version", event.policy_version)
            .add("message", format!("{}/{}", event.msg_index + 1, event.msg_count))
            .add("mode", if profile_mode == Some(mode::AUDIT) { "audit" } else { "enforce" });
        if exe_names::known(event.exe) {
            fields.add("exe_inode", format!("{} {}", protect::dev_text(event.exe.dev), event.exe.ino));
        }
        if decided_under.is_none() {
            // Older than the versions kept: no rule text rather than another's.
            fields.add("policy_known", false);
        }
        // An `allow` rule decided in the approve tier: its rate was used up.
        let allow_rule = decided_under.and_then(|p| p.rules_by_index.get(event.rule_index));
        if event.tier == tier::APPROVE
            && !action::is_self_protection(event.action)
            && allow_rule.is_some_and(|named| named.rule.tier == policy::Tier::Allow)
        {
            fields.add("rate_limited", true);
        }
        // Looked up before any key is made: each record counts in both.
        match self.counters.get_mut(verdict_text) {
            Some(count) => *count += 1,
            None => _ = self.counters.insert(verdict_text.to_owned(), 1),
        }
        *self.decision_counts.entry((verdict_text, action_name, profile.clone())).or_default() += 1;
        if event.warrant_index != NO_WARRANT
            && let Some(w) = self.warrants.get(&event.warrant_index)
        {
            fields.add("warrant_id", w.approval.id.as_str());
            fields.add("approver", w.approval.approver.as_str());
        }
        if event.verdict == verdict::ALLOWED_BY_WARRANT && event.warrant_index != NO_WARRANT {
            self.note_warrant_use(event.warrant_index);
        }
        let content_digest = requests::digest_text(event.content_digest);
        let rendering = self.rule_contents.get(event.content_digest).cloned().filter(|_| content_digest.is_some());
        if let Some(digest) = &content_digest {
            fields.add("content_digest", digest.as_str());
        }
        if let Some(text) = &rendering {
            fields.add("content", text.as_str());
        }
        if event.verdict == verdict::DENIED_NEEDS_WARRANT
            && let Some(why) = self.unusable_warrant(event)
        {
            fields.add("warrant_unusable", why);
        }
        if event.verdict == verdict::DENIED_NEEDS_WARRANT && event.action != 0 {
            let id = requests::request_id(&profile, action_name, &target, content_digest.as_deref());
            // A repeated attempt updates its request; a new one must pass the gate.
            if !requests::exists(&self.config.state_dir, &id)
                && let Err(dropped) = self.request_gate.admit_new(&profile, requests_per_minute, now_unix())
            {
                fields.add("request_dropped", dropped.to_string());
                self.record_decision(&profile, event.verdict, fields);
                return;
            }
            let request = ChangeRequest {
                id: id.clone(),
                host: self.host.clone(),
                profile: profile.clone(),
                action: action_name.into(),
                target: target.clone(),
                first_seen: now_unix(),
                last_seen: now_unix(),
                attempts: 1,
                pid: event.tgid,
                uid: event.uid,
                exe: exe.clone(),
                comm: comm.clone(),
                policy_version: event.policy_version,
                content_digest,
                rendering,
                declined: None,
            };
            match requests::record(&self.config.state_dir, request) {
                Ok(saved) => {
                    fields.add("request", id);
                    if saved.attempts == 1 {
                        self.request_gate.queue_notify(saved);
                    }
                }
                Err(e) => error!("cannot write change request: {e}"),
            }
        }
        self.record_decision(&profile, event.verdict, fields);
    }

    /// Why the warrant the kernel holds for the event's target, if any, did
    /// not allow it: said to the agent and the approver, who would otherwise
    /// see a denial beside a warrant they believe is in force.
    fn unusable_warrant(&self, event: &Event) -> Option<Value> {
        let entry = self.kernel.warrant(&event_key(event, event.profile_id))?;
        let now = boot_now_ns();
        let secs = |ns: u64| ns / 1_000_000_000;
        let why = if entry.uses_left == 0 {
            "its uses are spent".to_owned()
        } else if now < entry.not_before_ns {
            format!("not valid for another {} s", secs(entry.not_before_ns - now) + 1)
        } else if now >= entry.expires_ns {
            "expired".to_owned()
        } else if entry.content_digest != 0 && entry.content_digest != event.content_digest {
            format!("it approves other content (digest {:016x})", entry.content_digest)
        } else {
            // Spent, or in force, after the kernel decided.
            "it was not usable when the kernel decided".to_owned()
        };
        let id = self.warrants.get(&entry.warrant_index).map(|w| w.approval.id.clone());
        Some(json!({"warrant_id": id, "why": why}))
    }

    /// Writes a decision record; a denial is also kept for its profile's
    /// `warrant why`.
    pub(super) fn record_decision(&mut self, profile: &str, verdict_value: u32, fields: Fields) {
        let denied = matches!(
            verdict_value,
            verdict::DENIED | verdict::DENIED_NEEDS_WARRANT | verdict::BATCH_DENIED | verdict::UNPARSEABLE
        );
        let view = denied.then(|| query::Denial::of_record(&fields.to_value()));
        let seq = self.record_fields("decision", fields);
        if let Some(view) = view {
            self.recent_denials.note(profile, query::Denial { seq, time: now_unix(), ..view });
        }
    }
}

/// The target key an event was decided on, for `profile_id` (0 for the
/// target alone; warrants are keyed per profile, in no policy generation).
fn event_key(event: &Event, profile_id: u32) -> TargetKey {
    TargetKey {
        profile_id,
        action: event.action,
        family: event.family,
        generation: 0,
        _pad: [0; 6],
        table: event.table,
        object: event.object,
    }
}

/// The executable of process `pid`, while it lives.
pub(super) fn exe_of(pid: u32) -> Option<String> {
    exe_names::exe_at(Path::new("/proc"), pid)
}

/// The first value of a `/proc/PID/status` line (e.g. the real uid of `Uid:`).
pub(super) fn proc_field(pid: u32, name: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next().map(str::to_owned)
}

/// The command name the kernel recorded with an event.
pub(super) fn comm_of(event: &Event) -> String {
    String::from_utf8_lossy(warrant_common::name_bytes(&event.comm)).into_owned()
}

/// What the kernel puts on the EVENTS ring.
pub(super) enum Record {
    Decision(Box<Event>),
    Content(Box<warrant_common::RuleContent>),
}

/// The most ring items one drain records before the owner takes other
/// commands (and syncs the log for them).
const DRAIN_BATCH: usize = 256;

/// The kernel's event ring, as its reader passes it to the state's owner
/// to drain and gets it back.
pub(super) type EventRing = aya::maps::RingBuf<aya::maps::MapData>;

/// Waits on the event ring and has the state's owner drain it: one
/// command per batch of events, not one per event.
pub(super) async fn read_events(ring: EventRing, owner: Owner) -> Result<(), DaemonError> {
    use std::os::fd::AsFd as _;
    // Readiness is watched on a second fd of the ring, so that the ring
    // itself can go to the owner's thread for each drain.
    let watched = ring.as_fd().try_clone_to_owned().doing(|| "cannot watch the event ring".into())?;
    // SAFETY: the AsyncFd owns the fd it watches, and closes it last.
    let fd = unsafe { AsyncFd::register_with_interest(watched, tokio::io::Interest::READABLE) }
        .doing(|| "cannot watch the event ring".into())?;
    // Debug builds only: the kernel tier's way to take the reader's input
    // away and see the daemon's supervisor react.
    #[cfg(debug_assertions)]
    if std::env::var_os("WARRANT_TEST_FAULT").is_some_and(|f| f == "event-reader") {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        return Err(DaemonError::Events("the event ring's fd is gone (WARRANT_TEST_FAULT)".into()));
    }
    let mut ring = Some(ring);
    loop {
        let mut guard = fd.readable().await.doing(|| "cannot wait on the event ring".into())?;
        // Readiness is cleared before the ring is drained, not after: the
        // kernel wakes a reader only when it had caught up, so an event
        // committed between the last read and a later clear would wait,
        // unread, for the next event that wakes it.
        guard.clear_ready();
        loop {
            let lent = ring.take().expect("the owner gives the ring back with every drain");
            let Some((back, drained)) = owner.ask(|reply| Command::Drain { ring: lent, reply }).await else {
                // The event being recorded went with the owner's panic: an
                // event that fails to record does not fail every restart
                // too. Its loss is the `daemon.task_failed` record the
                // supervisor writes.
                return Err(DaemonError::Events("an event could not be recorded (see the log above)".into()));
            };
            ring = Some(back);
            if drained < DRAIN_BATCH {
                break;
            }
        }
    }
}

impl State {
    /// Records up to [`DRAIN_BATCH`] items of the event ring. An item
    /// leaves the ring once its record is written (a daemon killed before
    /// reads it again after a restart: at least once), and one fdatasync
    /// covers the batch (a group commit, see `crate::audit`).
    pub(super) fn drain(&mut self, ring: &mut EventRing) -> usize {
        self.group_commit(|state| match ring.next() {
            Some(item) => {
                state.record_item(&item);
                drop(item);
                true
            }
            None => false,
        })
    }

    /// One drain's group commit: `record_next` records the next item,
    /// until it has none or [`DRAIN_BATCH`] are recorded; one fdatasync
    /// then covers them. Returns how many it recorded.
    pub(super) fn group_commit(&mut self, mut record_next: impl FnMut(&mut Self) -> bool) -> usize {
        self.drains += 1;
        self.audit.defer_sync();
        let mut recorded = 0;
        while recorded < DRAIN_BATCH && record_next(self) {
            recorded += 1;
        }
        self.sync_audit();
        recorded
    }

    /// Records one item of the event ring, inside a drain's group commit.
    pub(super) fn record_item(&mut self, item: &[u8]) {
        let acted = match parse_record(item) {
            Some(Record::Content(content)) => {
                self.on_rule_content(&content);
                false
            }
            Some(Record::Decision(event)) => {
                self.on_event(&event);
                acts_on_disk(&event)
            }
            None => false,
        };
        // What the daemon did for the event (a process stopped, a warrant's
        // use or a change request persisted) is on disk: its record is too,
        // now, not at the batch's end.
        if acted {
            self.sync_audit();
            self.audit.defer_sync();
        }
    }

    /// Ends a group commit of the audit log, if one is open (one left open
    /// by a command that panicked is ended by the next).
    pub(super) fn sync_audit(&mut self) {
        let _ = self.audit.sync();
        self.note_syncs();
    }

    /// Counts the records whose fdatasync failed (said once per failing
    /// spell); once the log syncs again, records the gap: those records
    /// are in the chain, but a crash of the host may have taken them.
    pub(super) fn note_syncs(&mut self) {
        if let Some((records, e)) = self.audit.take_not_synced() {
            if self.unsynced_records == 0 {
                error!("audit log sync failed ({records} records written, maybe not on disk): {e}");
            }
            self.unsynced_records += records;
        } else if self.unsynced_records > 0 && self.audit.unsynced() == 0 {
            let records = std::mem::take(&mut self.unsynced_records);
            self.record("audit.gap", json!({"cause": "audit log syncs failed", "records_not_synced": records}));
        }
    }
}

/// Whether the daemon's handling of `event` changes something of its own
/// on disk or stops a process (see `State::on_event`).
fn acts_on_disk(event: &Event) -> bool {
    event.action == action::SUBJECT_MATCHED
        || event.verdict == verdict::ALLOWED_BY_WARRANT
        || event.verdict == verdict::DENIED_NEEDS_WARRANT
}

/// One item of the event ring. The two record types differ in size
/// (asserted in warrant-common); anything else is skipped.
pub(super) fn parse_record(item: &[u8]) -> Option<Record> {
    if item.len() == std::mem::size_of::<warrant_common::RuleContent>() {
        // SAFETY: the kernel wrote a whole RuleContent (size checked).
        let content = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<warrant_common::RuleContent>()) };
        Some(Record::Content(Box::new(content)))
    } else if item.len() >= std::mem::size_of::<Event>() {
        // SAFETY: the kernel wrote a whole Event (size checked).
        Some(Record::Decision(Box::new(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) })))
    } else {
        None
    }
}
