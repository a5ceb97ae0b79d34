//! Loading: verifying every program against this kernel, reusing or
//! replacing the pinned maps, and attaching in place of the previous
//! daemon's links so that a restart leaves no gap.

use super::*;

impl Kernel {
    /// Loads the programs; when `attach` (the daemon; doctor only loads),
    /// reuses or creates the pinned maps, attaches, and pins each link in
    /// place of the previous daemon's: the new program is attached before the
    /// old one lets go, so a restart leaves no gap. Pinned maps of another
    /// layout are replaced, not reused (see `pins`): the subjects they mark
    /// are marked in the new maps before the new programs attach.
    pub fn load(attach: bool) -> Result<Self, KernelError> {
        let mode = match check_bpf_lsm() {
            Ok(()) => Mode::BpfLsm,
            Err(KernelError::LsmInactive(list)) => Mode::ModifyReturn { active_lsms: list },
            Err(e) => return Err(e),
        };
        // What the kernel's BTF decides is decided first, and Warrant's
        // index of it dropped before aya's own parse of the same blob is
        // made: each is a large part of the daemon's peak resident size,
        // and aya's loads need only theirs.
        let kernel_btf = KernelBtf::from_sys_fs()?;
        let offsets = btf::kernel_offsets(&kernel_btf)?;
        let mut missing_hooks = Vec::new();
        let plan = match &mode {
            Mode::BpfLsm => Plan::Lsm(present_lsm_programs(&kernel_btf, &mut missing_hooks)?),
            Mode::ModifyReturn { .. } => {
                Plan::ModifyReturn(fmod_ret::plan(&kernel_btf, &mut missing_hooks).map_err(no_enforcement(&mode))?)
            }
        };
        let blob = kernel_btf.into_blob();
        let pin_root = Path::new(PIN_ROOT);
        let maps_dir = pin_root.join("maps");
        let mut loader = object_loader(&offsets);
        // The loader parses the kernel's BTF when made: that parse is
        // dropped before the one the loader and the program loads below
        // share is made, so that one of aya's parses is in memory at a
        // time, not two.
        loader.btf(None);
        let btf = Btf::parse(&blob, Endianness::default()).map_err(|e| KernelError::AyaBtf(e.to_string()))?;
        drop(blob);
        loader.btf(Some(&btf));
        let map_paths: Vec<(&str, PathBuf)> = PINNED_MAPS.iter().map(|name| (*name, maps_dir.join(name))).collect();
        let mut set_aside = None;
        if attach {
            prepare_pin_root(pin_root)?;
            let reasons = pins::mismatches(&maps_dir, EBPF_OBJECT, PINNED_MAPS);
            if !reasons.is_empty() {
                tracing::warn!(?reasons, "pinned maps of another layout: replacing them");
                let aside = pins::SetAside::new(&maps_dir, reasons)
                    .map_err(|e| KernelError::Pin { path: maps_dir.display().to_string(), reason: e.to_string() })?;
                set_aside = Some(aside);
            }
            for (name, path) in &map_paths {
                loader.map_pin_path(name, path.as_path());
            }
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(|e| KernelError::Object(error_chain(&e)))?;
        let modify_return = match plan {
            Plan::Lsm(present) => {
                load_programs(&mut ebpf, &btf, &present)?;
                Vec::new()
            }
            Plan::ModifyReturn(planned) => {
                load_programs(&mut ebpf, &btf, &[])?;
                let globals = StdHashMap::from([("KERNEL_OFFSETS", (offsets_bytes(&offsets), true))]);
                let fmod = fmod_ret::Loader::new(EBPF_OBJECT, globals, &ebpf).map_err(no_enforcement(&mode))?;
                fmod_ret::load_planned(&fmod, &planned).map_err(no_enforcement(&mode))?
            }
        };
        drop(btf);
        let mut kernel = Self::with_maps_of(ebpf, missing_hooks, mode, modify_return)?;
        if !attach {
            return Ok(kernel);
        }
        let mut layout: Array<&mut MapData, u32> =
            Array::try_from(kernel.ebpf.map_mut("PIN_LAYOUT").ok_or(KernelError::MissingMap("PIN_LAYOUT"))?)
                .map_err(map_err("PIN_LAYOUT"))?;
        layout.set(0, warrant_common::PIN_LAYOUT_VERSION, 0).map_err(map_err("PIN_LAYOUT"))?;
        if let Some(aside) = &set_aside {
            kernel.carry_subjects(aside);
        }
        // Before the programs attach: a restart's new programs, with their
        // new map, never see the host's addresses as someone else's.
        // Unreadable: no start, so that a restart leaves the running
        // programs, and their map, in place.
        let prefixes = crate::local_addresses::dump().map_err(KernelError::LocalAddresses)?;
        let change = kernel.set_local_addresses(&prefixes)?;
        if change.left_out > 0 {
            tracing::error!(left_out = change.left_out, "the host's addresses do not fit LOCAL_ADDRESSES");
        }
        kernel.attach_programs(&pin_root.join("links"))?;
        if let Some(aside) = set_aside {
            // Processes the old programs marked while the new ones attached.
            kernel.carry_subjects(&aside);
            kernel.replaced_pins = aside.reasons.clone();
            aside.remove();
        }
        Ok(kernel)
    }

    /// The object's maps, made afresh and pinned nowhere, without a
    /// program loaded: what a policy's commit writes, for measuring it on a
    /// host that cannot load the programs (`warrant-bench apply` and
    /// `records`, whose daemon state reads and writes them). Root,
    /// and a kernel with BTF, are still needed.
    pub fn maps_only() -> Result<Self, KernelError> {
        let offsets = btf::kernel_offsets(&KernelBtf::from_sys_fs()?)?;
        let ebpf = object_loader(&offsets).load(EBPF_OBJECT).map_err(|e| KernelError::Object(error_chain(&e)))?;
        Self::with_maps_of(ebpf, Vec::new(), Mode::BpfLsm, Vec::new())
    }

    /// A Kernel over `ebpf`'s maps.
    fn with_maps_of(
        mut ebpf: Ebpf,
        missing_hooks: Vec<MissingHook>,
        mode: Mode,
        modify_return: Vec<(&'static str, OwnedFd)>,
    ) -> Result<Self, KernelError> {
        let rules = HashMap::try_from(take(&mut ebpf, "RULES")?).map_err(map_err("RULES"))?;
        let profiles = HashMap::try_from(take(&mut ebpf, "PROFILES")?).map_err(map_err("PROFILES"))?;
        let warrants = HashMap::try_from(take(&mut ebpf, "WARRANTS")?).map_err(map_err("WARRANTS"))?;
        let settings = Array::try_from(take(&mut ebpf, "SETTINGS")?).map_err(map_err("SETTINGS"))?;
        let protected = HashMap::try_from(take(&mut ebpf, "PROTECTED")?).map_err(map_err("PROTECTED"))?;
        let rates = Array::try_from(take(&mut ebpf, "RATES")?).map_err(map_err("RATES"))?;
        Ok(Self {
            ebpf,
            rules,
            profiles,
            warrants,
            settings,
            protected,
            rates,
            missing_hooks,
            replaced_pins: Vec::new(),
            mode,
            modify_return,
        })
    }

    /// Marks in this Kernel's maps every subject the set-aside maps mark.
    fn carry_subjects(&mut self, aside: &pins::SetAside) {
        for (pid, profile_id) in aside.subjects() {
            if self.subject_profile(pid).is_none()
                && let Err(e) = self.mark_process(pid, profile_id)
            {
                tracing::error!(pid, "cannot carry a subject into the new maps: {e}");
            }
        }
    }

    /// Attaches every loaded program and pins its link in place of the
    /// previous daemon's: tracing programs first, then the LSM programs in
    /// their order.
    fn attach_programs(&mut self, links: &Path) -> Result<(), KernelError> {
        let mut pinned: Vec<&str> = Vec::new();
        for &(name, _) in TRACING_PROGRAMS {
            let link = match self.ebpf.program_mut(name).ok_or_else(|| program_err(name, "missing".into()))? {
                Program::FEntry(program) => program.attach().and_then(|id| program.take_link(id)).map(FdLink::from),
                Program::FExit(program) => program.attach().and_then(|id| program.take_link(id)).map(FdLink::from),
                Program::BtfTracePoint(program) => {
                    program.attach().and_then(|id| program.take_link(id)).map(FdLink::from)
                }
                _ => return Err(program_err(name, "is not an fentry, fexit or BTF tracepoint program".into())),
            };
            pin_link_in_place(link.map_err(|e| program_err(name, error_chain(&e)))?, &links.join(name))?;
            pinned.push(name);
        }
        for (name, program) in &self.modify_return {
            fmod_ret::attach_and_pin(program, &links.join(name))
                .map_err(|e| KernelError::Program { program: name, reason: format!("attaching: {e}") })?;
            pinned.push(name);
        }
        for lsm_program in LSM_PROGRAMS {
            let name = lsm_program.name;
            if self.mode != Mode::BpfLsm || self.missing_hooks.iter().any(|m| m.hook == lsm_program.hook) {
                continue;
            }
            let program: &mut Lsm = typed_program(&mut self.ebpf, name)?;
            let link_id = program.attach().map_err(|e| program_err(name, error_chain(&e)))?;
            let link = program.take_link(link_id).map_err(|e| program_err(name, error_chain(&e)))?;
            pin_link_in_place(FdLink::from(link), &links.join(name))?;
            pinned.push(name);
        }
        remove_stale_links(links, &pinned);
        Ok(())
    }
}

/// In fmod_ret mode, what stops the programs loading means no enforcement
/// at all, and says which LSMs are active; in bpf-lsm mode it stands as is.
fn no_enforcement(mode: &Mode) -> impl Fn(KernelError) -> KernelError + '_ {
    move |e| match mode {
        Mode::ModifyReturn { active_lsms } => {
            KernelError::NoEnforcement { active_lsms: active_lsms.clone(), reason: e.to_string() }
        }
        Mode::BpfLsm => e,
    }
}

/// How the LSM programs load, as the kernel's BTF decided.
enum Plan {
    /// As LSM programs: those whose hook this kernel has.
    Lsm(Vec<&'static LsmProgram>),
    /// As fmod_ret programs on `security_*` functions.
    ModifyReturn(Vec<fmod_ret::Planned>),
}

/// The LSM programs whose hooks this kernel has; the optional hooks it
/// lacks are added to `missing`, and their programs are left unloaded.
fn present_lsm_programs(
    kernel_btf: &KernelBtf,
    missing: &mut Vec<MissingHook>,
) -> Result<Vec<&'static LsmProgram>, KernelError> {
    let mut present = Vec::new();
    for program in LSM_PROGRAMS {
        if hook_present(program, kernel_btf, missing)? {
            present.push(program);
        }
    }
    Ok(present)
}

/// Loads (verifies) the tracing and iterator programs and the LSM ones in
/// `lsm`.
fn load_programs(ebpf: &mut Ebpf, btf: &Btf, lsm: &[&'static LsmProgram]) -> Result<(), KernelError> {
    for &(name, function) in TRACING_PROGRAMS {
        let loaded = match ebpf.program_mut(name).ok_or_else(|| program_err(name, "missing from the object".into()))? {
            Program::FEntry(program) => program.load(function, btf),
            Program::FExit(program) => program.load(function, btf),
            Program::BtfTracePoint(program) => program.load(function, btf),
            _ => return Err(program_err(name, "is not an fentry, fexit or BTF tracepoint program".into())),
        };
        loaded.map_err(|e| program_err(name, error_chain(&e)))?;
    }
    for lsm_program in lsm {
        let name = lsm_program.name;
        let program: &mut Lsm = typed_program(ebpf, name)?;
        program.load(lsm_program.hook, btf).map_err(|e| program_err(name, error_chain(&e)))?;
        log_verified(name, program.info().ok().and_then(|info| info.verified_instruction_count()));
    }
    for name in ["mark_threads", "traced_tasks"] {
        let iterator: &mut Iter = typed_program(ebpf, name)?;
        iterator.load("task", btf).map_err(|e| program_err(name, error_chain(&e)))?;
    }
    Ok(())
}

/// The verifier's budget is 1M processed instructions a program: the log
/// (`warrant daemon --verbose`) shows how much of it `program` used here.
pub(super) fn log_verified(program: &str, count: Option<u32>) {
    if let Some(count) = count {
        tracing::debug!(program, verified_instructions = count, budget = 1_000_000, "loaded");
    }
}

fn program_err(program: &'static str, reason: String) -> KernelError {
    KernelError::Program { program, reason }
}

/// Program `name` of the object, as the program type `T` it must be.
fn typed_program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, KernelError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or_else(|| program_err(name, "missing from the object".into()))?;
    program.try_into().map_err(|e: aya::programs::ProgramError| program_err(name, e.to_string()))
}

/// Whether `program`'s hook is in this kernel. If not, what its absence
/// costs is logged and added to `missing`, or, for a hook Warrant cannot do
/// without, the error.
pub(super) fn hook_present(
    program: &LsmProgram,
    kernel_btf: &KernelBtf,
    missing: &mut Vec<MissingHook>,
) -> Result<bool, KernelError> {
    if program.present(kernel_btf) {
        return Ok(true);
    }
    let absent = program.missing().ok_or(KernelError::MissingHook(program.hook))?;
    tracing::warn!(hook = program.hook, "{}", absent.effect);
    missing.push(absent);
    Ok(false)
}

/// The loader of Warrant's object with this kernel's `offsets`.
fn object_loader(offsets: &warrant_common::KernelOffsets) -> EbpfLoader<'_> {
    let mut loader = EbpfLoader::new();
    // SUBJECTS is a task-storage map, which aya loads but has no type for.
    loader.allow_unsupported_maps().override_global("KERNEL_OFFSETS", offsets, true);
    loader
}

