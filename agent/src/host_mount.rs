//! A daemon started in a container (the Kubernetes DaemonSet) acts on the
//! host: with `host_mount_namespace` set, it enters that mount namespace
//! before anything else. Every path of a policy, a warrant, its state, its
//! audit log, its pins and its sockets then resolves as the host's own
//! processes see it: symlinks, mounts, cgroups and /run/netns included, with
//! no prefix to add, strip or escape (an absolute symlink under a prefix
//! would point back into the container).
//!
//! What the pod delivers stays the pod's: this configuration file, the
//! trusted keys, `bundle` and `bundle_dir` (a ConfigMap or Secret) are
//! resolved in the pod and read through a descriptor of its root taken
//! first; the configuration's, the keys' and bundle_dir's inodes are
//! protected as they were found there.

use std::{
    collections::HashMap,
    fs::File,
    os::{
        fd::{AsRawFd, IntoRawFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
};

use thiserror::Error;
use warrant_common::{FileKey, ProtectedEntry};

use crate::{config::Config, protect};

/// The inode number of the initial PID namespace (PROC_PID_INIT_INO): the
/// daemon's pids are the kernel's only there, and only there is /proc/1
/// the host's init.
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

#[derive(Debug, Error)]
pub enum HostMountError {
    #[error("host_mount_namespace is set but the daemon is not in the host's PID namespace; run it with hostPID")]
    NotHostPid,
    #[error("cannot open the pod's root: {0}")]
    PodRoot(#[source] std::io::Error),
    #[error("cannot open host_mount_namespace {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot enter the mount namespace {path}: {source} (it must be a mount namespace, and the daemon needs \
         CAP_SYS_ADMIN and CAP_SYS_CHROOT)"
    )]
    Enter {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("cannot fork the daemon from the pod's first process: {0}")]
    Fork(#[source] nix::Error),
    #[error("cannot list the pod's files for protection: {0}")]
    Protect(#[from] protect::ProtectError),
}

/// The pod's files as the daemon reaches them once it is on the host.
#[derive(Clone, Debug, Default)]
pub struct PodFiles {
    /// `/proc/self/fd/N`: the pod's root, held open (close-on-exec).
    pub root: PathBuf,
    /// Their PROTECTED entries, taken in the pod.
    pub protected: HashMap<FileKey, ProtectedEntry>,
}

impl PodFiles {
    /// `path` as the daemon reads it from the pod.
    fn reach(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// How `path` (one of `reach`'s) is shown: `pod:` and the pod's path.
    pub fn shown(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(inside) => format!("pod:/{}", inside.display()),
            Err(_) => path.display().to_string(),
        }
    }
}

/// Enters `config.host_mount_namespace`, if it is set and not already the
/// daemon's, and returns the configuration with the pod's paths reachable.
/// Must run while the process has one thread: the kernel refuses a mount
/// namespace change to a thread that shares its file system context, and
/// the process forks (see `stay_in_the_pod`).
pub fn enter(mut config: Config) -> Result<Config, HostMountError> {
    let Some(target) = config.host_mount_namespace.clone() else { return Ok(config) };
    let shown = target.display().to_string();
    let open_error = |source| HostMountError::Open { path: shown.clone(), source };
    // First: without hostPID, /proc/1 is the pod's own first process, whose
    // namespace would pass for the host's below.
    if std::fs::metadata("/proc/self/ns/pid").map_err(open_error)?.ino() != INITIAL_PID_NAMESPACE {
        return Err(HostMountError::NotHostPid);
    }
    let namespace = File::open(&target).map_err(open_error)?;
    let ours = std::fs::metadata("/proc/self/ns/mnt").map_err(open_error)?;
    let theirs = namespace.metadata().map_err(open_error)?;
    if (ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino()) {
        tracing::info!(namespace = %shown, "already in the host's mount namespace");
        return Ok(config);
    }
    // Relative paths are the pod's working directory's.
    map_pod_paths(&mut config, |p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()));
    let protected = protect::inodes(&[], &config.pod_paths())?;
    // Read through the pod's root after entering, a path must hold no
    // symlink an absolute target would take to the host's: resolved here.
    map_pod_paths(&mut config, |p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned()));
    stay_in_the_pod()?;
    // Opened before entering: after it, "/" is the host's. The pod's mount
    // namespace is held too: once its last process leaves it, the kernel
    // takes its mounts apart, and the root would lead to none of them.
    let pod_root = File::open("/").map_err(HostMountError::PodRoot)?;
    let pod_namespace = File::open("/proc/self/ns/mnt").map_err(HostMountError::PodRoot)?;
    nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|source| HostMountError::Enter { path: shown.clone(), source })?;
    // Both held for the daemon's life; std opens files close-on-exec.
    let root = PathBuf::from(format!("/proc/self/fd/{}", pod_root.as_raw_fd()));
    let _ = (pod_root.into_raw_fd(), pod_namespace.into_raw_fd());
    let pod = PodFiles { root, protected };
    map_pod_paths(&mut config, |p| pod.reach(p));
    tracing::info!(namespace = %shown, "entered the host's mount namespace; the pod's files are read through its root");
    config.pod = Some(pod);
    Ok(config)
}

