//! The daemon's life: it loads the programs and its state, applies the
//! persisted policy, then supervises its tasks until it is stopped or one
//! of them fails.

use super::*;

pub async fn run(config: Config) -> Result<(), DaemonError> {
    fs::create_dir_all(&config.state_dir)
        .doing(|| format!("cannot create state directory {}", config.state_dir.display()))?;
    // Validity is checked against this boot's anchored clock from here on.
    let (anchor, anchored_now) =
        crate::clock::Anchor::load_or_take(&config.state_dir).doing(|| "cannot keep the clock anchor".into())?;
    let boot_id = anchor.boot_id.clone();
    crate::clock::install(anchor);
    for dir in config.bundle_dir.iter().chain(&config.inbox_dir) {
        fs::create_dir_all(dir).doing(|| format!("cannot create watched directory {}", dir.display()))?;
    }
    let trusted = config
        .trusted_keys
        .iter()
        .map(|p| trust::read_signer_key(p).doing(|| "cannot read a trusted key".into()))
        .collect::<Result<Vec<_>, _>>()?;
    let configured = TrustRoot { version: 0, threshold: config.policy_threshold, keys: trusted };
    let (initial, pin) =
        trust_pin::settle(&config.state_dir, configured).doing(|| "cannot settle the trust root".into())?;
    if initial.keys.is_empty() {
        warn!("no trusted_keys configured: no policy bundle can be accepted; subjects are denied everything");
    }
    let unsettled = match &pin {
        trust_pin::Pin::ConfigDiffers { config } => Some(config.clone()),
        _ => None,
    };
    let (trust_chain, broken_root) = load_trust_chain(&config, initial);
    let chain_whole = broken_root.is_none();
    let host_key = load_host_key(&config.host_key_path())?;
    refuse_a_shared_audit_dir(&config)?;
    let audit =
        AuditLog::open(&config.audit_log, config.audit_max_bytes).doing(|| "cannot open the audit log".into())?;
    // The checkpoint file exists before Warrant's own files are listed.
    let origin = audit_origin(&config.host_name());
    audit.checkpoint(&host_key, &origin).doing(|| "cannot write the audit checkpoint".into())?;
    let mut kernel = Kernel::load(true).doing(|| "enforcement is unavailable (see `warrant doctor`)".into())?;
    // Loading parsed the kernel's BTF twice (megabytes, freed since).
    give_back_freed_memory();
    // Warrant's own files are protected from the start, before any policy;
    // a restart keeps the pinned entries of the policy's trees meanwhile.
    // Read before the walk of its own files: with no policy to restore,
    // their going in settles the load's miss.
    let missed = kernel.protected_misses();
    let mut own = protect::inodes(&[], &config.own_paths()).doing(|| "cannot list Warrant's own files".into())?;
    own.extend(config.pod_protected());
    // Not fatal: a full PROTECTED (see BYPASS) refuses only new inodes, and a
    // daemon that stops here would leave the programs running with no one
    // to read their records. The restore below fails the same way while the
    // map is full; an apply once there is room protects them.
    let own_protected = kernel.add_protected(&own);
    if let Err(e) = &own_protected {
        error!("cannot protect every one of Warrant's own files: {}", error_chain(e));
    }
    let events = kernel.take_events()?;
    kernel.set_daemon()?;
    restore_digest_key(&mut kernel, &config.state_dir)?;
    let mut state = State::new(config.clone(), kernel, trust_chain, audit, host_key);
    state.trust_unsettled = unsettled;
    let missing_hooks = state.kernel.missing_hooks().to_vec();
    let started = json!({"pid": std::process::id(), "kernel": kernel_release(), "mode": state.kernel.mode().name(),
                         "missing_hooks": missing_hooks});
    state.record("daemon.started", started);
    if anchored_now {
        state.record("clock.anchored", json!({"boot_id": boot_id}));
    }
    if let Some(config) = state.trust_unsettled.clone() {
        state.record_unsettled(&config, "the configuration's trusted keys are not the pinned ones");
    }
    if let Some((file, reason)) = broken_root {
        state.record("trust.refused", json!({"via": format!("restore {file}"), "reason": reason}));
    }
    let replaced = state.kernel.replaced_pins().to_vec();
    if !replaced.is_empty() {
        // Events the old maps held unread went with them.
        let carried = state.kernel.carried_over().to_vec();
        warn!(?replaced, ?carried, "replaced pinned maps of another layout; subjects and protection carried over");
        state.record("pins.replaced", json!({"reasons": replaced, "carried": carried, "unread_events_lost": true}));
    }
    // Bound before a policy is applied: its directory must exist to be guarded.
    let queries = bind_query_socket(&config.query_socket)?;
    state.restore_warrants();
    state.restore_marks()?;
    let persisted = fs::read_to_string(policy_bundle_path(&config.state_dir)).ok();
    // The first keys are pinned, before any bundle is applied, if they verify
    // what the host holds (an upgrade's persisted policy, by its signature,
    // and rotations); else root settles them. A fresh host trusts them.
    if pin == trust_pin::Pin::Unpinned && !state.trust_chain[0].keys.is_empty() {
        if chain_whole && persisted.as_deref().is_none_or(|bundle| state.persisted_signed_by_configured(bundle)) {
            state.pin_trust_root();
        } else {
            let config = state.trust_chain[0].clone();
            state.record_unsettled(&config, "the configuration's trusted keys do not verify what this host accepted");
            state.trust_unsettled = Some(config);
        }
    }
    // Before the start's walk: a mount made during it is a change.
    // (Unread, every mount there is counted as new at the watcher's first look.)
    let mounts_seen = mounts::mount_points().unwrap_or_else(|e| {
        warn!("cannot read the mount table: {e}");
        Default::default()
    });
    let initial = persisted
        .map(|b| (b, true))
        .or_else(|| config.bundle.as_ref().and_then(|p| fs::read_to_string(p).ok()).map(|b| (b, false)));
    match initial {
        Some((bundle, restoring)) => {
            if let Err(e) = state.apply_bundle(&bundle, restoring, if restoring { "restore" } else { "config bundle" })
            {
                error!("{}; no policy in force: subjects are denied every action", error_chain(&e));
            }
        }
        None if own_protected.is_ok() => state.settle_protected_misses(missed),
        None => {}
    }
    let owner = Owner::start(state).doing(|| "cannot start the thread that owns the daemon's state".into())?;

    let socket = config.socket.clone();
    if let Some(dir) = socket.parent() {
        let private = || format!("cannot make the control socket's directory {} (0700)", dir.display());
        fs::create_dir_all(dir).doing(private)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).doing(private)?;
    }
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).doing(|| format!("cannot bind {}", socket.display()))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
        .doing(|| format!("cannot make {} 0600", socket.display()))?;
    info!(socket = %socket.display(), query_socket = %config.query_socket.display(), "daemon ready");

    // Every long-lived task is supervised: if one ends, the daemon says
    // which and why, audits it and exits non-zero, so the service manager
    // restarts it. Enforcement stays pinned in the kernel meanwhile, and
    // the events the reader had not taken wait on the ring.
    let mut tasks: JoinSet<(&'static str, Result<(), DaemonError>)> = JoinSet::new();
    {
        let owner = owner.clone();
        tasks.spawn(async move { ("event reader", read_events(events, owner).await) });
    }
    {
        let owner = owner.clone();
        tasks.spawn(async move { ("address watcher", addresses::watch_local_addresses(owner).await) });
    }
    {
        let owner = owner.clone();
        tasks.spawn(async move { ("mount watcher", mounts::watch_mounts(owner, mounts_seen).await) });
    }
    {
        let owner = owner.clone();
        tasks.spawn(async move {
            serve_queries(queries, owner).await;
            ("query socket", Err(DaemonError::StoppedAccepting))
        });
    }
    if let Some(address) = config.metrics_listen {
        let listener =
            tokio::net::TcpListener::bind(address).await.doing(|| format!("cannot listen for metrics on {address}"))?;
        info!(%address, "serving Prometheus metrics at /metrics");
        let owner = owner.clone();
        tasks.spawn(async move {
            serve_metrics(listener, owner).await;
            ("metrics", Err(DaemonError::StoppedAccepting))
        });
    }
    // Watched directories, expiry, ring loss, checkpoints, rollback notes.
    {
        let owner = owner.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
            // A tick that runs long is not made up for in a burst.
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if owner.ask(|reply| Command::Tick { reply }).await.is_none() {
                    return ("housekeeping", Err(DaemonError::Unanswered));
                }
            }
        });
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .doing(|| "cannot watch for SIGTERM".into())?;
    let failed = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, owner.clone()));
                }
                // Out of file descriptors, say: the daemon keeps enforcing.
                Err(e) => {
                    error!("control socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(ended) = tasks.join_next() => break Some(task_failure(ended)),
            _ = tokio::signal::ctrl_c() => break None,
            _ = terminate.recv() => break None,
        }
    };
    tasks.abort_all();
    // Bounded: a command stuck ahead of it (an `nft` that hangs) does not
    // keep a stopping daemon from exiting.
    let stop = owner.ask(|reply| Command::Stop { failed: failed.clone(), reply });
    if !matches!(tokio::time::timeout(std::time::Duration::from_secs(30), stop).await, Ok(Some(()))) {
        error!("the daemon's last records could not be written in 30 s (see the log above)");
    }
    let _ = fs::remove_file(&socket);
    match failed {
        Some((task, why)) => Err(DaemonError::TaskStopped { task: task.to_string(), why }),
        None => Ok(()),
    }
}

