//! One daemon for the whole kernel tier (verifying the programs under an
//! emulated CPU takes a while), a scratch directory, and helpers to run the
//! real tools as subjects and to wait for audit records.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

pub struct Daemon {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub audit: PathBuf,
    pid: std::sync::Mutex<u32>,
}

pub struct Ran {
    pub status: std::process::ExitStatus,
    pub stderr: String,
}

pub fn warrant_bin() -> PathBuf {
    std::env::var_os("WARRANT_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_warrant").into())
}

/// The protected config in the VM: a tmpfs at /mnt (the VM's own mount;
/// the host's /etc is never written) holding `sysctl.d/` and
/// `nftables.conf`, bind-mounted over /etc/sysctl.d and /etc/nftables.conf,
/// the paths the demo policy protects; and `outside/`, on the same file
/// system but unprotected, with a hard link and a symlink to a protected file.
fn protected_tree_fixture() {
    as_root(
        "grep -qs ' /mnt tmpfs ' /proc/mounts || mount -t tmpfs fixture /mnt
        mkdir -p /mnt/sysctl.d /mnt/outside
        printf 'net.ipv4.ip_forward = 0\n' > /mnt/sysctl.d/90-agent.conf
        printf 'flush ruleset\n' > /mnt/nftables.conf
        ln -f /mnt/sysctl.d/90-agent.conf /mnt/outside/existing-link
        ln -sf /etc/sysctl.d/90-agent.conf /mnt/outside/symlink
        grep -qs ' /etc/sysctl.d tmpfs ' /proc/mounts || mount --bind /mnt/sysctl.d /etc/sysctl.d
        grep -qs ' /etc/nftables.conf tmpfs ' /proc/mounts || mount --bind /mnt/nftables.conf /etc/nftables.conf
        mkdir -p /mnt/profile.d
        grep -qs ' /etc/profile.d tmpfs ' /proc/mounts || mount --bind /mnt/profile.d /etc/profile.d",
    );
}

