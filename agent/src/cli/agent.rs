//! The agent's side: where the query socket is, and `warrant wait`.

use crate::*;

/// The query socket: $WARRANT_QUERY_SOCKET (`warrant run` sets it for its
/// command), else the config's, else the default: a subject cannot read
/// Warrant's config, one of Warrant's own files.
pub(crate) fn query_socket(config_path: Option<&Path>) -> PathBuf {
    std::env::var_os(QUERY_SOCKET_ENV).map(PathBuf::from).unwrap_or_else(|| {
        Config::load(config_path).map(|c| c.query_socket).unwrap_or_else(|_| query::DEFAULT_SOCKET.into())
    })
}

pub(crate) const QUERY_SOCKET_ENV: &str = "WARRANT_QUERY_SOCKET";

/// `warrant wait`: asks every 2 s until the request is answered or the
/// timeout passes; the exit code says how it ended.
pub(crate) fn wait(config_path: Option<&Path>, request: &str, timeout: &str, json: bool) -> anyhow::Result<ExitCode> {
    let timeout =
        humantime::parse_duration(timeout).map_err(|e| anyhow!("--timeout {timeout:?}: {e} (use e.g. 90s, 10m)"))?;
    let socket = query_socket(config_path);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let answer: reply::RequestAnswer = query::call(&socket, &Query::RequestState { id: request.to_owned() })?;
        let pending = answer.status == query::RequestState::Pending;
        if !pending || std::time::Instant::now() >= deadline {
            if json {
                println!("{}", serde_json::to_string(&answer)?);
            } else {
                let status = serde_json::to_value(&answer.status)?;
                println!("request {}: {}", render::escape(request), render::json_line(&status));
            }
            return Ok(ExitCode::from(answer.status.exit_code()));
        }
        std::thread::sleep(std::time::Duration::from_secs(2).min(deadline - std::time::Instant::now()));
    }
}
