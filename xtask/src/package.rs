//! The .deb the README describes: built with cargo-deb and checked for the
//! files a host needs from it. Part of the host tier, so a packaging change
//! that drops the unit or the configuration fails the tests.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{paths::repo_root, process::stdout_of};

/// What the package must install, as `dpkg-deb -c` lists it.
const REQUIRED: &[&str] = &["./usr/sbin/warrant", "/systemd/system/warrant.service", "./etc/warrant/warrant.toml"];

/// Builds the .deb and checks its files and conffiles; returns its path.
pub fn build_and_check_deb() -> Result<String> {
    let built = stdout_of(Command::new("cargo").args(["deb", "-p", "warrant"]).current_dir(repo_root()))
        .context("cargo deb -p warrant")?;
    let deb = built.lines().last().map(str::trim).unwrap_or_default().to_owned();
    if !deb.ends_with(".deb") {
        bail!("cargo deb printed no .deb path: {built}");
    }
    let listing = stdout_of(Command::new("dpkg-deb").args(["-c", &deb])).context("dpkg-deb -c")?;
    for path in REQUIRED {
        if !listing.lines().any(|line| line.ends_with(path)) {
            bail!("{deb} does not install {path}");
        }
    }
    let conffiles = stdout_of(Command::new("dpkg-deb").args(["-I", &deb, "conffiles"])).context("dpkg-deb -I")?;
    if !conffiles.lines().any(|line| line.trim() == "/etc/warrant/warrant.toml") {
        bail!("{deb} does not mark /etc/warrant/warrant.toml as a conffile (local edits would be lost)");
    }
    Ok(deb)
}