/// What the demo policy matches subjects by, made before it is applied (as
/// an operator's host would have them): the agent's executable, a copy of
/// sh at /opt/agents/ai-agent (on a tmpfs over the VM's /opt), and the
/// cgroup /agents.slice.
fn matched_subjects_fixture() {
    let out = Command::new("sh")
        .args([
            "-ec",
            "grep -qs ' /opt tmpfs ' /proc/mounts || mount -t tmpfs agents /opt
            mkdir -p /opt/agents && cp /bin/sh /opt/agents/ai-agent
            grep -qs ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
            mkdir -p /sys/fs/cgroup/agents.slice",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "subjects fixture: {}", String::from_utf8_lossy(&out.stderr));
}

/// The demo policy's text, and that text with `protect` paths added and
/// `rules` (action, target, tier) given to its agent profile before its
/// own.
pub fn demo_policy_with(protect: &[&str], rules: &[(&str, &str, &str)]) -> (String, String) {
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let first_rule = "[[profile.rule]]\naction = \"nft.element.*\"";
    let rules: String = rules
        .iter()
        .map(|(action, target, tier)| {
            format!("[[profile.rule]]\naction = \"{action}\"\ntarget = \"{target}\"\ntier = \"{tier}\"\n\n")
        })
        .collect();
    let paths: String = protect.iter().map(|path| format!("\"{path}\", ")).collect();
    for anchor in ["protect = [", first_rule] {
        assert!(text.contains(anchor), "policies/demo.toml no longer has {anchor:?}, where tests add to it");
    }
    let edited = text.replacen("protect = [", &format!("protect = [{paths}"), 1).replacen(
        first_rule,
        &format!("{rules}{first_rule}"),
        1,
    );
    (text, edited)
}

/// Runs shell `script` as root (not a subject); it must succeed.
pub fn as_root(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(out.status.success(), "root: {script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A helper script under tests/kernel/helpers.
pub fn helper(name: &str) -> String {
    repo().join("tests/kernel/helpers").join(name).display().to_string()
}

/// The nsfs inode of a network namespace under /run/netns.
pub fn netns_inode(name: &str) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(Path::new("/run/netns").join(name)).expect("namespace exists").ino()
}

/// Runs `ip` as root (not a subject) and insists it works.
pub fn ip_root(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip is installed");
    assert!(out.status.success(), "root ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

static DAEMON: OnceLock<Daemon> = OnceLock::new();

/// The PATH systemd gives a service, which the daemon runs with.
pub const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The wall clock, in seconds since the epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub fn daemon() -> &'static Daemon {
    DAEMON.get_or_init(Daemon::start)
}

pub fn nft_root(args: &[&str]) -> String {
    let out = Command::new("nft").args(args).output().expect("nft is installed");
    assert!(out.status.success(), "root nft {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args` as a subject of the `agent` profile through `warrant run`.
pub fn run_subject(args: &[&str]) -> Ran {
    run_subject_as("agent", args)
}

/// `warrant run --profile agent -- args`, to spawn.
pub fn subject_command(args: &[&str]) -> Command {
    let mut command = Command::new(warrant_bin());
    command.arg("--config").arg(&daemon().config).args(["run", "--profile", "agent", "--"]).args(args);
    command
}

/// Root runs python `open`, which leaves an open file in `fd`, and hands
/// that fd to a subject running python `script`, in which `FD` stands for
/// its number: the subject's exit code.
pub fn with_root_fd_from(open: &str, script: &str) -> Option<i32> {
    let d = daemon();
    let handed = format!(
        "import os,subprocess,sys\n\
         {open}\n\
         sub={script:?}.replace('FD',str(fd))\n\
         sys.exit(subprocess.run([{warrant:?},'--config',{config:?},'run','--profile','agent','--keep-fd',str(fd),'--','python3','-c',sub],pass_fds=[fd]).returncode)\n",
        warrant = warrant_bin().display().to_string(),
        config = d.config.display().to_string(),
    );
    Command::new("python3").args(["-c", &handed]).status().unwrap().code()
}

/// Runs `args` as a subject of `profile`.
pub fn run_subject_as(profile: &str, args: &[&str]) -> Ran {
    let d = daemon();
    let out: Output = Command::new(warrant_bin())
        .arg("--config")
        .arg(&d.config)
        .args(["run", "--profile", profile, "--"])
        .args(args)
        .output()
        .expect("warrant run");
    Ran { status: out.status, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

pub fn wait_for_file(path: &Path) -> String {
    wait_for_text(path, "")
}

/// The text of `path` once it holds `needle` (any text, for "").
pub fn wait_for_text(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
            && text.contains(needle)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "{} never held {needle:?}", path.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Daemon {
    fn start() -> Daemon {
        assert_eq!(
            std::env::var("WARRANT_KERNEL_TIER").as_deref(),
            Ok("1"),
            "kernel tier outside the VM: run `cargo xtask test`"
        );
        // On the VM's tmpfs /run: its /tmp is an overlay, where stat's inode
        // numbers are the upper layer's, not the ones the kernel hooks see.
        let dir = PathBuf::from(format!("/run/warrant-kernel-tier-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = repo().join("policies/demo-keys");
        let config = dir.join("warrant.toml");
        let audit = dir.join("log/audit.jsonl");
        // The log on a file system of its own, which a test fills.
        std::fs::create_dir_all(dir.join("log")).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "auditlog"])
            .arg(dir.join("log"))
            .status()
            .expect("mount is installed");
        assert!(mounted.success(), "cannot mount the audit log's tmpfs");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{d}/state\"\nsocket = \"{d}/run/warrant.sock\"\naudit_log = \"{a}\"\ntrusted_keys = [\"{k}\"]\nhost = \"vm-test\"\nnotify_command = \"cat >> {d}/notified.jsonl; echo >> {d}/notified.jsonl\"\nrequests_per_minute = 120\nquery_socket = \"{d}/query/query.sock\"\nbundle_dir = \"{d}/bundles.d\"\ninbox_dir = \"{d}/inbox\"\ncheckpoint_interval_secs = 2\n",
                d = dir.display(),
                a = audit.display(),
                k = keys.join("security-team.key.pub").display()
            ),
        )
        .unwrap();
        // The firewall the demo policy talks about, made by root.
        let _ = Command::new("nft").args(["delete", "table", "inet", "filter"]).output();
        nft_root(&["add", "table", "inet", "filter"]);
        nft_root(&["add", "chain", "inet", "filter", "input", "{ type filter hook input priority 0; }"]);
        nft_root(&["add", "set", "inet", "filter", "blocklist", "{ type ipv4_addr; }"]);
        // Subjects may not load kernel modules (self-protection), so root
        // loads the legacy x_tables modules the tests use.
        for tool in ["iptables-legacy", "ip6tables-legacy", "arptables-legacy", "ebtables-legacy"] {
            let _ = Command::new(tool).arg("-L").output();
        }
        // The namespaces the demo policy names exist before it is applied
        // (names resolve to inodes then); this also makes /run/netns the
        // shared mount `ip netns add` expects.
        for name in ["blue", "red", "green"] {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
            ip_root(&["netns", "add", name]);
        }
        // binfmt_misc as a systemd host has it (an automount there), when
        // the policy is applied (the persistence test mounts it after too).
        if !Path::new("/proc/sys/fs/binfmt_misc/register").exists() {
            let mounted = Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"])
                .status()
                .expect("mount is installed");
            assert!(mounted.success(), "cannot mount binfmt_misc");
        }
        protected_tree_fixture();
        matched_subjects_fixture();
        let daemon = Daemon { dir: dir.clone(), config, audit, pid: std::sync::Mutex::new(0) };
        daemon.spawn();
        let bundle = dir.join("demo.bundle");
        daemon.cli_ok(&[
            "policy",
            "sign",
            repo().join("policies/demo.toml").to_str().unwrap(),
            "--key",
            keys.join("security-team.key").to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ]);
        daemon.cli_ok(&["policy", "apply", bundle.to_str().unwrap()]);
        daemon
    }

    /// Starts `warrant daemon` and waits until it answers. The child is
    /// reaped by `kill`, or outlives the test binary with the VM.
    #[allow(clippy::zombie_processes)]
    fn spawn(&self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log")).unwrap();
        let child = Command::new(warrant_bin())
            .arg("--config")
            .arg(&self.config)
            .args(["daemon", "--verbose"])
            // systemd's PATH for services, /usr/local first.
            .env("PATH", SERVICE_PATH)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start warrant daemon");
        *self.pid.lock().unwrap() = child.id();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(300);
        while !self.run_cli_status(&["status"]).0 {
            let log = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
            assert!(Instant::now() < deadline && !log.contains("warrant: "), "daemon did not start: {log}");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Back to the host, which prints what starts cost (`cargo xtask test`).
        if let Ok(results) = std::env::var("WARRANT_RESULTS_DIR") {
            use std::io::Write as _;
            let path = Path::new(&results).join("daemon-starts.txt");
            if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(file, "{}", started.elapsed().as_millis());
            }
        }
    }

    /// SIGKILLs the daemon (no chance to clean up) and waits for it to be gone.
    pub fn kill(&self) {
        let pid = *self.pid.lock().unwrap();
        Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        // Reaped (the daemon is our child), so that its pid is free again;
        // -1: reaped already.
        while ![pid as i32, -1].contains(&reap_if_exited(pid)) {
            assert!(Instant::now() < deadline, "daemon {pid} survived SIGKILL");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        *self.pid.lock().unwrap()
    }

    pub fn restart(&self) {
        self.spawn();
    }

    pub fn run_cli_status(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(warrant_bin()).arg("--config").arg(&self.config).args(args).output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    pub fn run_cli(&self, args: &[&str]) -> String {
        self.run_cli_status(args).1
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run_cli_status(args);
        assert!(ok, "warrant {args:?} failed: {text}");
        text
    }

    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The version of the policy in force.
    pub fn policy_version(&self) -> u64 {
        let status: Value = serde_json::from_str(&self.cli_ok(&["status", "--json"])).expect("status --json is JSON");
        status["policy_version"].as_u64().expect("a policy is in force")
    }

    /// Signs `policy` (a demo policy text, `version = 1`) as the version
    /// after the one in force; returns that version and the bundle file.
    pub fn next_bundle(&self, policy: &str) -> (u64, PathBuf) {
        self.next_bundle_signed_by(policy, &repo().join("policies/demo-keys/security-team.key"))
    }

    /// [`Self::next_bundle`], signed with the private key at `key`.
    pub fn next_bundle_signed_by(&self, policy: &str, key: &Path) -> (u64, PathBuf) {
        let version = self.policy_version() + 1;
        let text = policy.replacen("version = 1\n", &format!("version = {version}\n"), 1);
        assert_ne!(text, policy, "the policy text has no `version = 1` line");
        let file = self.write_file(&format!("policy-v{version}.toml"), &text);
        let bundle = self.dir.join(format!("policy-v{version}.bundle"));
        self.cli_ok(&[
            "policy",
            "sign",
            file.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ]);
        (version, bundle)
    }

    /// Applies `policy` as the next version with `warrant policy apply`.
    pub fn apply_next_policy(&self, policy: &str) -> u64 {
        let (version, bundle) = self.next_bundle(policy);
        self.cli_ok(&["policy", "apply", bundle.to_str().unwrap()]);
        version
    }

    /// Signs a warrant for `request` with a demo key; returns its file.
    pub fn approve(&self, request: &str, signer: &str, ttl: &str, uses: u32) -> PathBuf {
        let out = self.dir.join(format!("{request}-{signer}-{uses}-{ttl}.warrant"));
        let key = repo().join(format!("policies/demo-keys/{signer}.key"));
        self.cli_ok(&[
            "approve",
            "--yes",
            request,
            "--key",
            key.to_str().unwrap(),
            "--ttl",
            ttl,
            "--uses",
            &uses.to_string(),
            "--reason",
            "kernel tier test",
            "--approver",
            signer,
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    }

    /// The records after the first `mark` lines (only those are parsed: the
    /// log grows to thousands of records, and this runs in a polling loop).
    fn records_after(&self, mark: usize) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .skip(mark)
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The records after the first `mark`, once the events so far are in.
    pub fn records_since(&self, mark: usize) -> Vec<Value> {
        std::thread::sleep(Duration::from_secs(1));
        self.records_after(mark)
    }

    pub fn audit_len(&self) -> usize {
        std::fs::read_to_string(&self.audit).unwrap_or_default().lines().count()
    }

    /// Waits for a decision record after `mark` with this action, target and verdict.
    pub fn expect_record(&self, mark: usize, action: &str, target: &str, verdict: &str) -> Value {
        self.expect_record_where(mark, &format!("{action} {target} {verdict}"), |r| {
            r["kind"] == "decision" && r["action"] == action && r["target"] == target && r["verdict"] == verdict
        })
    }

    /// Waits until `n` records after `mark` satisfy `matches`.
    pub fn expect_records_where(&self, mark: usize, n: usize, what: &str, matches: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.records_after(mark).iter().filter(|r| matches(r)).count();
            if found >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{found} of {n} records of {what} after line {mark}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for a record after `mark` that satisfies `matches`.
    /// A decision of `action` denied (in any tier), whatever its target.
    pub fn expect_denied(&self, mark: usize, action: &str) -> Value {
        self.expect_record_where(mark, &format!("{action} denied"), |r| {
            r["kind"] == "decision"
                && r["action"] == action
                && r["verdict"].as_str().is_some_and(|v| v.starts_with("denied"))
        })
    }

    pub fn expect_record_where(&self, mark: usize, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.records_after(mark).into_iter().find(|r| matches(r));
            if let Some(record) = found {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "no audit record {what} after #{mark}; log tail: {:?}",
                self.records_after(mark).iter().rev().take(5).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn reap_if_exited(pid: u32) -> i32 {
    let mut status = 0;
    unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) }
}
