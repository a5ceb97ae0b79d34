//! Warrant's object parsed (aya-obj), its maps made
//! ([`object_maps`]), and its programs loaded, attached and run with
//! bpf(2). aya's loader is not used: it parses the kernel's BTF when made
//! (~13 MB held, ~18 at its peak: most of the daemon's peak resident size)
//! for the one type id each program load names, and it has no fmod_ret
//! program type. The ids come from Warrant's reader, decided before that is
//! dropped ([`Planned`]).

use std::collections::HashMap as StdHashMap;
use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use aya::maps::Map;
use aya_obj::ProgramSection;
use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type};

use super::KernelError;
use super::object_maps::{self, ObjectMaps};

/// How a program loads: its program type and what it attaches to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LoadAs {
    /// A BPF-LSM program on an LSM hook (`bpf_lsm_<hook>`).
    Lsm,
    /// On a kernel function, able to make it return without running
    /// (an LSM program in fmod_ret mode).
    ModifyReturn,
    /// On a kernel function's entry, observing only.
    Entry,
    /// On a kernel function's return, observing only.
    Exit,
    /// On a BTF tracepoint (`btf_trace_<tracepoint>`).
    Tracepoint,
    /// An iterator over every task (`bpf_iter_task`).
    TaskIterator,
}

impl LoadAs {
    fn types(self) -> (bpf_prog_type, bpf_attach_type) {
        use bpf_attach_type::*;
        let tracing = bpf_prog_type::BPF_PROG_TYPE_TRACING;
        match self {
            LoadAs::Lsm => (bpf_prog_type::BPF_PROG_TYPE_LSM, BPF_LSM_MAC),
            LoadAs::ModifyReturn => (tracing, BPF_MODIFY_RETURN),
            LoadAs::Entry => (tracing, BPF_TRACE_FENTRY),
            LoadAs::Exit => (tracing, BPF_TRACE_FEXIT),
            LoadAs::Tracepoint => (tracing, BPF_TRACE_RAW_TP),
            LoadAs::TaskIterator => (tracing, BPF_TRACE_ITER),
        }
    }

    /// Whether a program the object's `section` holds may load so: as
    /// written, or an LSM program on its `security_*` function (fmod_ret).
    fn fits(self, section: &ProgramSection) -> bool {
        match section {
            ProgramSection::Lsm { sleepable: false } => {
                matches!(self, LoadAs::Lsm | LoadAs::ModifyReturn | LoadAs::Entry)
            }
            ProgramSection::FEntry { sleepable: false } => self == LoadAs::Entry,
            ProgramSection::FExit { sleepable: false } => self == LoadAs::Exit,
            ProgramSection::BtfTracePoint => self == LoadAs::Tracepoint,
            ProgramSection::Iter { sleepable: false } => self == LoadAs::TaskIterator,
            _ => false,
        }
    }
}

/// One program's load, decided from the kernel's BTF.
#[derive(Debug)]
pub struct Planned {
    pub name: &'static str,
    /// The `vmlinux` type id of what it attaches to.
    pub btf_id: u32,
    pub load_as: LoadAs,
}

/// The object, relocated against its maps, with its BTF loaded.
pub struct Loader {
    object: aya_obj::Object,
    btf_fd: Option<OwnedFd>,
}

pub(super) fn program_err(program: &str, reason: String) -> KernelError {
    KernelError::Program { program: leak(program), reason }
}