/// Mounts bpffs if needed and creates PIN_ROOT/{maps,links}.
fn prepare_pin_root(root: &Path) -> Result<(), KernelError> {
    let bpffs = root.parent().unwrap_or(Path::new("/sys/fs/bpf"));
    let is_bpffs = nix::sys::statfs::statfs(bpffs)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
        .unwrap_or(false);
    if !is_bpffs {
        nix::mount::mount(Some("bpf"), bpffs, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>).map_err(
            |e| KernelError::Pin { path: bpffs.display().to_string(), reason: format!("cannot mount bpffs: {e}") },
        )?;
    }
    for dir in [root.join("maps"), root.join("links")] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| KernelError::Pin { path: dir.display().to_string(), reason: e.to_string() })?;
    }
    Ok(())
}

/// Pins `link` at `path`, replacing (and so detaching) a previous pin there
/// only once the new link is attached and pinned beside it.
fn pin_link_in_place(link: FdLink, path: &Path) -> Result<(), KernelError> {
    let pin_err = |reason: String| KernelError::Pin { path: path.display().to_string(), reason };
    // bpffs refuses names with dots (reserved), hence `_new`.
    let mut staging = path.as_os_str().to_owned();
    staging.push("_new");
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_file(&staging);
    link.pin(&staging).map_err(|e| pin_err(error_chain(&e)))?;
    std::fs::rename(&staging, path).map_err(|e| pin_err(e.to_string()))
}

/// Unpins (and so detaches) every link under `links` this daemon did not
/// just pin: a program an earlier version had and this one has not.
fn remove_stale_links(links: &Path, pinned: &[&str]) {
    let Ok(entries) = std::fs::read_dir(links) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if pinned.iter().any(|p| name == *p) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::warn!(link = ?name, "detached a program an earlier daemon attached and this one has not")
            }
            Err(e) => tracing::error!(link = ?name, "cannot detach an earlier daemon's program: {e}"),
        }
    }
}

/// The bytes of the offsets global, as aya-obj patches data sections.
fn offsets_bytes(offsets: &warrant_common::KernelOffsets) -> &[u8] {
    // SAFETY: KernelOffsets is repr(C) u32 fields with no padding (its size
    // is asserted in warrant-common), so every byte is initialised.
    unsafe {
        std::slice::from_raw_parts(
            std::ptr::from_ref(offsets).cast::<u8>(),
            std::mem::size_of::<warrant_common::KernelOffsets>(),
        )
    }
}

pub(super) fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, KernelError> {
    ebpf.take_map(name).ok_or(KernelError::MissingMap(name))
}
