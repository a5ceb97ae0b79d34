//! `warrant requests list|show|mine|decline`: change requests.

use crate::*;

pub(crate) fn requests_command(command: RequestsCommand, json: bool, config_path: Option<&Path>) -> anyhow::Result<()> {
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
            let mine: reply::MyRequests = query::call(&query_socket(config_path), &Query::MyRequests)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&mine)?);
            } else {
                if mine.requests.is_empty() {
                    println!("no change requests of profile {}", render::quoted(&mine.profile));
                }
                for r in &mine.requests {
                    print!("{}", render::request_view(r));
                }
            }
        }
        RequestsCommand::Decline { id, reason } => {
            let _: reply::Declined =
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
    Ok(())
}
