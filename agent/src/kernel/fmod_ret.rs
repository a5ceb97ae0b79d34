//! Enforcement where `bpf` is not among the kernel's active LSMs: the same
//! decision programs, attached as fmod_ret (BPF_MODIFY_RETURN) programs on
//! the kernel's `security_*` functions, which the kernel allows whatever the
//! boot-time LSM list. A program that returns non-zero there makes the
//! function return it without running, as a refusing LSM would.
//!
//! aya 0.14 has no fmod_ret program type, so these programs are loaded here
//! from the object through aya-obj, relocated against the maps aya already
//! made for the same object, and attached with bpf(2). Two hooks return
//! nothing (`d_instantiate`, `file_free_security`): they attach as fentry.

use std::collections::HashMap as StdHashMap;
use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::path::Path;

use aya::{Ebpf, maps::Map};
use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type};

use super::KernelError;
use crate::btf::KernelBtf;
use crate::hooks::{LSM_PROGRAMS, MissingHook};

/// How one program attaches in this mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Attach {
    /// On `security_<hook>`, able to refuse.
    ModifyReturn,
    /// On `security_<hook>`, observing only (the function returns nothing).
    Entry,
}

/// The object, relocated against an `Ebpf`'s maps, with its BTF loaded.
pub struct Loader {
    object: aya_obj::Object,
    btf_fd: Option<OwnedFd>,
}

fn program_err(program: &str, reason: String) -> KernelError {
    KernelError::Program { program: leak(program), reason }
}

/// Program names are few and live as long as the daemon.
fn leak(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

impl Loader {
    /// Parses `object` again, with `globals` as aya was given them, loads its
    /// BTF and points its map references at `ebpf`'s maps.
    pub fn new(object: &[u8], globals: StdHashMap<&str, (&[u8], bool)>, ebpf: &Ebpf) -> Result<Self, KernelError> {
        let object_err = |e: String| KernelError::Object(format!("fmod_ret loader: {e}"));
        let mut object = aya_obj::Object::parse(object).map_err(|e| object_err(e.to_string()))?;
        object.patch_map_data(globals).map_err(|e| object_err(e.to_string()))?;
        let features = aya::features();
        let btf_fd = match features.btf() {
            Some(btf_features) => {
                match object.fixup_and_sanitize_btf(btf_features).map_err(|e| object_err(e.to_string()))? {
                    Some(btf) => Some(load_btf(&btf.to_bytes()).map_err(|e| object_err(format!("loading BTF: {e}")))?),
                    None => None,
                }
            }
            None => None,
        };
        // relocate_maps needs `object` mutably, so the definitions are cloned out.
        let mut maps: Vec<(String, RawFd, aya_obj::Map)> = Vec::new();
        for (name, map) in ebpf.maps() {
            let fd =
                map_fd(map).ok_or_else(|| object_err(format!("map {name} has a type this loader does not know")))?;
            if let Some(definition) = object.maps.get(name) {
                maps.push((name.to_owned(), fd, definition.clone()));
            }
        }
        let text_sections = object.functions.keys().map(|(section, _)| *section).collect();
        object
            .relocate_maps(maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text_sections)
            .map_err(|e| object_err(e.to_string()))?;
        object.relocate_calls(&text_sections).map_err(|e| object_err(e.to_string()))?;
        object.sanitize_functions(features);
        Ok(Self { object, btf_fd })
    }

    /// Loads program `name` to attach to kernel function `function`
    /// (`vmlinux` id `function_id`).
    pub fn load(&self, name: &str, function_id: u32, attach: Attach) -> Result<OwnedFd, KernelError> {
        let program =
            self.object.programs.get(name).ok_or_else(|| program_err(name, "missing from the object".into()))?;
        let function = self
            .object
            .functions
            .get(&program.function_key())
            .ok_or_else(|| program_err(name, "its function is missing from the object".into()))?;
        // Without a log first (a log of a long verification overflows and
        // fails the load); a refused program is loaded again for its log.
        let mut log = Vec::new();
        let mut outcome = self.prog_load(name, function, function_id, attach, &mut log);
        if outcome.is_err() {
            log = vec![0u8; 4 << 20];
            outcome = self.prog_load(name, function, function_id, attach, &mut log);
        }
        if let Ok(program) = &outcome {
            super::log_verified(name, verified_instructions(program));
        }
        outcome.map_err(|e| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(6).collect();
            program_err(name, format!("{e}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")))
        })
    }
}

