//! `cargo xtask setup`: check each tool the build, the tests and the VM
//! need, and install only what is missing. See /work/shared/TOOLCHAIN.md
//! for why each step is done this way.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::kernels::{self, Series};
use crate::process::{find_program, run_checked, stdout_of, succeeds};
use crate::vm;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Install,
    /// Report what is missing and fail if anything is; change nothing.
    Check,
}

/// Apt packages, each checked by a program it provides.
const APT_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("nftables", "nft"),
    ("iptables", "iptables-legacy"),
    ("iproute2", "ip"),
    ("ipset", "ipset"),
    ("arptables", "arptables"),
    ("ebtables", "ebtables"),
    ("python3", "python3"),
    ("conntrack", "conntrack"),
    // The kernel tier runs `wg` as a subject (generic netlink per command).
    ("wireguard-tools", "wg"),
    // RIs sign with SSH keys through ssh-keygen -Y sign (tests and demo).
    ("openssh-client", "ssh-keygen"),
    // The kernel tier runs these as subjects (module loading, mount, chroot).
    ("kmod", "modprobe"),
    ("mount", "mount"),
    ("coreutils", "chroot"),
    // virtme-ng runs `file` to make sure its busybox is static.
    ("file", "file"),
    // The deployment tier's Debian image, and its disks.
    ("mmdebstrap", "mmdebstrap"),
    ("e2fsprogs", "mkfs.ext4"),
];

pub fn run(mode: Mode) -> Result<()> {
    let mut missing: Vec<String> = Vec::new();
    let mut note = |what: &str| {
        println!("setup: {} {what}", if mode == Mode::Check { "missing" } else { "installing" });
        missing.push(what.to_string());
    };

    // Apt first: python3 (for pip) and everything else come from it.
    let mut apt_packages: Vec<String> = APT_TOOLS
        .iter()
        .filter(|(_, program)| find_program(program).is_none())
        .map(|(package, _)| package.to_string())
        .collect();
    if !static_busybox_present() {
        apt_packages.push("busybox-static".into());
    }
    let vng_missing = vm::find_vng().is_none();
    if vng_missing && !succeeds(Command::new("python3").args(["-m", "pip", "--version"])) {
        apt_packages.push("python3-pip".into());
    }
    let missing_kernels: Vec<Series> = kernels::ALL.into_iter().filter(|series| series.find().is_none()).collect();
    for package in &apt_packages {
        note(package);
    }
    for series in &missing_kernels {
        note(&format!("the {} guest kernel", series.label()));
    }
    let apt_kernels: Vec<Series> = missing_kernels.iter().copied().filter(|s| *s != Series::Dev).collect();
    if mode == Mode::Install && (!apt_packages.is_empty() || !apt_kernels.is_empty()) {
        apt_install(apt_packages, &apt_kernels)?;
    }
    if mode == Mode::Install && missing_kernels.contains(&Series::Dev) {
        let installed = kernels::install_dev().context("installing Debian sid's kernel for the VM")?;
        println!("setup: installed {}", installed.display());
    }

    if vng_missing {
        note("virtme-ng (pip)");
        if mode == Mode::Install {
            install_virtme_ng()?;
        }
    }

    match nightly_state() {
        Nightly::Ready => {}
        Nightly::NoToolchain => {
            note("rust nightly toolchain with rust-src");
            if mode == Mode::Install {
                install_nightly(true)?;
            }
        }
        Nightly::NoRustSrc => {
            note("rust-src for nightly");
            if mode == Mode::Install {
                install_nightly(false)?;
            }
        }
    }

    // The host tier checks formatting and lints with the default toolchain.
    for (component, probe) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        if !succeeds(Command::new("cargo").args([probe, "--version"])) {
            note(component);
            if mode == Mode::Install {
                run_checked(Command::new("rustup").args(["component", "add", component]))?;
            }
        }
    }

    if !succeeds(Command::new("bpf-linker").arg("--version")) {
        note("bpf-linker (built against nightly's libLLVM, ~5 min)");
        if mode == Mode::Install {
            install_bpf_linker()?;
        }
    }

    if !succeeds(Command::new("cargo").args(["deb", "--version"])) {
        note("cargo-deb (cargo install, ~1 min)");
        if mode == Mode::Install {
            run_checked(Command::new("cargo").args(["install", "--locked", "cargo-deb"]))
                .context("cargo install cargo-deb")?;
        }
    }

    if !crate::manifest::installed() {
        note("kubernetes-validate (pip, in a venv under target/)");
        if mode == Mode::Install {
            crate::manifest::install()?;
        }
    }

    match (missing.is_empty(), mode) {
        (true, _) => println!("setup: everything present"),
        (false, Mode::Check) => bail!("setup --check: missing {}", missing.join(", ")),
        (false, Mode::Install) => println!("setup: done"),
    }
    Ok(())
}

