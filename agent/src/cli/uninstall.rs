//! `warrant uninstall`: detaches the programs and releases the maps, from
//! an unconfined root shell once the daemon is stopped.

use crate::*;

pub(crate) fn uninstall(config_path: Option<&Path>) -> anyhow::Result<()> {
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
    // Any answer, a refusal or one of another release included, is a daemon.
    let answered = !matches!(
        control::call::<Box<reply::Status>>(&config.socket, &Request::Status),
        Err(control::ControlError::Unreachable { .. })
    );
    if answered {
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
    Ok(())
}
