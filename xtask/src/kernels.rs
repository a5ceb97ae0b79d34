//! The guest kernels of the kernel matrix: Debian 12's 6.1, Debian's 6.12,
//! and the newest kernel of Debian's development suite (sid). Each is found
//! in /boot by name; `cargo xtask setup` installs the missing ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process::{run_checked, stdout_of};

/// One kernel series of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Series {
    /// Debian 12's standard kernel (linux-image-6.1.0-NN-amd64).
    #[value(name = "6.1")]
    V6_1,
    /// Debian's 6.12 (linux-image-6.12.*+deb12-amd64).
    #[value(name = "6.12")]
    V6_12,
    /// The newest kernel in Debian sid (7.x at the time of writing).
    #[value(name = "dev")]
    Dev,
}

pub const ALL: [Series; 3] = [Series::V6_1, Series::V6_12, Series::Dev];

impl Series {
    pub fn label(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
            Series::Dev => "dev",
        }
    }

    /// Whether a /boot file name is a kernel of this series. The -cloud-
    /// flavour has no 9p modules and cannot mount the shared root.
    pub fn matches(self, boot_name: &str) -> bool {
        let Some(version) = boot_name.strip_prefix("vmlinuz-") else { return false };
        if !version.ends_with("-amd64") || version.contains("-cloud-") || version.contains("-rt-") {
            return false;
        }
        let key = version_key(version);
        match self {
            Series::V6_1 => key.starts_with(&[6, 1, 0]),
            Series::V6_12 => key.starts_with(&[6, 12]),
            // Anything newer than the stable series.
            Series::Dev => key.len() >= 2 && (key[0], key[1]) > (6, 12),
        }
    }

    /// The newest installed kernel of this series.
    pub fn find(self) -> Option<PathBuf> {
        let entries = std::fs::read_dir("/boot").ok()?;
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| self.matches(name))
            .max_by_key(|name| version_key(name))
            .map(|name| Path::new("/boot").join(name))
    }

    /// The apt package that installs this series from the host's sources,
    /// or None for the development kernel (see `install_dev`).
    pub fn apt_package(self) -> Result<Option<String>> {
        let (pattern, prefix) = match self {
            Series::V6_1 => (r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$", "linux-image-6.1.0-"),
            Series::V6_12 => (r"^linux-image-6\.12\..*\+deb12-amd64-unsigned$", "linux-image-6.12."),
            Series::Dev => return Ok(None),
        };
        // Point releases leave the archive: take the newest apt offers.
        let listing = stdout_of(Command::new("apt-cache").args(["search", "--names-only", pattern]))?;
        newest_name(&listing, prefix).map(Some).with_context(|| {
            format!("apt offers no package matching {pattern} (is Debian 12's archive in the apt sources?)")
        })
    }
}

/// Numbers in a kernel or package name, for ordering by version
/// ("vmlinuz-6.12.117+deb12-amd64" -> [6, 12, 117, 12, 64]).
pub fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// The newest package name starting with `prefix` in `apt-cache search`
/// output, leaving out other flavours.
fn newest_name(listing: &str, prefix: &str) -> Option<String> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix) && !name.contains("cloud") && !name.contains("-rt-"))
        .filter(|name| !name.ends_with("-dbg"))
        .max_by_key(|name| version_key(name))
        .map(str::to_string)
}

