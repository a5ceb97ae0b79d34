//! The `warrant` command: daemon and CLI.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use warrant::{
    approval::{self, Approval},
    audit,
    config::Config,
    control::{self, Request},
    daemon::{self, now_unix},
    kernel::{self, Kernel},
    keys::{PublicKey, Signer},
    policy,
    query::{self, Query},
    render, requests,
    trust::{self, Envelope, POLICY_PAYLOAD_TYPE},
    trust_root::{TRUST_ROOT_PAYLOAD_TYPE, TrustRoot},
};

#[derive(Parser)]
#[command(name = "warrant", version, about = "BPF-LSM enforcement and accountability for AI infrastructure agents")]
struct Cli {
    /// Daemon configuration (default /etc/warrant/warrant.toml, or $WARRANT_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (needs root and BPF-LSM).
    Daemon,
    /// What this kernel supports; exit 0 only if enforcement works.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Daemon, policy version, profiles, warrants, counters.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Prometheus text: decisions, warrants, ring loss, policy version.
    Metrics,
    /// Start CMD as a subject of profile NAME.
    Run {
        #[arg(long)]
        profile: String,
        /// Let the command have this open fd (from 3 up; 0-2 always pass).
        /// Every other fd is closed at exec: what the agent did not open
        /// itself (a ring, a socket, a file of its starter's) it does not get.
        #[arg(long = "keep-fd", value_name = "N")]
        keep_fds: Vec<i32>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Write an Ed25519 key pair: PATH (private, 0600) and PATH.pub.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Rotate the keys that sign policy bundles.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Change requests from denials in the approve tier.
    Requests {
        #[command(subcommand)]
        command: Option<RequestsCommand>,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Sign a warrant for a change request with a Responsible Individual's key.
    Approve {
        request: String,
        #[command(flatten)]
        key: RiKeyArgs,
        /// How long the warrant is valid, e.g. 10m, 2h.
        #[arg(long)]
        ttl: String,
        #[arg(long, default_value_t = 1)]
        uses: u32,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
        /// Hosts the warrant is valid on (default: the request's host).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Approver name, when the policy in force on this machine does not name the key.
        #[arg(long)]
        approver: Option<String>,
        /// For an nft rule: approve any rule on the chain, not only the exact
        /// rule the request holds.
        #[arg(long)]
        any_content: bool,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Sign without asking (for scripts). On a terminal, the change is
        /// shown and signed only after you answer yes; without a terminal,
        /// --yes is required.
        #[arg(long)]
        yes: bool,
    },
    /// Add your signature to a warrant whose action needs two people.
    Cosign {
        warrant: PathBuf,
        #[command(flatten)]
        key: RiKeyArgs,
        /// Where to write the co-signed warrant (default: in place).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Put a warrant into the local cache (the daemon checks it first).
    Install { warrant: PathBuf },
    /// Remove a warrant from the kernel at once.
    Revoke { id: String },
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Why was this event allowed or denied.
    Explain { event_id: u64 },
    /// For an agent (a subject): its own latest denials, their rules and
    /// change requests.
    Why {
        /// Only the latest denial.
        #[arg(long)]
        last: bool,
        #[arg(long)]
        json: bool,
    },
    /// For an agent: wait until change request REQUEST is answered. Exit 0:
    /// a warrant for it is installed (retry now); 3: declined, or its
    /// warrant refused; 4: its warrant expired, was revoked or is used up;
    /// 5: still pending at the timeout; 1: an error.
    Wait {
        request: String,
        /// Give up after this long (e.g. 90s, 10m).
        #[arg(long, default_value = "15m")]
        timeout: String,
        #[arg(long)]
        json: bool,
    },
    /// Restore what a warrant's change replaced (not available yet).
    Rollback {
        change_id: String,
        /// Roll back even though the target changed again since.
        #[arg(long)]
        force: bool,
    },
    /// Remove pins and programs (root, not a subject).
    Uninstall,
}

/// The one key a Responsible Individual signs with.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct RiKeyArgs {
    /// A Warrant Ed25519 private key file (`warrant keygen`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// An OpenSSH key: a private key file, or the `.pub` of a key held by
    /// ssh-agent or a FIDO2 token (signed with `ssh-keygen -Y sign`, which
    /// asks for the touch or PIN).
    #[arg(long)]
    ssh_key: Option<PathBuf>,
}

impl RiKeyArgs {
    fn signer(&self) -> anyhow::Result<Signer> {
        match (&self.key, &self.ssh_key) {
            (Some(path), _) => Ok(Signer::Ed25519(trust::read_signing_key(path)?)),
            (None, Some(path)) => Ok(Signer::ssh(path)?),
            (None, None) => bail!("pass --key FILE or --ssh-key FILE"),
        }
    }
}

/// A file to sign, the private keys to sign it with, and where the signed
/// envelope goes.
#[derive(clap::Args)]
struct SignArgs {
    file: PathBuf,
    /// Warrant Ed25519 private key files.
    #[arg(long = "key", required_unless_present = "ssh_keys")]
    keys: Vec<PathBuf>,
    /// OpenSSH keys (see `approve --ssh-key`).
    #[arg(long = "ssh-key")]
    ssh_keys: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
}

impl SignArgs {
    /// Reads the file, refuses it unless `check` accepts its text, signs it
    /// as `payload_type` with every key and writes the envelope. Returns
    /// what `check` made of it and how many keys signed.
    fn sign<T>(&self, payload_type: &str, check: impl FnOnce(&str) -> anyhow::Result<T>) -> anyhow::Result<(T, usize)> {
        let text =
            std::fs::read_to_string(&self.file).with_context(|| format!("cannot read {}", self.file.display()))?;
        let checked = check(&text)?;
        let mut signers = Vec::new();
        for path in &self.keys {
            signers.push(Signer::Ed25519(trust::read_signing_key(path)?));
        }
        for path in &self.ssh_keys {
            signers.push(Signer::ssh(path)?);
        }
        let mut envelope = Envelope::unsigned(payload_type, text.as_bytes());
        for signer in &signers {
            signer.sign(&mut envelope)?;
        }
        std::fs::write(&self.out, envelope.to_json())
            .with_context(|| format!("cannot write {}", self.out.display()))?;
        Ok((checked, envelope.signatures.len()))
    }
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Sign a policy file into a bundle.
    Sign(SignArgs),
    /// Check a bundle's signatures, version and expiry.
    Verify {
        bundle: PathBuf,
        /// Trusted public keys (default: the config's trusted_keys).
        #[arg(long = "trust")]
        trust: Vec<PathBuf>,
        #[arg(long)]
        threshold: Option<usize>,
    },
    /// Give a bundle to the running daemon.
    Apply { bundle: PathBuf },
    /// Print the policy in force on this host.
    Show,
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Sign a trust root file (TOML: version, threshold, keys) with keys of
    /// the root in force.
    Sign(SignArgs),
    /// Give a signed trust root to the running daemon.
    Rotate { root: PathBuf },
}

#[derive(Subcommand)]
enum RequestsCommand {
    List,
    Show {
        id: String,
    },
    /// For an agent: its own profile's change requests.
    Mine,
    /// Say no to a change request; the agent's `warrant wait` returns 3.
    Decline {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit log (with its rotated files) and
    /// its signed checkpoint.
    Verify {
        #[arg(long)]
        log: Option<PathBuf>,
        /// The host's public key (default: the host key's .pub in the state
        /// directory, when it exists); with it the checkpoint must verify.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print the latest records.
    Tail {
        #[arg(long)]
        json: bool,
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WARRANT_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // journald stamps the time itself and shows escape codes raw.
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // Errors can quote what a subject named (a chain, a path).
            eprintln!("warrant: {}", render::escape(&one_line(&error)));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, outermost first.
fn one_line(error: &anyhow::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::Daemon => {
            let config = Config::load(config_path)?;
            tokio::runtime::Runtime::new()?.block_on(daemon::run(config))?;
        }
        Command::Doctor { json } => return Ok(doctor(json)),
        Command::Status { json } => {
            let config = Config::load(config_path)?;
            let status = control::call(&config.socket, &Request::Status)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
        Command::Metrics => {
            let config = Config::load(config_path)?;
            let text = control::call(&config.socket, &Request::Metrics)?;
            print!("{}", text.as_str().unwrap_or_default());
        }
        Command::Run { profile, keep_fds, command } => {
            let config = Config::load(config_path)?;
            warrant::subjects::close_inherited_fds_at_exec(&keep_fds)
                .context("cannot mark inherited fds close-on-exec")?;
            control::call(&config.socket, &Request::Register { profile: profile.clone() })?;
            let error = std::process::Command::new(&command[0])
                .args(&command[1..])
                .env(QUERY_SOCKET_ENV, &config.query_socket)
                .exec();
            bail!("cannot run {:?} as a subject of {profile}: {error}", command[0]);
        }
        Command::Keygen { out } => {
            let key = trust::generate_key_pair(&out)?;
            println!("wrote {} (private, 0600) and {}", out.display(), trust::public_path_of(&out).display());
            println!("key id {}", trust::key_id(&key));
        }
        Command::Policy(command) => policy_command(command, config_path)?,
        Command::Trust(TrustCommand::Sign(args)) => {
            let (root, signers) = args.sign(TRUST_ROOT_PAYLOAD_TYPE, |text| {
                TrustRoot::parse(text).map_err(|e| anyhow!("{}: {e}", args.file.display()))
            })?;
            println!(
                "signed trust root v{} ({} of {} keys) with {signers} key(s) into {}",
                root.version,
                root.threshold,
                root.keys.len(),
                args.out.display()
            );
        }
        Command::Trust(TrustCommand::Rotate { root }) => {
            let config = Config::load(config_path)?;
            let text = std::fs::read_to_string(&root).with_context(|| format!("cannot read {}", root.display()))?;
            let data = control::call(&config.socket, &Request::RotateTrust { root: text })?;
            println!("trust root v{} in force: {} of {:?}", data["version"], data["threshold"], data["keys"]);
        }
        Command::Requests { command, json } => {
            let command = command.unwrap_or(RequestsCommand::List);
            // An agent may not be able to read root's config.
            let config = match command {
                RequestsCommand::Mine => Config::load(config_path).unwrap_or_default(),
                _ => Config::load(config_path)?,
            };
            match command {
                RequestsCommand::List => {
                    let all = requests::list(&config.state_dir)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&all)?);
                    } else if all.is_empty() {
                        println!("no change requests");
                    } else {
                        for r in all {
                            let e = render::escape;
                            println!(
                                "{}  {}  {} {}  (attempts {}, by {} pid {})",
                                e(&r.id),
                                e(&r.profile),
                                e(&r.action),
                                e(&r.target),
                                r.attempts,
                                e(&r.exe),
                                r.pid
                            );
                        }
                    }
                }
                RequestsCommand::Mine => {
                    let data = query::call(&query_socket(config_path), &Query::MyRequests)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&data)?);
                    } else {
                        let mine = data["requests"].as_array().cloned().unwrap_or_default();
                        if mine.is_empty() {
                            println!("no change requests of profile {}", render::json_line(&data["profile"]));
                        }
                        for r in mine {
                            let r: requests::ChangeRequest = serde_json::from_value(r)?;
                            print!("{}", render::request_view(&r));
                        }
                    }
                }
                RequestsCommand::Decline { id, reason } => {
                    control::call(&config.socket, &Request::DeclineRequest { id: id.clone(), reason })?;
                    println!("declined {}", render::escape(&id));
                }
                RequestsCommand::Show { id } => {
                    let r = requests::load(&config.state_dir, &id)
                        .map_err(|e| anyhow!("no change request {id} in {}: {e}", config.state_dir.display()))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    } else {
                        print!("{}", render::request_view(&r));
                    }
                }
            }
        }
        Command::Approve { request, key, ttl, uses, reason, ticket, hosts, approver, any_content, out, yes } => {
            let config = Config::load(config_path)?;
            let grant = Grant { ttl, uses, reason, ticket, hosts, approver, any_content, yes };
            approve(&config, &request, &key, grant, out.as_deref())?;
        }
        Command::Cosign { warrant, key, out } => {
            let text = std::fs::read_to_string(&warrant)
                .with_context(|| format!("cannot read warrant {}", warrant.display()))?;
            let mut envelope = trust::Envelope::parse(&text).map_err(|e| anyhow!("{}: {e}", warrant.display()))?;
            let signer = key.signer()?;
            signer.sign(&mut envelope).map_err(|e| anyhow!("{}: {e}", warrant.display()))?;
            let target = out.unwrap_or_else(|| warrant.clone());
            std::fs::write(&target, envelope.to_json())
                .with_context(|| format!("cannot write {}", target.display()))?;
            println!(
                "co-signed {} with key {} ({} signature(s))",
                target.display(),
                signer.public().id(),
                envelope.signatures.len()
            );
        }
        Command::Install { warrant } => {
            let config = Config::load(config_path)?;
            let text = std::fs::read_to_string(&warrant)
                .with_context(|| format!("cannot read warrant {}", warrant.display()))?;
            let data = control::call(&config.socket, &Request::InstallWarrant { warrant: text })?;
            let text = |name: &str| render::escape(data[name].as_str().unwrap_or("?")).into_owned();
            println!(
                "installed warrant {} ({} {} for {}, {} use(s), approved by {})",
                text("warrant_id"),
                text("action"),
                text("target"),
                text("profile"),
                data["max_uses"],
                text("approver"),
            );
        }
        Command::Revoke { id } => {
            let config = Config::load(config_path)?;
            control::call(&config.socket, &Request::Revoke { id: id.clone() })?;
            println!("revoked {id}");
        }
        Command::Audit(command) => return audit_command(command, config_path),
        Command::Explain { event_id } => {
            let config = Config::load(config_path)?;
            let records = audit::read_all(&config.audit_log)?;
            let record = records
                .iter()
                .find(|r| r.get("seq").and_then(Value::as_u64) == Some(event_id))
                .ok_or_else(|| anyhow!("no event {event_id} in {}", config.audit_log.display()))?;
            println!("{}", render::explain(record));
        }
        Command::Why { last, json } => {
            let data = query::call(&query_socket(config_path), &Query::Why)?;
            let mut denials = data["denials"].as_array().cloned().unwrap_or_default();
            if last {
                denials.truncate(1);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({"profile": data["profile"], "denials": denials}))?);
            } else if denials.is_empty() {
                println!("no denials of profile {} since the daemon started", render::json_line(&data["profile"]));
            } else {
                for denial in denials.iter().filter_map(Value::as_object) {
                    println!("{}", render::denial(denial));
                }
            }
        }
        Command::Wait { request, timeout, json } => return wait(config_path, &request, &timeout, json),
        Command::Rollback { change_id, force } => {
            let config = Config::load(config_path)?;
            let data = control::call(&config.socket, &Request::Rollback { id: change_id, force })?;
            println!(
                "rolled back change {}: {} restored",
                render::json_line(&data["change_id"]),
                render::json_line(&data["restored"])
            );
        }
        Command::Uninstall => {
            if !nix::unistd::geteuid().is_root() {
                bail!("uninstall needs root");
            }
            match kernel::pinned_subject_profile(std::process::id()) {
                Ok(None) => {}
                Ok(Some(profile)) => bail!(
                    "refused: this process is a subject (profile #{profile}); run uninstall from an unconfined root shell"
                ),
                Err(e) => bail!(
                    "refused: cannot read Warrant's subject map ({e}), as happens to a subject; run uninstall from an unconfined root shell"
                ),
            }
            let config = Config::load(config_path)?;
            if control::call(&config.socket, &Request::Status).is_ok() {
                bail!(
                    "the daemon is running at {}; stop it first (e.g. systemctl stop warrant), then uninstall",
                    config.socket.display()
                );
            }
            if kernel::remove_pins()? {
                println!("removed {}: programs detached, maps released", kernel::PIN_ROOT);
            } else {
                println!("nothing pinned at {}", kernel::PIN_ROOT);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn doctor(json: bool) -> ExitCode {
    let root = nix::unistd::geteuid().is_root();
    let lsm = kernel::check_bpf_lsm();
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    // Without bpf in lsm= the load tries the fmod_ret mode; its error says
    // what to change if that fails too.
    let load = (root && btf).then(|| Kernel::load(false).map(|k| (k.mode().clone(), k.missing_hooks().to_vec())));
    let (mode, missing_hooks) = match &load {
        Some(Ok((mode, missing))) => (Some(mode.clone()), missing.clone()),
        _ => (None, Vec::new()),
    };
    let (available, reason) = match &load {
        _ if !root => (false, "not root: loading BPF programs needs CAP_BPF and CAP_MAC_ADMIN".to_owned()),
        _ if !btf => (false, "no kernel BTF at /sys/kernel/btf/vmlinux".to_owned()),
        Some(Err(e)) => (false, e.to_string()),
        _ => (true, "the decision programs load on this kernel".to_owned()),
    };
    let release = warrant::daemon::kernel_release();
    // Without bpf among the active LSMs: the boot change that adds it.
    let fix = match &lsm {
        Err(kernel::KernelError::LsmInactive(active)) => {
            warrant::lsm_fix::steps(active, warrant::lsm_fix::read_grub_defaults().as_deref())
        }
        _ => Vec::new(),
    };
    if json {
        let report = json!({
            "kernel": release, "root": root, "bpf_lsm_active": lsm.is_ok(), "btf": btf,
            "enforcement": if available { "available" } else { "unavailable" }, "reason": reason,
            "missing_hooks": missing_hooks, "mode": mode.as_ref().map(kernel::Mode::name), "fix": fix,
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        println!("kernel {release}");
        println!("root: {}", if root { "yes" } else { "no" });
        println!(
            "bpf in active LSMs: {}",
            match &lsm {
                Ok(()) => "yes".to_owned(),
                Err(e) => format!("no ({e})"),
            }
        );
        println!("kernel BTF: {}", if btf { "yes" } else { "no" });
        println!("enforcement: {} ({reason})", if available { "available" } else { "unavailable" });
        match &mode {
            Some(kernel::Mode::BpfLsm) => println!("mode: bpf-lsm (programs on the LSM hooks)"),
            Some(kernel::Mode::ModifyReturn { active_lsms }) => println!(
                "mode: fmod_ret (programs on the security_* functions, since bpf is not among the active LSMs \
                 {active_lsms}; boot with lsm={active_lsms},bpf for every hook)"
            ),
            None => {}
        }
        for missing in &missing_hooks {
            println!("coverage: {}", missing.effect);
        }
        for line in &fix {
            println!("{line}");
        }
    }
    if available { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn print_status(status: &Value) {
    println!("daemon: {}", status["daemon"].as_str().unwrap_or("?"));
    println!("host: {}", status["host"].as_str().unwrap_or("?"));
    match status["policy_version"].as_u64() {
        Some(v) => println!(
            "policy: v{v} (expires {}{})",
            status["policy_expires"].as_str().unwrap_or("?"),
            if status["policy_expired"] == true { "; EXPIRED, still enforced: apply a new bundle" } else { "" }
        ),
        None => println!("policy: none (subjects are denied every action)"),
    }
    if let Some(mode) = status["mode"].as_str() {
        println!("mode: {mode}");
    }
    for missing in status["missing_hooks"].as_array().into_iter().flatten() {
        println!("coverage: {}", missing["effect"].as_str().unwrap_or("?"));
    }
    if let Some(profiles) = status["profiles"].as_array() {
        let names: Vec<&str> = profiles.iter().filter_map(Value::as_str).collect();
        println!("profiles: {}", names.join(", "));
    }
    let warrants = status["warrants"].as_array().cloned().unwrap_or_default();
    println!("warrants: {}", warrants.len());
    for w in warrants {
        let text = |name: &str| render::escape(w[name].as_str().unwrap_or("?")).into_owned();
        println!(
            "  {} {} {} ({}), uses left {}, by {}",
            text("id"),
            text("action"),
            text("target"),
            text("profile"),
            w["uses_left"],
            text("approver")
        );
    }
    if let Some(requests) = status["requests"].as_object() {
        let dropped: Vec<String> = requests
            .get("dropped")
            .and_then(Value::as_object)
            .map(|d| d.iter().map(|(profile, n)| format!("{} {n}", render::escape(profile))).collect())
            .unwrap_or_default();
        println!(
            "change requests: {} open{}",
            requests.get("open").and_then(Value::as_u64).unwrap_or(0),
            if dropped.is_empty() {
                String::new()
            } else {
                format!("; dropped past the limits: {}", dropped.join(", "))
            }
        );
    }
    if let Some(counters) = status["decisions"].as_object() {
        let parts: Vec<String> = counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("decisions: {}", if parts.is_empty() { "none yet".to_owned() } else { parts.join(", ") });
    }
}

fn policy_command(command: PolicyCommand, config_path: Option<&Path>) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Sign(args) => {
            let (compiled, signers) = args.sign(POLICY_PAYLOAD_TYPE, |text| {
                policy::Policy::parse(text)
                    .and_then(policy::compile)
                    .with_context(|| format!("{} was not signed", args.file.display()))
            })?;
            println!("signed policy v{} with {signers} key(s) into {}", compiled.version(), args.out.display());
        }
        PolicyCommand::Verify { bundle, trust: trust_paths, threshold } => {
            let config = Config::load(config_path)?;
            let paths = if trust_paths.is_empty() { config.trusted_keys.clone() } else { trust_paths };
            if paths.is_empty() {
                bail!("no trusted keys: pass --trust PUBKEY or set trusted_keys in the config");
            }
            let trusted = paths.iter().map(|p| trust::read_signer_key(p)).collect::<Result<Vec<_>, _>>()?;
            let text = std::fs::read_to_string(&bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
            let envelope = Envelope::parse(&text)?;
            let (payload, signers) =
                envelope.verify(POLICY_PAYLOAD_TYPE, &trusted, threshold.unwrap_or(config.policy_threshold))?;
            let text = String::from_utf8(payload).map_err(|_| anyhow!("policy payload is not UTF-8"))?;
            let compiled = policy::Policy::parse(&text).and_then(policy::compile)?;
            if compiled.expired_at(now_unix()) {
                bail!("policy v{} expired at {}", compiled.version(), compiled.policy.expires);
            }
            let ids: Vec<String> = signers.iter().map(PublicKey::id).collect();
            for warning in warrant::guarded::allowed(&compiled) {
                eprintln!("{warning}");
            }
            println!(
                "valid: policy v{}, expires {}, signed by {}, profiles {}",
                compiled.version(),
                compiled.policy.expires,
                ids.join(", "),
                compiled.profile_ids.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        PolicyCommand::Show => {
            let config = Config::load(config_path)?;
            let path = config.state_dir.join("policy.bundle");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("no policy in force on this host ({} is missing)", path.display()))?;
            use base64::Engine as _;
            let payload = base64::engine::general_purpose::STANDARD
                .decode(Envelope::parse(&text)?.payload)
                .context("the persisted bundle is damaged")?;
            print!("{}", String::from_utf8_lossy(&payload));
            println!("\n# Guarded surfaces, protected for every profile and denied unless a rule names them:");
            for tree in warrant::guarded::GUARDED {
                println!("#   {tree}");
            }
        }
        PolicyCommand::Apply { bundle } => {
            let config = Config::load(config_path)?;
            let text = std::fs::read_to_string(&bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
            let data = control::call(&config.socket, &Request::ApplyPolicy { bundle: text })?;
            let phases: Vec<String> = data["apply_phases_ms"]
                .as_object()
                .map(|p| p.iter().filter_map(|(name, ms)| Some(format!("{name} {:.1}", ms.as_f64()?))).collect())
                .unwrap_or_default();
            match data["apply_ms"].as_f64() {
                Some(ms) => {
                    println!("policy v{} in force (applied in {ms:.1} ms: {})", data["version"], phases.join(", "))
                }
                None => println!("policy v{} in force", data["version"]),
            }
        }
    }
    Ok(())
}

/// What an RI grants with `warrant approve`, besides the request itself.
struct Grant {
    ttl: String,
    uses: u32,
    reason: String,
    ticket: Option<String>,
    hosts: Vec<String>,
    approver: Option<String>,
    any_content: bool,
    /// Signed without the question on a terminal.
    yes: bool,
}

fn approve(config: &Config, request_id: &str, key: &RiKeyArgs, grant: Grant, out: Option<&Path>) -> anyhow::Result<()> {
    let Grant { ttl, uses, reason, ticket, hosts, approver, any_content, yes } = grant;
    let request = requests::load(&config.state_dir, request_id)
        .map_err(|e| anyhow!("no change request {request_id} in {}: {e}", config.state_dir.display()))?;
    let signer = key.signer()?;
    let ttl = humantime::parse_duration(&ttl).map_err(|e| anyhow!("--ttl {ttl:?}: {e} (use e.g. 10m, 2h)"))?;
    if uses == 0 {
        bail!("--uses must be at least 1");
    }
    let content_digest = match &request.content_digest {
        Some(_) if any_content => None,
        Some(text) if approval::parse_digest(text).is_none() => bail!(
            "request {request_id} holds content too long to bind (over {} bytes); pass --any-content to approve any rule on {}",
            warrant_common::netlink::MAX_DIGEST_BYTES,
            request.target
        ),
        digest => digest.clone(),
    };
    let public = signer.public();
    let approver = match approver {
        Some(name) => name,
        None => {
            let bundle = std::fs::read_to_string(config.state_dir.join("policy.bundle"))
                .with_context(|| "no policy in force here to look the key up in; pass --approver NAME")?;
            let payload = Envelope::parse(&bundle)?.payload;
            use base64::Engine as _;
            let text = base64::engine::general_purpose::STANDARD.decode(payload)?;
            let compiled = policy::Policy::parse(&String::from_utf8_lossy(&text)).and_then(policy::compile)?;
            let ri = compiled.approver_for(&public, &request.action).ok_or_else(|| {
                anyhow!(
                    "key {} is not a Responsible Individual who may approve {} in policy v{}",
                    public.id(),
                    request.action,
                    compiled.version()
                )
            })?;
            // The daemon checks a signature in the form the policy writes
            // the key in: an SSH signature against an ssh- line, an Ed25519
            // one against base64.
            let listed = compiled.responsibles.iter().find(|(r, _)| r.name == ri.name).map(|(_, k)| k);
            if let Some(listed) = listed
                && matches!(listed, PublicKey::Ssh(_)) != matches!(public, PublicKey::Ssh(_))
            {
                bail!(
                    "policy v{} writes {}'s key as {}: sign with {}",
                    compiled.version(),
                    ri.name,
                    if matches!(listed, PublicKey::Ssh(_)) { "an OpenSSH line" } else { "a Warrant key" },
                    if matches!(listed, PublicKey::Ssh(_)) {
                        "--ssh-key"
                    } else {
                        "--key (or list the ssh-ed25519 line in the policy)"
                    }
                );
            }
            ri.name.clone()
        }
    };
    let hosts = if hosts.is_empty() { vec![request.host.clone()] } else { hosts };
    // What is signed, in full, before it is signed.
    let e = render::escape;
    eprint!("{}", render::request_view(&request));
    eprintln!(
        "  {:<14} {} by {approver} on {}, valid {}, {uses} use(s){}",
        "warrant",
        if content_digest.is_none() && request.content_digest.is_some() { "ANY CONTENT" } else { "as shown" },
        hosts.iter().map(|h| e(h).into_owned()).collect::<Vec<_>>().join(", "),
        humantime::format_duration(ttl),
        ticket.as_deref().map(|t| format!(", ticket {}", e(t))).unwrap_or_default()
    );
    if !yes {
        confirm()?;
    }
    let now = now_unix();
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let approval = Approval {
        id: format!("w-{}", hex::encode(nonce)),
        request: Some(request.id.clone()),
        requester: Some(format!("{} (pid {}, uid {})", request.exe, request.pid, request.uid)),
        approver: approver.clone(),
        approver_key: public.id(),
        hosts,
        profile: request.profile.clone(),
        action: request.action.clone(),
        target: request.target.clone(),
        not_before: now.saturating_sub(5),
        expires_at: now + ttl.as_secs(),
        max_uses: uses,
        reason,
        ticket,
        rollback_owner: approver,
        content_digest,
        request_digest: Some(request.digest()),
    };
    let mut envelope = approval.unsigned();
    signer.sign(&mut envelope)?;
    let envelope = envelope.to_json();
    match out {
        Some(path) => {
            std::fs::write(path, &envelope).with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "warrant {} for {} {} ({} use(s), {}s) written to {}",
                approval.id,
                render::escape(&approval.action),
                render::escape(&approval.target),
                approval.max_uses,
                ttl.as_secs(),
                path.display()
            );
        }
        None => println!("{envelope}"),
    }
    Ok(())
}

/// The query socket: $WARRANT_QUERY_SOCKET (`warrant run` sets it for its
/// command), else the config's, else the default: a subject cannot read
/// Warrant's config, one of Warrant's own files.
fn query_socket(config_path: Option<&Path>) -> PathBuf {
    std::env::var_os(QUERY_SOCKET_ENV).map(PathBuf::from).unwrap_or_else(|| {
        Config::load(config_path).map(|c| c.query_socket).unwrap_or_else(|_| query::DEFAULT_SOCKET.into())
    })
}

const QUERY_SOCKET_ENV: &str = "WARRANT_QUERY_SOCKET";

/// `warrant wait`: asks every 2 s until the request is answered or the
/// timeout passes; the exit code says how it ended.
fn wait(config_path: Option<&Path>, request: &str, timeout: &str, json: bool) -> anyhow::Result<ExitCode> {
    let timeout =
        humantime::parse_duration(timeout).map_err(|e| anyhow!("--timeout {timeout:?}: {e} (use e.g. 90s, 10m)"))?;
    let socket = query_socket(config_path);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let data = query::call(&socket, &Query::RequestState { id: request.to_owned() })?;
        let state: query::RequestState = serde_json::from_value(data["status"].clone())
            .map_err(|e| anyhow!("the daemon's answer is not a request state: {e}"))?;
        let pending = state == query::RequestState::Pending;
        if !pending || std::time::Instant::now() >= deadline {
            if json {
                println!("{}", serde_json::to_string(&data)?);
            } else {
                println!("request {}: {}", render::escape(request), render::json_line(&data["status"]));
            }
            return Ok(ExitCode::from(state.exit_code()));
        }
        std::thread::sleep(std::time::Duration::from_secs(2).min(deadline - std::time::Instant::now()));
    }
}

/// Asks on the terminal; Ok only for an explicit yes.
fn confirm() -> anyhow::Result<()> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        bail!("not signed: no terminal to confirm on; read the change above and pass --yes to sign it");
    }
    eprint!("Sign this warrant? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        bail!("not signed: the answer was not yes");
    }
    Ok(())
}

fn audit_command(command: AuditCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    match command {
        AuditCommand::Verify { log, key } => {
            let path = log.unwrap_or(config.audit_log.clone());
            if audit::chain_files(&path).is_empty() {
                bail!("no audit log at {} (see audit_log in the config)", path.display());
            }
            let default_key = trust::public_path_of(&config.host_key_path());
            let key_path =
                key.or_else(|| (default_key.exists() && audit::checkpoint_path(&path).exists()).then_some(default_key));
            let host_key = key_path.as_deref().map(trust::read_public_key).transpose()?;
            match audit::verify_log(&path, host_key.as_ref()) {
                Ok((summary, checkpoint)) => {
                    println!(
                        "audit log {} verifies: {} records, head {}",
                        path.display(),
                        summary.records,
                        summary.last_hash
                    );
                    match checkpoint {
                        Some(c) => println!("checkpoint by {}: {} records signed, all present", c.origin, c.size),
                        None => println!("no checkpoint checked: a log cut short at its end would not show"),
                    }
                }
                Err(e) => {
                    eprintln!("warrant: {e}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        AuditCommand::Tail { json, lines, log } => {
            let records = audit::read_all(&log.unwrap_or(config.audit_log))?;
            for record in records.iter().skip(records.len().saturating_sub(lines)) {
                if json {
                    println!("{}", serde_json::to_string(record)?);
                } else {
                    println!("{}", render::record_line(record));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
