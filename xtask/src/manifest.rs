//! The Kubernetes manifests are checked against the Kubernetes API's
//! published schema (PyPI's kubernetes-validate ships them per Kubernetes
//! version), strictly: an unknown or misspelt field fails.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::paths::{repo_root, target_dir};
use crate::process::run_checked;

/// Pinned: its schemas are those of this Kubernetes release.
const PACKAGE: &str = "kubernetes-validate==1.37.0";
const KUBERNETES_VERSION: &str = "1.37.0";

fn venv() -> PathBuf {
    target_dir().join("tools/kubernetes-validate")
}

fn validator() -> PathBuf {
    venv().join("bin/kubernetes-validate")
}

pub fn installed() -> bool {
    validator().is_file()
}

/// A virtual environment under target/ with the validator in it.
pub fn install() -> Result<()> {
    run_checked(Command::new("python3").args(["-m", "venv"]).arg(venv())).context("python3 -m venv")?;
    run_checked(Command::new(venv().join("bin/pip")).args(["install", "--quiet", PACKAGE]))
        .with_context(|| format!("pip install {PACKAGE}"))
}

/// Validates every manifest in deploy/kubernetes; the names checked.
pub fn check() -> Result<Vec<String>> {
    if !installed() {
        bail!("{} is missing; run `cargo xtask setup`", validator().display());
    }
    let dir = repo_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut cmd = Command::new(validator());
    cmd.args(["--strict", "--no-warn", "-k", KUBERNETES_VERSION]).args(&files);
    run_checked(&mut cmd).context("a manifest does not match the Kubernetes API schema")?;
    Ok(files.iter().map(|f| f.display().to_string()).collect())
}
