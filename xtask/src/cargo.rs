//! Cargo invocations whose built executables xtask needs to locate.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::paths::repo_root;
use crate::process::describe;

/// `cargo build -p warrant`; returns the path of the `warrant` binary.
pub fn build_warrant() -> Result<PathBuf> {
    built_executable(&["build", "-p", "warrant"], "warrant")
}

/// `cargo build --release -p PACKAGE`; returns the binary `target_name`.
pub fn build_release(package: &str, target_name: &str) -> Result<PathBuf> {
    built_executable(&["build", "--release", "-p", package], target_name)
}

/// Builds the `kernel` integration test of `warrant` without running it;
/// returns the test executable.
pub fn build_kernel_tests() -> Result<PathBuf> {
    built_executable(&["test", "-p", "warrant", "--test", "kernel", "--no-run"], "kernel")
}

/// Runs cargo with JSON messages and returns the executable it reports for
/// the target named `target_name`. Diagnostics are still rendered for
/// humans on stderr.
fn built_executable(args: &[&str], target_name: &str) -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot start `{}`", describe(&cmd)))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut executable = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(path) = artifact_executable(&line, target_name) {
            executable = Some(path);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(&cmd));
    }
    executable.with_context(|| format!("`{}` reported no executable for target `{target_name}`", describe(&cmd)))
}

/// The "executable" of a compiler-artifact message for `target_name`.
fn artifact_executable(json_line: &str, target_name: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(json_line).ok()?;
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != target_name {
        return None;
    }
    message["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_executable_only() {
        let kernel = r#"{"reason":"compiler-artifact","target":{"name":"kernel","kind":["test"]},"executable":"/t/debug/deps/kernel-abc"}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"name":"warrant","kind":["lib"]},"executable":null}"#;
        assert_eq!(artifact_executable(kernel, "kernel"), Some(PathBuf::from("/t/debug/deps/kernel-abc")));
        assert_eq!(artifact_executable(kernel, "warrant"), None);
        assert_eq!(artifact_executable(lib, "warrant"), None);
        assert_eq!(artifact_executable("Compiling x", "kernel"), None);
    }
}