/// A supervised task's end as (its name, why): its own error, or its panic.
pub(super) fn task_failure(
    ended: Result<(&'static str, Result<(), DaemonError>), tokio::task::JoinError>,
) -> (&'static str, String) {
    match ended {
        Ok((task, Err(why))) => (task, error_chain(&why)),
        Ok((task, Ok(()))) => (task, "ended".to_owned()),
        Err(e) if e.is_panic() => ("a task", format!("panicked: {e}")),
        Err(e) => ("a task", e.to_string()),
    }
}

/// Requests on disk with no warrant installed for them and not declined,
/// by profile: what counts against each profile's `max_open_requests`.
pub(super) fn unanswered_requests(
    state_dir: &Path,
    warrants: &BTreeMap<u32, InstalledWarrant>,
) -> HashMap<String, usize> {
    let answered: HashSet<&str> = warrants.values().filter_map(|w| w.approval.request.as_deref()).collect();
    let mut open = HashMap::new();
    for request in requests::list(state_dir).unwrap_or_default() {
        if request.declined.is_none() && !answered.contains(request.id.as_str()) {
            *open.entry(request.profile).or_default() += 1;
        }
    }
    open
}

/// The audit log's directory is protected as Warrant's own (subjects may not
/// even read it): another program's files there would be refused to agents.
fn refuse_a_shared_audit_dir(config: &Config) -> Result<(), DaemonError> {
    let (Some(dir), foreign) = (config.audit_dir(), crate::audit::foreign_entries(&config.audit_log)) else {
        return Ok(());
    };
    if foreign.is_empty() || dir.starts_with(&config.state_dir) {
        return Ok(());
    }
    let shown: Vec<_> = foreign.iter().take(3).map(|name| crate::render::escape(name)).collect();
    Err(DaemonError::Config(format!(
        "the audit log's directory {} holds files that are not Warrant's ({}{}): give audit_log a directory of its own \
         (the default is /var/log/warrant/audit.jsonl); Warrant protects that directory whole",
        dir.display(),
        shown.join(", "),
        if foreign.len() > 3 { ", ..." } else { "" }
    )))
}

impl State {
    /// The daemon's state over `kernel` and `audit`, with what the state
    /// directory holds (warrants, ledger, earlier policies, open requests,
    /// lost-event count) and no policy in force yet.
    pub(super) fn new(
        config: Config,
        kernel: Kernel,
        trust_chain: Vec<TrustRoot>,
        audit: AuditLog,
        host_key: SigningKey,
    ) -> Self {
        let ledger = fs::read(ledger_path(&config.state_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let warrants = fs::read(warrants_path(&config.state_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let open_requests = unanswered_requests(&config.state_dir, &warrants);
        Self {
            host: config.host_name(),
            kernel,
            trust_chain,
            policy: None,
            earlier_policies: versions::EarlierPolicies::load(&config, read_number(&version_path(&config.state_dir))),
            audit,
            warrants,
            ledger,
            counters: BTreeMap::new(),
            decision_counts: metrics::DecisionCounts::new(),
            file_paths: HashMap::new(),
            drains: 0,
            exe_names: exe_names::ExeNames::new(Path::new("/proc")),
            expiry_reported: false,
            host_key,
            last_checkpoint: (0, std::time::Instant::now()),
            pending_after: BTreeSet::new(),
            rule_contents: Default::default(),
            lost_events_recorded: read_number(&lost_events_path(&config.state_dir)),
            seen_bundles: HashSet::new(),
            bundles_awaiting_trust: Vec::new(),
            request_gate: RequestGate::new(config.requests_per_minute, config.max_open_requests, open_requests),
            recent_denials: query::RecentDenials::default(),
            refused_requests: HashMap::new(),
            // The load's own: files made while no program counted are
            // decided by their names until the restore's walk.
            protected_misses_recorded: 1,
            protected_healed_at: None,
            mount_roots: None,
            marks_saved_at: None,
            marks_count: 0,
            unwritten_records: 0,
            unsynced_records: 0,
            confined_reported: false,
            trust_unsettled: None,
            clock_skew_reported: false,
            config,
        }
    }
}
