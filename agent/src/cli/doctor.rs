//! `warrant doctor`: can this kernel enforce, in which mode, and what to
//! change if it cannot.

use crate::*;

pub(crate) fn doctor(json: bool) -> ExitCode {
    let root = nix::unistd::geteuid().is_root();
    let lsm = kernel::check_bpf_lsm();
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    // Without bpf in lsm= the load tries the fmod_ret mode; its error says
    // what to change if that fails too.
    let load = (root && btf).then(|| Kernel::load(false).map(|k| (k.mode().clone(), k.missing_hooks().to_vec())));
    let (mode, missing_hooks) = match &load {
        Some(Ok((mode, missing))) => (Some(mode.clone()), missing.clone()),
        _ => (None, Vec::new()),
    };
    let (available, reason) = match &load {
        _ if !root => (false, "not root: loading BPF programs needs CAP_BPF and CAP_MAC_ADMIN".to_owned()),
        _ if !btf => (false, "no kernel BTF at /sys/kernel/btf/vmlinux".to_owned()),
        Some(Err(e)) => (false, e.to_string()),
        _ => (true, "the decision programs load on this kernel".to_owned()),
    };
    let release = warrant::daemon::kernel_release();
    // Without bpf among the active LSMs: the boot change that adds it.
    let fix = match &lsm {
        Err(kernel::KernelError::LsmInactive(active)) => {
            warrant::lsm_fix::steps(active, warrant::lsm_fix::read_grub_defaults().as_deref())
        }
        _ => Vec::new(),
    };
    if json {
        let report = json!({
            "kernel": release, "root": root, "bpf_lsm_active": lsm.is_ok(), "btf": btf,
            "enforcement": if available { "available" } else { "unavailable" }, "reason": reason,
            "missing_hooks": missing_hooks, "mode": mode.as_ref().map(kernel::Mode::name), "fix": fix,
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        println!("kernel {release}");
        println!("root: {}", if root { "yes" } else { "no" });
        println!(
            "bpf in active LSMs: {}",
            match &lsm {
                Ok(()) => "yes".to_owned(),
                Err(e) => format!("no ({e})"),
            }
        );
        println!("kernel BTF: {}", if btf { "yes" } else { "no" });
        println!("enforcement: {} ({reason})", if available { "available" } else { "unavailable" });
        match &mode {
            Some(kernel::Mode::BpfLsm) => println!("mode: bpf-lsm (programs on the LSM hooks)"),
            Some(kernel::Mode::ModifyReturn { active_lsms }) => println!(
                "mode: fmod_ret (programs on the security_* functions, since bpf is not among the active LSMs \
                 {active_lsms}; boot with lsm={active_lsms},bpf for every hook)"
            ),
            None => {}
        }
        for missing in &missing_hooks {
            println!("coverage: {}", missing.effect);
        }
        for line in &fix {
            println!("{line}");
        }
    }
    if available { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
