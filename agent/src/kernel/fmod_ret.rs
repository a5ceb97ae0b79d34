//! Enforcement where `bpf` is not among the kernel's active LSMs: the same
//! decision programs, attached as fmod_ret (BPF_MODIFY_RETURN) programs on
//! the kernel's `security_*` functions, which the kernel allows whatever the
//! boot-time LSM list. A program that returns non-zero there makes the
//! function return it without running, as a refusing LSM would.
//!
//! Two hooks return nothing (`d_instantiate`, `file_free_security`): they
//! attach as fentry. The loads are [`super::program_loader`]'s.

use super::KernelError;
use super::program_loader::{LoadAs, Planned, program_err};
use crate::btf::KernelBtf;
use crate::hooks::{LSM_PROGRAMS, MissingHook};

/// Hooks whose `security_*` function returns nothing: their programs only
/// keep state (new inodes join protected trees, closed files are
/// forgotten), so they attach as fentry.
const OBSERVE_ONLY: &[&str] = &["d_instantiate", "file_free_security"];

/// Programs without which nothing holds: if one cannot attach in this
/// mode, the mode is refused rather than reported as a loss.
const ESSENTIAL: &[&str] = &["task_alloc", "bprm_check_security", "netlink_send", "rtnetlink_send"];

/// Programs that read the earlier verdict from the slot after their hook's
/// arguments: on a `security_*` function with more arguments that slot
/// holds an argument, so they attach only where the arguments are the same.
const READ_EARLIER_VERDICT: &[&str] = &[
    "task_alloc",
    "bprm_check_security",
    "netlink_send",
    "rtnetlink_send",
    "socket_setsockopt",
    "unix_stream_connect",
    "unix_may_send",
    "socket_connect",
    "socket_sendmsg",
    "capable",
    "file_open",
    "file_permission",
    "mmap_file",
    "file_mprotect",
];

/// The kernel function `hook`'s programs attach to in this mode.
fn security_function(hook: &str) -> String {
    match hook {
        "bprm_check_security" => "security_bprm_check".into(),
        "file_free_security" => "security_file_free".into(),
        _ => format!("security_{hook}"),
    }
}

/// Programs written for a `security_*` function whose arguments are not
/// its hook's: (hook program, its stand-in, the function, its arguments).
const FUNCTION_SHAPED: &[(&str, &str, &str, &[&str])] =
    &[("mmap_file", "mmap_file_fmod_ret", "security_mmap_file", &["file", "prot", "flags"])];

/// The stand-in for `program` and the function it attaches to, if this
/// kernel's function takes the arguments the stand-in was written for.
fn shaped_for_function(program: &str, kernel_btf: &KernelBtf) -> Option<(&'static str, &'static str)> {
    let (_, alternative, function, args) = FUNCTION_SHAPED.iter().find(|(name, ..)| *name == program)?;
    (kernel_btf.parameters(function)? == *args).then_some((*alternative, *function))
}

/// Why `program` cannot attach to `function` in place of its hook, if it
/// cannot: the function must take the hook's arguments first, and exactly
/// those if the program reads the slot after them.
fn unattachable(
    program: &str,
    function: &str,
    hook: Option<Vec<&str>>,
    function_args: Option<Vec<&str>>,
) -> Option<String> {
    let Some(function_args) = function_args else {
        return Some(format!("the kernel has no {function} to attach to"));
    };
    let hook = hook.unwrap_or_default();
    let same_start = function_args.len() >= hook.len() && function_args[..hook.len()] == hook[..];
    let exact_needed = READ_EARLIER_VERDICT.contains(&program);
    if !same_start || (exact_needed && function_args.len() != hook.len()) {
        return Some(format!(
            "{function}({}) takes other arguments than the hook ({})",
            function_args.join(", "),
            hook.join(", ")
        ));
    }
    None
}

/// Decides how every LSM program loads as fmod_ret (or fentry) on its
/// `security_*` function. A program that cannot attach here (no such
/// function, or one whose arguments differ from its hook's) is a named loss
/// in `missing`. Only the kernel's BTF is read: the loads come after it is
/// dropped.
pub fn plan(kernel_btf: &KernelBtf, missing: &mut Vec<MissingHook>) -> Result<Vec<Planned>, KernelError> {
    let mut planned = Vec::new();
    for program in LSM_PROGRAMS {
        if !super::hook_present(program, kernel_btf, missing)? {
            continue;
        }
        let function = security_function(program.hook);
        let unattachable = unattachable(
            program.name,
            &function,
            kernel_btf.parameters(&format!("bpf_lsm_{}", program.hook)),
            kernel_btf.parameters(&function),
        );
        if let Some(why) = unattachable {
            if let Some((alternative, function)) = shaped_for_function(program.name, kernel_btf) {
                let btf_id = function_id(kernel_btf, alternative, function)?;
                planned.push(Planned { name: alternative, btf_id, load_as: LoadAs::ModifyReturn });
                continue;
            }
            if ESSENTIAL.contains(&program.name) {
                return Err(program_err(program.name, why));
            }
            let effect = format!("{} is not decided in fmod_ret mode: {why}", program.hook);
            tracing::warn!(hook = program.hook, "{effect}");
            missing.push(MissingHook { hook: program.hook.into(), effect });
            continue;
        }
        let btf_id = function_id(kernel_btf, program.name, &function)?;
        let load_as = if OBSERVE_ONLY.contains(&program.hook) { LoadAs::Entry } else { LoadAs::ModifyReturn };
        planned.push(Planned { name: program.name, btf_id, load_as });
    }
    Ok(planned)
}

fn function_id(kernel_btf: &KernelBtf, program: &str, function: &str) -> Result<u32, KernelError> {
    kernel_btf.function_id(function).ok_or_else(|| program_err(program, format!("the kernel has no {function}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_attaches_where_the_function_takes_its_hooks_arguments_first() {
        let rename = vec!["old_dir", "old_dentry", "new_dir", "new_dentry"];
        let security_rename = vec!["old_dir", "old_dentry", "new_dir", "new_dentry", "flags"];
        assert_eq!(unattachable("inode_rename", "security_inode_rename", Some(rename), Some(security_rename)), None);
        let mmap = vec!["file", "reqprot", "prot", "flags"];
        let why = unattachable("mmap_file", "security_mmap_file", Some(mmap), Some(vec!["file", "prot", "flags"]));
        assert!(why.unwrap().contains("takes other arguments"));
        // One more argument moves the earlier verdict's slot.
        let why = unattachable("capable", "security_capable", Some(vec!["a"]), Some(vec!["a", "b"]));
        assert!(why.is_some());
        assert!(unattachable("x", "security_x", Some(vec![]), None).unwrap().contains("no security_x"));
    }
}
