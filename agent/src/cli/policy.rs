//! `warrant policy sign|verify|apply|show`.

use crate::*;

pub(crate) fn policy_command(command: PolicyCommand, config_path: Option<&Path>) -> anyhow::Result<()> {
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
                let missing = std::fs::symlink_metadata(tree).is_err();
                println!("#   {tree}{}", if missing { " (not on this host: its name is guarded)" } else { "" });
            }
        }
        PolicyCommand::Apply { bundle } => {
            let config = Config::load(config_path)?;
            let text = std::fs::read_to_string(&bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
            let applied: reply::PolicyApplied = control::call(&config.socket, &Request::ApplyPolicy { bundle: text })?;
            let phases: Vec<String> =
                applied.apply_phases_ms.iter().map(|(name, ms)| format!("{name} {ms:.1}")).collect();
            println!(
                "policy v{} in force (applied in {:.1} ms: {})",
                applied.version,
                applied.apply_ms,
                phases.join(", ")
            );
            if let Some(inodes) = applied.protected_inodes {
                println!("{inodes} inodes protected");
            }
            if applied.protected_missed > 0 {
                eprintln!(
                    "warning: {} of them found no room in the kernel's map of protected files (full: see \
                     `warrant status`); they stay protected, decided by their names, until a walk finds them room",
                    applied.protected_missed
                );
            }
        }
    }
    Ok(())
}
