//! `warrant approve`: the whole change shown, a yes on the terminal, then
//! the signature.

use crate::*;

/// What an RI grants with `warrant approve`, besides the request itself.
pub(crate) struct Grant {
    pub(crate) ttl: String,
    pub(crate) uses: u32,
    pub(crate) reason: String,
    pub(crate) ticket: Option<String>,
    pub(crate) hosts: Vec<String>,
    pub(crate) approver: Option<String>,
    pub(crate) any_content: bool,
    /// Signed without the question on a terminal.
    pub(crate) yes: bool,
}

pub(crate) fn approve(
    config: &Config,
    request_id: &str,
    key: &RiKeyArgs,
    grant: Grant,
    out: Option<&Path>,
) -> anyhow::Result<()> {
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

/// Asks on the terminal; Ok only for an explicit yes.
pub(crate) fn confirm() -> anyhow::Result<()> {
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
