//! `cargo xtask demo`: runs xtask/demo.sh where BPF-LSM enforcement works:
//! on the host if `warrant doctor` says so, otherwise in the VM.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, Result, bail};

use crate::kernels::Series;
use crate::paths::{fresh_dir, repo_root, target_dir};
use crate::process::shell_quote;
use crate::{cargo, setup, vm};

pub fn run(kernel: Series) -> Result<ExitStatus> {
    setup::run(setup::Mode::Install)?;
    let warrant_bin = cargo::build_warrant()?;
    let demo_script = repo_root().join("xtask/demo.sh");
    if !demo_script.exists() {
        bail!("{} is missing", demo_script.display());
    }

    match host_doctor(&warrant_bin)? {
        Ok(()) => {
            println!("demo: warrant doctor says BPF-LSM enforcement works on this host kernel, running on the host");
            let work_dir = fresh_dir(&target_dir().join("demo/host"))?;
            Command::new("bash")
                .arg(&demo_script)
                .env("WARRANT_BIN", &warrant_bin)
                .env("WARRANT_REPO", repo_root())
                .env("WARRANT_DEMO_DIR", &work_dir)
                .current_dir(repo_root())
                .status()
                .with_context(|| format!("cannot run {}", demo_script.display()))
        }
        Err(why) => {
            println!(
                "demo: BPF-LSM programs cannot load on this host kernel (warrant doctor: {why}), running in the VM"
            );
            let rwdir = fresh_dir(&target_dir().join("demo/vm"))?;
            let work_dir = rwdir.join("work");
            std::fs::create_dir_all(&work_dir)?;
            let status = vm::run_in_vm(&vm_script(&warrant_bin, &demo_script, &work_dir), &rwdir, kernel)?;
            println!("demo: output files are in {}", work_dir.display());
            Ok(status)
        }
    }
}

/// Ok(()) if `warrant doctor` exits 0 here, else Err(its last output line).
fn host_doctor(warrant_bin: &Path) -> Result<Result<(), String>> {
    let out = Command::new(warrant_bin)
        .arg("doctor")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} doctor", warrant_bin.display()))?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let last_line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
    Ok(Err(format!("{}: {}", out.status, last_line.trim())))
}

fn vm_script(warrant_bin: &Path, demo_script: &Path, work_dir: &Path) -> String {
    let q = |p: &Path| shell_quote(&p.to_string_lossy());
    format!(
        "{mounts}\nexport WARRANT_BIN={bin} WARRANT_REPO={repo} WARRANT_DEMO_DIR={work}\ncd {repo}\nbash {script}\n",
        mounts = vm::GUEST_MOUNTS,
        bin = q(warrant_bin),
        repo = q(&repo_root()),
        work = q(work_dir),
        script = q(demo_script),
    )
}