/// Program names are few and live as long as the daemon.
fn leak(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

impl Loader {
    /// Parses `object` with `globals` patched in, loads its BTF, makes its
    /// maps (reopening those `pins` name where pinned, see
    /// [`object_maps::create`]) and points the programs' map references
    /// at them.
    pub fn new(
        object: &[u8],
        globals: StdHashMap<&str, (&[u8], bool)>,
        pins: &[(&str, PathBuf)],
    ) -> Result<(Self, ObjectMaps), KernelError> {
        let object_err = |e: String| KernelError::Object(e);
        let chain = |e: &dyn std::error::Error| KernelError::Object(super::error_chain(e));
        let mut object = aya_obj::Object::parse(object).map_err(|e| chain(&e))?;
        object.patch_map_data(globals).map_err(|e| chain(&e))?;
        if object.has_btf_relocations() {
            // Offsets come from KERNEL_OFFSETS; nothing here would relocate a CO-RE access.
            return Err(object_err("the object has CO-RE relocations, which this loader does not apply".into()));
        }
        let features = aya::features();
        let btf_fd = match features.btf() {
            Some(btf_features) => match object.fixup_and_sanitize_btf(btf_features).map_err(|e| chain(&e))? {
                Some(btf) => Some(load_btf(&btf.to_bytes()).map_err(|e| object_err(format!("loading BTF: {e}")))?),
                None => None,
            },
            None => None,
        };
        let maps = object_maps::create(&object, btf_fd.as_ref().map(|fd| fd.as_fd()), pins)?;
        // relocate_maps needs `object` mutably, so the definitions are cloned out.
        let mut references: Vec<(String, RawFd, aya_obj::Map)> = Vec::new();
        for (name, map) in maps.maps() {
            let fd =
                map_fd(map).ok_or_else(|| object_err(format!("map {name} has a type this loader does not know")))?;
            if let Some(definition) = object.maps.get(name) {
                references.push((name.to_owned(), fd, definition.clone()));
            }
        }
        let text_sections = object.functions.keys().map(|(section, _)| *section).collect();
        object
            .relocate_maps(references.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text_sections)
            .map_err(|e| chain(&e))?;
        object.relocate_calls(&text_sections).map_err(|e| chain(&e))?;
        object.sanitize_functions(features);
        Ok((Self { object, btf_fd }, maps))
    }

    /// Loads (verifies) every program in `planned`, in order.
    pub fn load_all(&self, planned: &[Planned]) -> Result<Vec<(&'static str, OwnedFd)>, KernelError> {
        planned.iter().map(|p| Ok((p.name, self.load(p)?))).collect()
    }

    /// Loads (verifies) one program as `planned` says.
    pub fn load(&self, planned: &Planned) -> Result<OwnedFd, KernelError> {
        let name = planned.name;
        let program =
            self.object.programs.get(name).ok_or_else(|| program_err(name, "missing from the object".into()))?;
        if !planned.load_as.fits(&program.section) {
            let reason = format!("written as {:?}, cannot load as {:?}", program.section, planned.load_as);
            return Err(program_err(name, reason));
        }
        let function = self
            .object
            .functions
            .get(&program.function_key())
            .ok_or_else(|| program_err(name, "its function is missing from the object".into()))?;
        // Without a log first (a log of a long verification overflows and
        // fails the load); a refused program is loaded again for its log.
        let refused = match self.prog_load(planned, function, &mut []) {
            Ok(program) => {
                super::log_verified(name, verified_instructions(&program));
                return Ok(program);
            }
            Err(e) => e,
        };
        let mut log = vec![0u8; 4 << 20];
        let again = self.prog_load(planned, function, &mut log);
        // The first refusal is the one reported: a log that overflowed
        // fails the second load with ENOSPC instead.
        let overflowed = match again {
            Ok(program) => {
                tracing::warn!(program = name, "refused once ({refused}), then verified");
                super::log_verified(name, verified_instructions(&program));
                return Ok(program);
            }
            Err(e) => e.raw_os_error() == Some(libc::ENOSPC),
        };
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        let tail: Vec<&str> = text.lines().rev().take(6).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        // Before 6.4 a full log keeps its start, not the refusal.
        let note = if overflowed { " (the verifier's log overflowed: these lines may not be the refusal)" } else { "" };
        Err(program_err(name, format!("{refused}: {tail}{note}")))
    }

    /// BPF_PROG_LOAD of `function` as `planned` says; `log` (if not empty)
    /// receives the verifier's log.
    fn prog_load(&self, planned: &Planned, function: &aya_obj::Function, log: &mut [u8]) -> std::io::Result<OwnedFd> {
        let license = CString::new("GPL").expect("no NUL");
        let func_info = function.func_info.func_info_bytes();
        let line_info = function.line_info.line_info_bytes();
        let (prog_type, attach_type) = planned.load_as.types();
        // SAFETY: an all-zero bpf_attr is valid; the prog-load member is set below.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: the prog-load member of a zeroed attr, plain integers.
        let load = unsafe { &mut attr.__bindgen_anon_3 };
        load.prog_type = prog_type as u32;
        load.expected_attach_type = attach_type as u32;
        load.insns = function.instructions.as_ptr() as u64;
        load.insn_cnt = function.instructions.len() as u32;
        load.license = license.as_ptr() as u64;
        load.attach_btf_id = planned.btf_id;
        for (at, byte) in planned.name.bytes().take(15).enumerate() {
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

/// Attaches a loaded LSM or tracing program to what it was loaded for and
/// pins the link at `pin`, in place of whatever was there (see [`clear`]).
/// The daemon pins under a staging name, then moves each into place (see
/// `Kernel::attach_programs`).
pub fn attach_and_pin(program: &OwnedFd, pin: &Path) -> std::io::Result<()> {
    // No name: "what the program was loaded for".
    // SAFETY: an all-zero bpf_attr is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.raw_tracepoint.prog_fd = program.as_raw_fd() as u32;
    let link = sys_bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)?;
    clear(pin)?;
    let path = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(pin.as_os_str())).map_err(std::io::Error::other)?;
    // SAFETY: an all-zero bpf_attr is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    attr.__bindgen_anon_4.bpf_fd = link.as_raw_fd() as u32;
    // BPF_OBJ_PIN returns 0, not a descriptor.
    bpf_status(bpf_cmd::BPF_OBJ_PIN, &mut attr)
}

/// Removes what is at `path` under Warrant's pins, a directory too (with
/// what it holds): nothing but the daemon's own pins belongs there, and a
/// directory at a pin's name would stop the pin.
pub fn clear(path: &Path) -> std::io::Result<()> {
    if is_directory(path) {
        return std::fs::remove_dir_all(path);
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory at `path` (with what it holds), which a pin's
/// rename into its place cannot replace; a pin there is left for the
/// rename to replace at once.
pub fn clear_dir(path: &Path) -> std::io::Result<()> {
    if is_directory(path) { std::fs::remove_dir_all(path) } else { Ok(()) }
}

/// Whether `path` is a directory itself, not a symlink to one.
pub fn is_directory(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// One walk of every task by a loaded task iterator: what it wrote.
pub fn run_task_iterator(program: &OwnedFd) -> std::io::Result<Vec<u8>> {
    // SAFETY: an all-zero bpf_attr is valid; no target, no iterator options.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.link_create.__bindgen_anon_1.prog_fd = program.as_raw_fd() as u32;
    attr.link_create.attach_type = bpf_attach_type::BPF_TRACE_ITER as u32;
    let link = sys_bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: an all-zero bpf_attr is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.iter_create.link_fd = link.as_raw_fd() as u32;
    let walk = sys_bpf(bpf_cmd::BPF_ITER_CREATE, &mut attr)?;
    let mut output = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(walk), &mut output)?;
    Ok(output)
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
    let read = bpf_status(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr);
    (read.is_ok() && info.verified_insns != 0).then_some(info.verified_insns)
}

fn load_btf(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: an all-zero bpf_attr is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.__bindgen_anon_7.btf = bytes.as_ptr() as u64;
    attr.__bindgen_anon_7.btf_size = bytes.len() as u32;
    sys_bpf(bpf_cmd::BPF_BTF_LOAD, &mut attr)
}

/// bpf(2) for the commands that return 0 or an error.
pub(super) fn bpf_status(command: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<()> {
    // SAFETY: `attr` is a valid bpf_attr for `command`, its pointers live.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, command as libc::c_long, attr as *mut bpf_attr, std::mem::size_of::<bpf_attr>())
    };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// bpf(2) for the commands that return a new file descriptor.
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

/// The descriptor of one of the object's maps, for the map types it uses.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_lsm_program_loads_as_written_or_on_its_security_function_and_nothing_else_loads_across() {
        let lsm = ProgramSection::Lsm { sleepable: false };
        for load_as in [LoadAs::Lsm, LoadAs::ModifyReturn, LoadAs::Entry] {
            assert!(load_as.fits(&lsm));
        }
        assert!(!LoadAs::Exit.fits(&lsm));
        assert!(!LoadAs::Lsm.fits(&ProgramSection::Lsm { sleepable: true }));
        assert!(!LoadAs::Exit.fits(&ProgramSection::FEntry { sleepable: false }));
        assert!(LoadAs::Exit.fits(&ProgramSection::FExit { sleepable: false }));
        assert!(!LoadAs::Lsm.fits(&ProgramSection::BtfTracePoint));
        assert!(LoadAs::TaskIterator.fits(&ProgramSection::Iter { sleepable: false }));
    }
}