/// Installs the newest sid kernel without touching the host's apt state: a
/// private sources list and cache, `apt-get download`, `dpkg-deb -x`, then
/// the kernel to /boot and its modules to /lib/modules (never `dpkg -i`:
/// sid packages depend on sid).
pub fn install_dev() -> Result<PathBuf> {
    let work = crate::paths::fresh_dir(&crate::paths::target_dir().join("sid-kernel"))?;
    let uri = host_debian_uri().unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let sources = work.join("sources.list");
    std::fs::write(
        &sources,
        format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} sid main\n"),
    )?;
    for dir in ["lists/partial", "cache/archives/partial", "debs", "root"] {
        std::fs::create_dir_all(work.join(dir))?;
    }
    let apt_options = |cmd: &mut Command| {
        let w = work.display();
        cmd.args(["-o", &format!("Dir::Etc::sourcelist={}", sources.display())])
            .args(["-o", "Dir::Etc::sourceparts=-"])
            .args(["-o", &format!("Dir::State::Lists={w}/lists")])
            .args(["-o", &format!("Dir::Cache={w}/cache")]);
    };
    let mut update = Command::new("apt-get");
    apt_options(&mut update);
    run_checked(update.args(["-q", "update"])).context("apt-get update (private sid sources)")?;
    let mut search = Command::new("apt-cache");
    apt_options(&mut search);
    let listing = stdout_of(search.args(["search", "--names-only", r"^linux-binary-[0-9].*-amd64$"]))?;
    let binary = newest_name(&listing, "linux-binary-").context("sid offers no linux-binary-*-amd64 package")?;
    let version = binary.trim_start_matches("linux-binary-").to_string();
    let mut download = Command::new("apt-get");
    apt_options(&mut download);
    download.current_dir(work.join("debs")).args(["-q", "download", &binary, &format!("linux-modules-{version}")]);
    run_checked(&mut download).context("apt-get download (sid kernel)")?;
    let root = work.join("root");
    for deb in std::fs::read_dir(work.join("debs"))? {
        run_checked(Command::new("dpkg-deb").arg("-x").arg(deb?.path()).arg(&root))?;
    }
    let modules = root.join("usr/lib/modules").join(&version);
    let vmlinuz = modules.join("vmlinuz");
    if !vmlinuz.exists() {
        bail!("the sid kernel packages hold no {}", vmlinuz.display());
    }
    let boot = Path::new("/boot").join(format!("vmlinuz-{version}"));
    std::fs::copy(&vmlinuz, &boot).with_context(|| format!("cannot copy the kernel to {}", boot.display()))?;
    let target = Path::new("/lib/modules").join(&version);
    let _ = std::fs::remove_dir_all(&target);
    run_checked(Command::new("cp").arg("-a").arg(&modules).arg(&target))?;
    // The modules are .ko.xz and no modules.dep ships with them.
    run_checked(Command::new("depmod").args(["-b", "/", &version]))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(boot)
}

/// The first Debian archive URI in the host's deb822 sources, so the sid
/// kernel comes from the same mirror.
fn host_debian_uri() -> Option<String> {
    let text = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").ok()?;
    text.lines()
        .filter_map(|line| line.strip_prefix("URIs:"))
        .flat_map(str::split_whitespace)
        .find(|uri| uri.trim_end_matches('/').ends_with("/debian"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_kernels_by_version_not_text() {
        let mut names = ["vmlinuz-6.12.99+deb12-amd64", "vmlinuz-6.12.117+deb12-amd64"];
        names.sort_by_key(|n| version_key(n));
        assert_eq!(names[1], "vmlinuz-6.12.117+deb12-amd64");
    }

    #[test]
    fn each_series_recognises_its_kernels_only() {
        assert!(Series::V6_12.matches("vmlinuz-6.12.117+deb12-amd64"));
        assert!(!Series::V6_12.matches("vmlinuz-6.12.117+deb12-cloud-amd64"));
        assert!(!Series::V6_12.matches("vmlinuz-6.1.0-57-amd64"));
        assert!(Series::V6_1.matches("vmlinuz-6.1.0-57-amd64"));
        assert!(!Series::V6_1.matches("vmlinuz-6.12.117+deb12-amd64"));
        assert!(Series::Dev.matches("vmlinuz-7.2.13+deb14-amd64"));
        assert!(Series::Dev.matches("vmlinuz-6.18.3+deb14-amd64"));
        assert!(!Series::Dev.matches("vmlinuz-6.12.117+deb12-amd64"));
        assert!(!Series::Dev.matches("vmlinuz-7.2.13+deb14-rt-amd64"));
    }

    #[test]
    fn newest_package_skips_other_flavours() {
        let listing = "linux-binary-7.2.13+deb14-amd64 - Linux\n\
                       linux-binary-7.2.9+deb14-amd64 - Linux\n\
                       linux-binary-7.2.13+deb14-cloud-amd64 - Linux\n\
                       linux-image-6.1.0-9-amd64-unsigned - x\n";
        assert_eq!(newest_name(listing, "linux-binary-").as_deref(), Some("linux-binary-7.2.13+deb14-amd64"));
        assert_eq!(newest_name(listing, "linux-image-6.1.0-").as_deref(), Some("linux-image-6.1.0-9-amd64-unsigned"));
    }
}