/// Rewrites each path the pod delivers (this file, the trusted keys,
/// `bundle`, `bundle_dir`) through `rewrite`.
fn map_pod_paths(config: &mut Config, rewrite: impl Fn(&Path) -> PathBuf) {
    config.path = rewrite(&config.path);
    for key in &mut config.trusted_keys {
        *key = rewrite(key);
    }
    config.bundle = config.bundle.as_deref().map(&rewrite);
    config.bundle_dir = config.bundle_dir.as_deref().map(&rewrite);
}

/// The container's first process stays in the pod: `kubectl exec` and exec
/// probes join its mount namespace, and must find the pod's files there,
/// not run whatever the host's PATH holds. So the process forks: the
/// parent waits in the pod and passes on the signals that stop it; the
/// child (returning here) enters the host's namespace and is the daemon.
fn stay_in_the_pod() -> Result<(), HostMountError> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    use nix::sys::wait::{WaitStatus, waitpid};
    // SAFETY: the process has one thread (see `enter`), so the child's
    // memory is consistent.
    let child = match unsafe { nix::unistd::fork() }.map_err(HostMountError::Fork)? {
        nix::unistd::ForkResult::Child => return Ok(()),
        nix::unistd::ForkResult::Parent { child } => child,
    };
    CHILD.store(child.as_raw(), std::sync::atomic::Ordering::SeqCst);
    for stop in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT] {
        // SAFETY: the handler only reads an atomic and calls kill(2), both
        // async-signal-safe.
        let _ = unsafe { signal(stop, SigHandler::Handler(pass_on)) };
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => std::process::exit(128 + signal as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(1),
        }
    }
}

/// The daemon's pid, for the pod's first process to pass signals on to.
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn pass_on(signal: libc::c_int) {
    let child = CHILD.load(std::sync::atomic::Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_key_nothing_changes() {
        let config = enter(Config::default()).unwrap();
        assert!(config.pod.is_none());
        assert_eq!(config.path, Path::new(crate::config::DEFAULT_PATH));
    }

    #[test]
    fn the_daemons_own_namespace_is_not_entered_and_its_paths_stay() {
        let config = Config {
            host_mount_namespace: Some("/proc/self/ns/mnt".into()),
            bundle_dir: Some("/etc/warrant/bundles.d".into()),
            ..Config::default()
        };
        let in_initial_pid_namespace =
            std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == INITIAL_PID_NAMESPACE);
        let config = match enter(config) {
            Ok(config) => config,
            // In a container, as CI may be: refused before anything else.
            Err(HostMountError::NotHostPid) if !in_initial_pid_namespace => return,
            Err(e) => panic!("{e}"),
        };
        assert!(config.pod.is_none());
        assert_eq!(config.bundle_dir.as_deref(), Some(Path::new("/etc/warrant/bundles.d")));
        assert!(config.own_paths().contains(&PathBuf::from("/etc/warrant/bundles.d")));
    }

    #[test]
    fn a_namespace_that_cannot_be_opened_is_one_clear_error() {
        let config = Config { host_mount_namespace: Some("/nonexistent/ns".into()), ..Config::default() };
        match enter(config) {
            Err(HostMountError::NotHostPid) => {}
            Err(e) => assert!(e.to_string().starts_with("cannot open host_mount_namespace /nonexistent/ns:"), "{e}"),
            Ok(_) => panic!("a namespace that does not exist was entered"),
        }
    }

    #[test]
    fn pod_paths_are_reached_through_its_root_and_shown_as_the_pods() {
        let pod = PodFiles { root: "/proc/self/fd/7".into(), protected: HashMap::new() };
        let reached = pod.reach(Path::new("/etc/warrant/bundles.d"));
        assert_eq!(reached, Path::new("/proc/self/fd/7/etc/warrant/bundles.d"));
        assert_eq!(pod.shown(&reached.join("0042.bundle")), "pod:/etc/warrant/bundles.d/0042.bundle");
        assert_eq!(pod.shown(Path::new("/var/lib/warrant")), "/var/lib/warrant");
        let config = Config { pod: Some(pod), bundle_dir: Some(reached), ..Config::default() };
        // The pod's files are protected by the entries taken in the pod, not by path.
        assert!(!config.own_paths().iter().any(|p| p.starts_with("/proc/self/fd/7")));
    }
}