impl Loader {
    /// BPF_PROG_LOAD of `function` as a tracing program; `log` (if not
    /// empty) receives the verifier's log.
    fn prog_load(
        &self,
        name: &str,
        function: &aya_obj::Function,
        function_id: u32,
        attach: Attach,
        log: &mut [u8],
    ) -> std::io::Result<OwnedFd> {
        let license = CString::new("GPL").expect("no NUL");
        let func_info = function.func_info.func_info_bytes();
        let line_info = function.line_info.line_info_bytes();
        // SAFETY: an all-zero bpf_attr is valid; the prog-load member is set below.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: the prog-load member of a zeroed attr, plain integers.
        let load = unsafe { &mut attr.__bindgen_anon_3 };
        load.prog_type = bpf_prog_type::BPF_PROG_TYPE_TRACING as u32;
        load.expected_attach_type = match attach {
            Attach::ModifyReturn => bpf_attach_type::BPF_MODIFY_RETURN,
            Attach::Entry => bpf_attach_type::BPF_TRACE_FENTRY,
        } as u32;
        load.insns = function.instructions.as_ptr() as u64;
        load.insn_cnt = function.instructions.len() as u32;
        load.license = license.as_ptr() as u64;
        load.attach_btf_id = function_id;
        for (at, byte) in name.bytes().take(15).enumerate() {
            load.prog_name[at] = byte as std::ffi::c_char;
        }
        if let Some(btf_fd) = &self.btf_fd {
            load.prog_btf_fd = btf_fd.as_raw_fd() as u32;
            if function.func_info_rec_size > 0 {
                load.func_info = func_info.as_ptr() as u64;
                load.func_info_cnt = function.func_info.len() as u32;
                load.func_info_rec_size = function.func_info_rec_size as u32;
            }
            if function.line_info_rec_size > 0 {
                load.line_info = line_info.as_ptr() as u64;
                load.line_info_cnt = function.line_info.len() as u32;
                load.line_info_rec_size = function.line_info_rec_size as u32;
            }
        }
        if !log.is_empty() {
            load.log_level = 1;
            load.log_buf = log.as_mut_ptr() as u64;
            load.log_size = log.len() as u32;
        }
        sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
    }
}

/// Attaches a loaded tracing program (fentry or fmod_ret) to the function
/// it was loaded for, and pins the link at `pin` in place of what was there.
pub fn attach_and_pin(program: &OwnedFd, pin: &Path) -> std::io::Result<()> {
    // No name: "the function the program was loaded for".
    // SAFETY: an all-zero bpf_attr is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.raw_tracepoint.prog_fd = program.as_raw_fd() as u32;
    let link = sys_bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)?;
    let mut staging = pin.as_os_str().to_owned();
    staging.push("_new");
    let _ = std::fs::remove_file(&staging);
    let path =
        CString::new(std::os::unix::ffi::OsStrExt::as_bytes(staging.as_os_str())).map_err(std::io::Error::other)?;
    // SAFETY: an all-zero bpf_attr is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    attr.__bindgen_anon_4.bpf_fd = link.as_raw_fd() as u32;
    // BPF_OBJ_PIN returns 0, not a descriptor.
    // SAFETY: `attr` is a valid obj-pin attr whose path outlives the call.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, bpf_cmd::BPF_OBJ_PIN as libc::c_long, &mut attr, std::mem::size_of::<bpf_attr>())
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::fs::rename(&staging, pin)
}

/// How many instructions the verifier processed for `program` (None
/// before 5.16, whose bpf_prog_info has no such field).
fn verified_instructions(program: &OwnedFd) -> Option<u32> {
    // SAFETY: all-zero bpf_prog_info and bpf_attr are valid.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = program.as_raw_fd() as u32;
    attr.info.info_len = std::mem::size_of_val(&info) as u32;
    attr.info.info = (&raw mut info) as u64;
    // BPF_OBJ_GET_INFO_BY_FD returns 0, not a descriptor.
    // SAFETY: `attr` is a valid info attr whose buffer outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            &mut attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    (rc == 0 && info.verified_insns != 0).then_some(info.verified_insns)
}

fn load_btf(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: an all-zero bpf_attr is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.__bindgen_anon_7.btf = bytes.as_ptr() as u64;
    attr.__bindgen_anon_7.btf_size = bytes.len() as u32;
    sys_bpf(bpf_cmd::BPF_BTF_LOAD, &mut attr)
}

/// bpf(2) for the commands that return a new file descriptor (not
/// BPF_OBJ_PIN, which returns 0).
fn sys_bpf(command: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid bpf_attr for `command`, its pointers live.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, command as libc::c_long, attr as *mut bpf_attr, std::mem::size_of::<bpf_attr>())
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The descriptor of a map aya made, for the map types this object uses.
fn map_fd(map: &Map) -> Option<RawFd> {
    let data = match map {
        Map::Array(data)
        | Map::HashMap(data)
        | Map::LpmTrie(data)
        | Map::LruHashMap(data)
        | Map::PerCpuArray(data)
        | Map::PerCpuHashMap(data)
        | Map::RingBuf(data)
        | Map::Unsupported(data) => data,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

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

/// One LSM program's load in this mode, decided from the kernel's BTF.
pub struct Planned {
    name: &'static str,
    function_id: u32,
    attach: Attach,
}

/// Decides how every LSM program loads as fmod_ret (or fentry) on its
/// `security_*` function. A program that cannot attach here (no such
/// function, or one whose arguments differ from its hook's) is a named loss
/// in `missing`. Only the kernel's BTF is read: the loads come after it is
/// dropped ([`load_planned`]).
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
                let function_id = function_id(kernel_btf, alternative, function)?;
                planned.push(Planned { name: alternative, function_id, attach: Attach::ModifyReturn });
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
        let function_id = function_id(kernel_btf, program.name, &function)?;
        let attach = if OBSERVE_ONLY.contains(&program.hook) { Attach::Entry } else { Attach::ModifyReturn };
        planned.push(Planned { name: program.name, function_id, attach });
    }
    Ok(planned)
}

fn function_id(kernel_btf: &KernelBtf, program: &str, function: &str) -> Result<u32, KernelError> {
    kernel_btf.function_id(function).ok_or_else(|| program_err(program, format!("the kernel has no {function}")))
}

/// Loads (verifies) the programs [`plan`] decided on.
pub fn load_planned(loader: &Loader, planned: &[Planned]) -> Result<Vec<(&'static str, OwnedFd)>, KernelError> {
    planned.iter().map(|p| Ok((p.name, loader.load(p.name, p.function_id, p.attach)?))).collect()
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
