//! `warrant audit verify|tail`.

use crate::*;

pub(crate) fn audit_command(command: AuditCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
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
                    if summary.unfinished_tail > 0 {
                        println!(
                            "the last line ({} bytes) has no end yet: a record being written, or one a crash cut \
                             short (the daemon cuts it at its next start); not counted",
                            summary.unfinished_tail
                        );
                    }
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