/// virtme-ng builds the guest's initramfs around the first busybox it finds
/// (these names, PATH first) and refuses a dynamically linked one.
fn static_busybox_present() -> bool {
    let Some(busybox) = ["busybox-static", "busybox.static", "busybox"].iter().find_map(|name| find_program(name))
    else {
        return false;
    };
    stdout_of(Command::new("file").arg("-L").arg(&busybox).stderr(std::process::Stdio::null()))
        .is_ok_and(|out| out.contains("statically linked") || out.contains("static-pie linked"))
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.arg("-q").env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

fn apt_install(mut packages: Vec<String>, kernels: &[Series]) -> Result<()> {
    // One update, and only because something must be installed; it also
    // makes the kernel search below see current point releases.
    run_checked(apt_get().arg("update")).context("apt-get update")?;
    for series in kernels {
        packages.extend(series.apt_package()?);
    }
    run_checked(apt_get().args(["install", "-y"]).args(&packages))
        .with_context(|| format!("installing {}", packages.join(" ")))?;
    for series in kernels {
        if series.find().is_none() {
            bail!("installed the {} kernel package but no matching /boot/vmlinuz-* appeared", series.label());
        }
    }
    Ok(())
}

fn install_virtme_ng() -> Result<()> {
    let pip = || {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "install", "virtme-ng"]);
        cmd
    };
    if run_checked(&mut pip()).is_err() {
        // Debian's python refuses plain pip installs (PEP 668).
        run_checked(pip().arg("--break-system-packages")).context("pip install virtme-ng")?;
    }
    if find_program("vng").is_none() {
        match vm::find_vng() {
            Some(path) => {
                println!("setup: vng installed at {} which is not on PATH; xtask uses it from there", path.display())
            }
            None => bail!("pip installed virtme-ng but no `vng` is on PATH or in {:?}", vm::pip_script_dirs()),
        }
    }
    Ok(())
}

enum Nightly {
    Ready,
    NoToolchain,
    NoRustSrc,
}

fn nightly_state() -> Nightly {
    let installed = stdout_of(
        Command::new("rustup")
            .args(["component", "list", "--toolchain", "nightly", "--installed"])
            .stderr(std::process::Stdio::null()),
    );
    match installed {
        Err(_) => Nightly::NoToolchain,
        Ok(list) if list.lines().any(|l| l.trim() == "rust-src") => Nightly::Ready,
        Ok(_) => Nightly::NoRustSrc,
    }
}

fn install_nightly(with_toolchain: bool) -> Result<()> {
    if with_toolchain {
        run_checked(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    run_checked(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// bpf-linker must use the same LLVM major as nightly rustc. No matching
/// LLVM dev package exists, so link it against rustc's own libLLVM.
fn install_bpf_linker() -> Result<()> {
    let sysroot = PathBuf::from(stdout_of(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?.trim());
    let version_info = stdout_of(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm_major = version_info
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("`rustc +nightly -vV` reports no LLVM version")?
        .to_string();
    let libllvm = std::fs::read_dir(sysroot.join("lib"))
        .with_context(|| format!("cannot list {}/lib", sysroot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libLLVM.so.")))
        .min()
        .with_context(|| format!("nightly ships no libLLVM.so.* in {}/lib", sysroot.display()))?;

    // A lasting prefix: lib/libLLVM.so for the link step, plus the soname
    // link found at run time through bpf-linker's RUNPATH.
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = PathBuf::from(home).join(".local/share/bpf-linker-llvm");
    let lib_dir = prefix.join("lib");
    std::fs::create_dir_all(&lib_dir).with_context(|| format!("cannot create {}", lib_dir.display()))?;
    let soname = libllvm.file_name().expect("file has a name");
    for link in [lib_dir.join("libLLVM.so"), lib_dir.join(soname)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("cannot link {} -> {}", link.display(), libllvm.display()))?;
    }

    run_checked(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--no-default-features", "--features"])
            .arg(format!("llvm-{llvm_major}"))
            .env("LLVM_PREFIX", &prefix),
    )?;

    // Without LD_LIBRARY_PATH, so this proves libLLVM resolves on its own.
    let works = succeeds(Command::new("bpf-linker").arg("--version").env_remove("LD_LIBRARY_PATH"));
    if !works {
        let cargo_bin = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map(|d| d.join("bin"))
            .unwrap_or_default();
        bail!(
            "bpf-linker was installed but `bpf-linker --version` does not run; is {} on PATH? (check `ldd $(command -v bpf-linker)`)",
            cargo_bin.display()
        );
    }
    Ok(())
}
