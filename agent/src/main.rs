//! The `warrant` command: daemon and CLI.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

mod cli;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use cli::*;
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
    render, reply, requests,
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
    Daemon {
        /// Log at debug level (unless WARRANT_LOG says otherwise): among
        /// other things, how much of the verifier's budget each program
        /// used on this kernel.
        #[arg(long)]
        verbose: bool,
    },
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
    /// Restore what a warrant's file or nft change replaced (CHANGE_ID is the warrant id).
    Rollback {
        change_id: String,
        /// Roll back even though the target changed again since.
        #[arg(long)]
        force: bool,
    },
    /// Clear the mark on files a subject wrote, after reading them: whoever
    /// runs them then runs unconfined (root, not a subject; audited).
    Unmark {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Files subjects wrote: mount point, inode and profile of each.
    Marks {
        #[arg(long)]
        json: bool,
    },
    /// Remove pins and programs (root, not a subject).
    Uninstall,
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
    /// Trust the configured keys the daemon reports unsettled (`warrant
    /// status`: config_differs, configured_keys): it pins the keys it read
    /// at start as trust root v0. Check them first, and name them.
    AcceptConfig {
        /// The ids of the keys checked (comma-separated, every one of
        /// `configured_keys`; `warrant trust key-id FILE` prints a key
        /// file's): nothing is pinned unless they are exactly the keys
        /// waiting, so keys swapped after you looked are not.
        #[arg(long, value_delimiter = ',', required = true)]
        keys: Vec<String>,
        /// The threshold checked (`configured_threshold`): a configuration
        /// that lowered it is not accepted by naming the keys alone.
        #[arg(long)]
        threshold: usize,
    },
    /// Print the id of each public key file, as status and records name keys.
    KeyId {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
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
    if !matches!(cli.command, Command::Daemon { .. }) {
        // A command's reader that goes away (`warrant status | head`) ends
        // it quietly, as it would any other tool, rather than in a panic.
        // The daemon keeps SIGPIPE ignored: a peer that leaves is an error.
        // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WARRANT_LOG").unwrap_or_else(|_| {
            if matches!(cli.command, Command::Daemon { verbose: true }) { "info,warrant=debug" } else { "info" }.into()
        }))
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
        Command::Daemon { .. } => {
            let config = Config::load(config_path)?;
            // Before the runtime starts its threads (see host_mount.rs).
            let config = warrant::host_mount::enter(config)?;
            tokio::runtime::Runtime::new()?.block_on(daemon::run(config))?;
        }
        Command::Doctor { json } => return Ok(doctor(json)),
        Command::Status { json } => {
            let config = Config::load(config_path)?;
            let status: Box<reply::Status> = control::call(&config.socket, &Request::Status)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
        Command::Metrics => {
            let config = Config::load(config_path)?;
            let text: String = control::call(&config.socket, &Request::Metrics)?;
            print!("{text}");
        }
        Command::Run { profile, keep_fds, command } => {
            let config = Config::load(config_path)?;
            if let Some(fd) = warrant::subjects::passed_rings(&keep_fds).first() {
                bail!(
                    "fd {fd} is an io_uring ring, which a subject may not be handed (its submissions would not run \
                     as the subject); close it or leave it out of --keep-fd"
                );
            }
            warrant::subjects::close_inherited_fds_at_exec(&keep_fds)
                .context("cannot mark inherited fds close-on-exec")?;
            let _: reply::Registered = control::call(&config.socket, &Request::Register { profile: profile.clone() })?;
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
        Command::Trust(command) => trust_command(command, config_path)?,
        Command::Requests { command, json } => {
            requests_command(command.unwrap_or(RequestsCommand::List), json, config_path)?
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
            let w: Box<reply::WarrantInstalled> =
                control::call(&config.socket, &Request::InstallWarrant { warrant: text })?;
            println!(
                "installed warrant {} ({} {} for {}, {} use(s), approved by {})",
                render::escape(&w.warrant_id),
                render::escape(&w.action),
                render::escape(&w.target),
                render::escape(&w.profile),
                w.max_uses,
                render::escape(&w.approver),
            );
        }
        Command::Revoke { id } => {
            let config = Config::load(config_path)?;
            let _: reply::Revoked = control::call(&config.socket, &Request::Revoke { id: id.clone() })?;
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
            let mut why: reply::Denials = query::call(&query_socket(config_path), &Query::Why)?;
            if last {
                why.denials.truncate(1);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&why)?);
            } else if why.denials.is_empty() {
                println!("no denials of profile {} since the daemon started", render::quoted(&why.profile));
            } else {
                for denial in &why.denials {
                    println!("{}", render::denial(denial));
                }
            }
        }
        Command::Wait { request, timeout, json } => return wait(config_path, &request, &timeout, json),
        Command::Rollback { change_id, force } => {
            let config = Config::load(config_path)?;
            let rolled_back: reply::RolledBack =
                control::call(&config.socket, &Request::Rollback { id: change_id, force })?;
            println!(
                "rolled back change {}: {} restored",
                render::quoted(&rolled_back.change_id),
                render::quoted(&rolled_back.restored)
            );
        }
        Command::Unmark { paths } => unmark(config_path, paths)?,
        Command::Marks { json } => list_marks(config_path, json)?,
        Command::Uninstall => uninstall(config_path)?,
    }
    Ok(ExitCode::SUCCESS)
}
