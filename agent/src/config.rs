//! The daemon's configuration file (/etc/warrant/warrant.toml by default).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/warrant/warrant.toml";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file is not valid; fix it or see README.md for the keys: {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Requests, persisted policy, warrant ledger.
    pub state_dir: PathBuf,
    /// Root-only control socket.
    pub socket: PathBuf,
    /// The socket where subjects ask about themselves (`warrant why`,
    /// `warrant wait`): open to all, in a directory of its own.
    pub query_socket: PathBuf,
    pub audit_log: PathBuf,
    /// Rotate the audit log when it reaches this many bytes (the chain goes
    /// on across files).
    pub audit_max_bytes: u64,
    /// The host's Ed25519 key that signs audit checkpoints; made at first
    /// start (its public half beside it, `.pub`). Default: in state_dir.
    pub host_key: Option<PathBuf>,
    /// Seconds between audit checkpoints while records are being added.
    pub checkpoint_interval_secs: u64,
    /// Public keys of the security team that may sign policy bundles.
    pub trusted_keys: Vec<PathBuf>,
    /// How many distinct trusted keys must sign a bundle.
    pub policy_threshold: usize,
    /// This host's name in warrants; the system hostname when unset.
    pub host: Option<String>,
    /// A bundle to load at start when the state directory holds none yet.
    pub bundle: Option<PathBuf>,
    /// Run with new change requests as JSON on stdin (`{"host", "requests":
    /// [..]}`), at most once per 2 s tick, one run per batch.
    pub notify_command: Option<String>,
    /// New change requests a profile may open per minute (a profile's
    /// `requests_per_minute` in the policy overrides it); attempts past it
    /// are still denied and audited, but open no request.
    pub requests_per_minute: u32,
    /// Unanswered change requests a profile may have at once.
    pub max_open_requests: usize,
    /// A directory watched for policy bundles: each new file is applied as
    /// `warrant policy apply` would (in name order; older versions refused).
    pub bundle_dir: Option<PathBuf>,
    /// A directory watched for warrants signed elsewhere: each new file is
    /// installed and moved to `installed/`, or moved to `refused/` beside a
    /// `.reason` file.
    pub inbox_dir: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP here (e.g. "127.0.0.1:9464");
    /// off by default. `warrant metrics` prints the same text.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A container's daemon enters this mount namespace at start (the
    /// DaemonSet: "/proc/1/ns/mnt", with hostPID), after reading this
    /// file; the trusted keys, `bundle` and `bundle_dir` stay the pod's,
    /// every other path is then the host's. See host_mount.rs.
    pub host_mount_namespace: Option<PathBuf>,
    /// Where this configuration was read from (not a key of the file).
    #[serde(skip)]
    pub path: PathBuf,
    /// The pod's files, once the daemon has entered the host's mount
    /// namespace (not a key of the file).
    #[serde(skip)]
    pub pod: Option<crate::host_mount::PodFiles>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/warrant".into(),
            socket: "/run/warrant/warrant.sock".into(),
            query_socket: crate::query::DEFAULT_SOCKET.into(),
            audit_log: "/var/log/warrant/audit.jsonl".into(),
            audit_max_bytes: crate::audit::DEFAULT_MAX_BYTES,
            host_key: None,
            checkpoint_interval_secs: 60,
            trusted_keys: Vec::new(),
            policy_threshold: 1,
            host: None,
            bundle: None,
            notify_command: None,
            requests_per_minute: crate::request_gate::DEFAULT_PER_MINUTE,
            max_open_requests: crate::request_gate::DEFAULT_MAX_OPEN,
            bundle_dir: None,
            inbox_dir: None,
            metrics_listen: None,
            host_mount_namespace: None,
            path: DEFAULT_PATH.into(),
            pod: None,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file at the default path means the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_owned(), true),
            None => match std::env::var_os("WARRANT_CONFIG") {
                Some(p) => (PathBuf::from(p), true),
                None => (PathBuf::from(DEFAULT_PATH), false),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Self>(&text)
                .map(|config| Self { path: path.clone(), ..config })
                .map_err(|e| ConfigError::Invalid { path: path.display().to_string(), message: e.message().into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path: path.display().to_string(), source }),
        }
    }

    /// Warrant's own files, which subjects may never change: this config,
    /// the state directory, the audit log, the socket's directory, the
    /// trusted keys, and the watched bundle and warrant directories. Those
    /// of a pod are not listed: `pod.protected` holds their entries.
    pub fn own_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.state_dir.clone(), self.host_key_path()];
        // The audit log's directory (its rotated files and checkpoint, and
        // no name a subject could plant there: see audit::foreign_entries);
        // for a log in `/` or the working directory, its files alone.
        match self.audit_dir() {
            Some(dir) => paths.push(dir.to_path_buf()),
            None => {
                paths.extend(crate::audit::chain_files(&self.audit_log));
                paths.push(crate::audit::checkpoint_path(&self.audit_log));
            }
        }
        paths.push(self.audit_log.clone());
        paths.extend(self.socket.parent().map(Path::to_path_buf));
        paths.extend(self.inbox_dir.iter().cloned());
        if self.pod.is_none() {
            paths.extend(self.pod_paths());
        }
        paths
    }

    /// The files a DaemonSet's pod delivers: this config, the trusted keys
    /// and the watched bundle directory.
    pub fn pod_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.path.clone()];
        paths.extend(self.trusted_keys.iter().cloned());
        paths.extend(self.bundle_dir.iter().cloned());
        paths
    }

    /// How a path of this configuration is shown (a pod's: `pod:PATH`).
    pub fn shown(&self, path: &Path) -> String {
        self.pod.as_ref().map_or_else(|| path.display().to_string(), |pod| pod.shown(path))
    }

    /// The PROTECTED entries of a pod's files, taken in the pod.
    pub fn pod_protected(
        &self,
    ) -> impl Iterator<Item = (warrant_common::FileKey, warrant_common::ProtectedEntry)> + '_ {
        self.pod.iter().flat_map(|pod| pod.protected.iter().map(|(key, entry)| (*key, *entry)))
    }

    /// The audit log's directory, Warrant's own; none for a log in `/` or
    /// the working directory.
    pub fn audit_dir(&self) -> Option<&Path> {
        self.audit_log.parent().filter(|dir| !dir.as_os_str().is_empty() && *dir != Path::new("/"))
    }

    pub fn host_key_path(&self) -> PathBuf {
        self.host_key.clone().unwrap_or_else(|| self.state_dir.join("host.key"))
    }

    pub fn host_name(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
        })
    }
}
