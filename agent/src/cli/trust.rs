//! `warrant trust sign|rotate|key-id|accept-config`: the keys that sign policy bundles.

use crate::*;

pub(crate) fn trust_command(command: TrustCommand, config_path: Option<&Path>) -> anyhow::Result<()> {
    match command {
        TrustCommand::Sign(args) => {
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
        TrustCommand::Rotate { root } => {
            let config = Config::load(config_path)?;
            let text = std::fs::read_to_string(&root).with_context(|| format!("cannot read {}", root.display()))?;
            let rotated: reply::TrustRotated = control::call(&config.socket, &Request::RotateTrust { root: text })?;
            println!("trust root v{} in force: {} of {:?}", rotated.version, rotated.threshold, rotated.keys);
        }
        TrustCommand::KeyId { files } => {
            for file in files {
                let key = warrant::trust::read_signer_key(&file)?;
                println!("{} {}", key.id(), file.display());
            }
        }
        TrustCommand::AcceptConfig { keys, threshold } => {
            let config = Config::load(config_path)?;
            let accepted: reply::ConfigTrustAccepted =
                control::call(&config.socket, &Request::AcceptConfigTrust { keys, threshold })?;
            println!(
                "configuration's keys pinned as trust root v0: {} of {:?}; v{} in force",
                accepted.threshold, accepted.keys, accepted.version_in_force
            );
        }
    }
    Ok(())
}
