//! The daemon's sockets: control (root), query (subjects, about themselves)
//! and metrics (HTTP).

use super::*;

/// A minimal HTTP/1.0 responder: every request gets the metrics text.
pub(super) async fn serve_metrics(listener: tokio::net::TcpListener, owner: Owner) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let Some(body) = owner.ask(|reply| Command::Metrics { reply }).await else { return };
        tokio::spawn(async move {
            // The request line and headers are read and ignored.
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

pub(super) async fn serve(stream: UnixStream, owner: Owner) {
    let peer_pid = stream.peer_cred().ok().and_then(|c| c.pid()).map(|p| p as u32);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() {
        return;
    }
    let response = match crate::control::parse_versioned::<Request>(&line, "request") {
        Ok(request) => owner
            .ask(|reply| Command::Control { request, peer_pid, reply })
            .await
            .unwrap_or_else(|| Response::error(NO_ANSWER)),
        Err(message) => Response::error(message),
    };
    let mut bytes = serde_json::to_vec(&response).expect("serialises");
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
}

/// What a caller hears when its command panicked in the state's owner.
const NO_ANSWER: &str = "the daemon gave no answer: it failed on this request or is stopping (see its log)";

pub(super) fn handle(request: Request, peer_pid: Option<u32>, state: &mut State) -> Response {
    let Some(pid) = peer_pid else {
        return Response::error("cannot identify the caller (no SO_PEERCRED)");
    };
    if !matches!(request, Request::Status | Request::Metrics)
        && let Some(profile) = state.kernel.subject_profile(pid)
    {
        let message = format!("refused: the caller (pid {pid}) is a subject of profile #{profile}");
        state.record("control.refused", json!({"pid": pid, "request": format!("{request:?}")}));
        return Response::error(message);
    }
    Response::from(run(request, pid, state))
}

/// Carries out a request of root's (`pid`).
fn run(request: Request, pid: u32, state: &mut State) -> Result<Reply, Refusal> {
    Ok(match request {
        Request::Status => Reply::Status(Box::new(state.status())),
        Request::Metrics => Reply::Metrics(metrics::render(&state.metrics())),
        Request::Register { profile } => Reply::Registered(register(state, pid, &profile)?),
        Request::ApplyPolicy { bundle } => Reply::PolicyApplied(state.apply_bundle(&bundle, false, "control")?),
        Request::InstallWarrant { warrant } => {
            Reply::WarrantInstalled(Box::new(state.install_warrant(&warrant, "control")?))
        }
        Request::RotateTrust { root } => Reply::TrustRotated(state.rotate_trust(&root)?),
        Request::AcceptConfigTrust { keys, threshold } => {
            Reply::ConfigTrustAccepted(state.accept_config_trust(&keys, threshold)?)
        }
        Request::Rollback { id, force } => Reply::RolledBack(state.rollback(&id, force, pid)?),
        Request::Unmark { path } => Reply::Unmarked(state.unmark(&path, pid)?),
        Request::ListMarks => Reply::Marks(state.list_marks()?),
        Request::Revoke { id } => {
            let index = state.warrants.iter().find(|(_, w)| w.approval.id == id && !w.revoked).map(|(i, _)| *i);
            let index = index.ok_or_else(|| WarrantRefused::NotActive { id: id.clone() })?;
            state.revoke_index(index, "revoked by operator")?;
            Reply::Revoked(reply::Revoked { revoked: id })
        }
        Request::DeclineRequest { id, reason } => {
            let answers = state.unanswered_profile(&id);
            let request = match requests::decline(&state.config.state_dir, &id, &reason) {
                Ok(request) => request,
                Err(source) => return Err(Refusal::NoRequestToDecline { id, source }),
            };
            if let Some(profile) = answers {
                state.request_gate.close(&profile);
            }
            let declined = reply::Declined { request: id, profile: request.profile, reason };
            state.record_reply("request.declined", &declined);
            Reply::Declined(declined)
        }
    })
}

/// The query socket, open to every process, in a directory of its own
/// (not among Warrant's own files: the kernel refuses a subject's connect
/// to those).
pub(super) fn bind_query_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    // The kernel decides a connect by the socket's name, up to this length.
    if path.as_os_str().len() >= warrant_common::NAME_LEN {
        return Err(DaemonError::Config(format!(
            "query_socket {} is longer than {} bytes: choose a shorter path",
            path.display(),
            warrant_common::NAME_LEN - 1
        )));
    }
    if let Some(dir) = path.parent() {
        let opened = || format!("cannot make {} open to every agent", dir.display());
        fs::create_dir_all(dir).doing(opened)?;
        // Agents of any uid must reach it: a private directory (systemd's
        // RuntimeDirectory is 0700) is opened to 0755; a shared one such
        // as /tmp is left as it is.
        let mode = fs::metadata(dir).doing(opened)?.permissions().mode() & 0o7777;
        if mode & 0o022 == 0 && mode != 0o755 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).doing(opened)?;
        }
    }
    let _ = fs::remove_file(path);
    let listener = UnixListener::bind(path).doing(|| format!("cannot bind {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))
        .doing(|| format!("cannot make {} 0666", path.display()))?;
    Ok(listener)
}

/// Serves the query socket: at most [`query::MAX_CONNECTIONS`] at once, each
/// given [`query::READ_TIMEOUT`] to send its line, so subjects holding
/// connections open cannot use up the daemon's file descriptors, nor queue
/// more than that many questions at the state's owner.
pub(super) async fn serve_queries(listener: UnixListener, owner: Owner) {
    let slots = Arc::new(tokio::sync::Semaphore::new(query::MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        match listener.accept().await {
            Ok((stream, _)) => {
                let owner = owner.clone();
                tokio::spawn(async move {
                    answer_query(stream, owner).await;
                    drop(slot);
                });
            }
            Err(e) => {
                warn!("query socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

pub(super) async fn answer_query(stream: UnixStream, owner: Owner) {
    use tokio::io::AsyncReadExt as _;
    let caller = socket_cookie(&stream);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // Only the line's arrival is timed: the answer waits its turn at the
    // state's owner with the slot held, so slots bound the queries queued there.
    let mut reader = BufReader::new(read.take(query::MAX_REQUEST_BYTES));
    let reading = reader.read_line(&mut line);
    if !matches!(tokio::time::timeout(query::READ_TIMEOUT, reading).await, Ok(Ok(_))) {
        return;
    }
    let response = match (crate::control::parse_versioned::<query::Query>(&line, "query"), caller) {
        (Ok(query), Ok(caller)) => owner
            .ask(|reply| Command::Query { query, caller, reply })
            .await
            .unwrap_or_else(|| Response::error(NO_ANSWER)),
        (Err(message), _) => Response::error(message),
        (_, Err(e)) => Response::error(format!("cannot identify the caller (SO_COOKIE: {e})")),
    };
    let mut bytes = serde_json::to_vec(&response).expect("serialises");
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
}

/// The socket cookie of `stream` (`SO_COOKIE`), the key under which the
/// kernel noted who made the connection.
fn socket_cookie(stream: &UnixStream) -> std::io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the fd is open for the call; the kernel writes at most `len`
    // bytes into `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

pub(super) fn register(state: &mut State, pid: u32, profile: &str) -> Result<reply::Registered, RegisterRefused> {
    let policy = state.policy.as_ref().ok_or(RegisterRefused::NoPolicy)?;
    let id = *policy.profile_ids.get(profile).ok_or_else(|| RegisterRefused::NoProfile {
        version: policy.version(),
        profile: profile.to_owned(),
        known: policy.profile_ids.keys().cloned().collect(),
    })?;
    // Its exec of the command is checked for a ring it could keep (the
    // starter's own check is made in user space).
    state.kernel.mark_subject(pid, id, warrant_common::subject_flag::STARTED_BY_RUN)?;
    state.record("subject.registered", json!({"pid": pid, "profile": profile}));
    Ok(reply::Registered { pid, profile: profile.to_owned() })
}
