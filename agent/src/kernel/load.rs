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
        // What the kernel's BTF decides (the hooks present, the type id
        // each load names) is decided first, and Warrant's index of it
        // dropped before anything is loaded: it is most of the daemon's
        // peak resident size.
        let kernel_btf = KernelBtf::from_sys_fs()?;
        let offsets = btf::kernel_offsets(&kernel_btf)?;
        let mut missing_hooks = Vec::new();
        let tracing = plan_tracing(&kernel_btf)?;
        let iterators = plan_iterators(&kernel_btf)?;
        let lsm = match &mode {
            Mode::BpfLsm => plan_lsm(&kernel_btf, &mut missing_hooks)?,
            Mode::ModifyReturn { .. } => {
                fmod_ret::plan(&kernel_btf, &mut missing_hooks).map_err(no_enforcement(&mode))?
            }
        };
        drop(kernel_btf);
        let pin_root = Path::new(PIN_ROOT);
        let maps_dir = pin_root.join("maps");
        let mut pins: Vec<(&str, PathBuf)> = Vec::new();
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
            pins = PINNED_MAPS.iter().map(|name| (*name, maps_dir.join(name))).collect();
        }
        let (programs, maps) = program_loader::Loader::new(EBPF_OBJECT, globals(&offsets), &pins)?;
        let mut attached = programs.load_all(&tracing)?;
        attached.extend(programs.load_all(&lsm).map_err(no_enforcement(&mode))?);
        let iterators = programs.load_all(&iterators)?;
        drop(programs);
        let programs = Programs { attached, iterators };
        let mut kernel = Self::with_maps_of(maps, missing_hooks, mode, programs)?;
        if !attach {
            return Ok(kernel);
        }
        let mut layout: Array<&mut MapData, u32> =
            Array::try_from(kernel.maps.map_mut("PIN_LAYOUT").ok_or(KernelError::MissingMap("PIN_LAYOUT"))?)
                .map_err(map_err("PIN_LAYOUT"))?;
        layout.set(0, warrant_common::PIN_LAYOUT_VERSION, 0).map_err(map_err("PIN_LAYOUT"))?;
        if let Some(aside) = &set_aside {
            kernel.carry_subjects(aside);
            kernel.carried_over = kernel.carry_protection(aside);
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
        // Fail-closed until the start's restore walks the trees: files made
        // while no program could count a full PROTECTED's misses (the
        // daemon down, or an earlier daemon's count in its own map) are
        // decided by their names meanwhile.
        kernel.note_protected_misses(1)?;
        kernel.attach_programs(&pin_root.join("links"))?;
        if let Some(aside) = set_aside {
            // Processes the old programs marked while the new ones attached.
            // (Not so the entries below: by now the new programs may have
            // changed or removed what the old maps still hold.)
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
        let (_, maps) = program_loader::Loader::new(EBPF_OBJECT, globals(&offsets), &[])?;
        Self::with_maps_of(maps, Vec::new(), Mode::BpfLsm, Programs::default())
    }

    /// A Kernel over `maps`.
    fn with_maps_of(
        mut maps: ObjectMaps,
        missing_hooks: Vec<MissingHook>,
        mode: Mode,
        programs: Programs,
    ) -> Result<Self, KernelError> {
        let rules = HashMap::try_from(take(&mut maps, "RULES")?).map_err(map_err("RULES"))?;
        let profiles = HashMap::try_from(take(&mut maps, "PROFILES")?).map_err(map_err("PROFILES"))?;
        let warrants = HashMap::try_from(take(&mut maps, "WARRANTS")?).map_err(map_err("WARRANTS"))?;
        let settings = Array::try_from(take(&mut maps, "SETTINGS")?).map_err(map_err("SETTINGS"))?;
        let protected = HashMap::try_from(take(&mut maps, "PROTECTED")?).map_err(map_err("PROTECTED"))?;
        let rates = Array::try_from(take(&mut maps, "RATES")?).map_err(map_err("RATES"))?;
        Ok(Self {
            maps,
            rules,
            profiles,
            warrants,
            settings,
            protected,
            rates,
            missing_hooks,
            replaced_pins: Vec::new(),
            carried_over: Vec::new(),
            mode,
            programs,
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

    /// Copies into this Kernel's maps, before its programs attach, what the
    /// set-aside ones protect and mark, each whose shape is this Warrant's:
    /// until the persisted policy is restored (or if it cannot be), the
    /// files it protected, Warrant's own among them, and the /proc trees
    /// stay protected, and what subjects wrote stays theirs. These maps'
    /// entries keep their meaning across layouts (a tree id is its path's
    /// hash; see `ProtectedEntry`); the restore then drops what its policy
    /// no longer protects, as after a restart that reuses the pins. Says,
    /// map by map, what was carried.
    fn carry_protection(&mut self, aside: &pins::SetAside) -> Vec<String> {
        let protected = aside.hash_map::<FileKey, ProtectedEntry>("PROTECTED");
        let carried = [
            ("PROTECTED", protected.map(|from| copy_entries(&from, &mut self.protected))),
            ("PROC_TREES", self.carry_entries::<u64, u32>(aside, "PROC_TREES")),
            ("MARKS", self.carry_entries::<FileKey, warrant_common::Mark>(aside, "MARKS")),
        ];
        carried
            .into_iter()
            .map(|(name, outcome)| match outcome {
                Ok(Copied { entries, failed: 0, .. }) => format!("{name}: {entries} entries"),
                Ok(Copied { entries, failed, first_error }) => {
                    tracing::error!(map = name, failed, "entries not carried over: {first_error}");
                    format!("{name}: {entries} entries, {failed} not carried ({first_error})")
                }
                Err(reason) => {
                    tracing::error!(map = name, "not carried over from the replaced maps: {reason}");
                    format!("{name}: not carried ({reason})")
                }
            })
            .collect()
    }

    fn carry_entries<K: Pod, V: Pod>(&mut self, aside: &pins::SetAside, name: &'static str) -> Result<Copied, String> {
        let from = aside.hash_map::<K, V>(name)?;
        Ok(copy_entries(&from, &mut self.hash_map::<K, V>(name).map_err(|e| e.to_string())?))
    }

    /// Attaches every loaded program and pins its link in place of the
    /// previous daemon's: tracing programs first, then the LSM programs in
    /// their order. Each link is pinned under a staging name, then moved
    /// over the previous one at once: the two programs share a hook only
    /// between those steps (both run; a warrant's use taken by each). What
    /// is in the way at either name is removed (see `program_loader::clear`).
    /// A failure stops the start with the links before it moved: the next
    /// start replaces them (see `pins::SetAside` for maps being replaced).
    fn attach_programs(&mut self, links: &Path) -> Result<(), KernelError> {
        let mut pinned: Vec<&str> = Vec::new();
        for (name, program) in &self.programs.attached {
            let staging = links.join(format!("{name}_new"));
            let pin = links.join(name);
            let moved = program_loader::attach_and_pin(program, &staging)
                .map_err(|e| format!("attaching: {e}"))
                .and_then(|()| {
                    program_loader::clear_dir(&pin)
                        .and_then(|()| std::fs::rename(&staging, &pin))
                        .map_err(|e| format!("pinning its link: {e}"))
                });
            if let Err(reason) = moved {
                let _ = program_loader::clear(&staging);
                return Err(KernelError::Program { program: name, reason });
            }
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

/// The LSM programs whose hooks this kernel has, as BPF-LSM programs; the
/// optional hooks it lacks are added to `missing`, and their programs are
/// left unloaded.
fn plan_lsm(kernel_btf: &KernelBtf, missing: &mut Vec<MissingHook>) -> Result<Vec<Planned>, KernelError> {
    let mut planned = Vec::new();
    for program in LSM_PROGRAMS {
        if hook_present(program, kernel_btf, missing)? {
            let btf_id = kernel_btf
                .function_id(&format!("bpf_lsm_{}", program.hook))
                .ok_or(KernelError::MissingHook(program.hook))?;
            planned.push(Planned { name: program.name, btf_id, load_as: LoadAs::Lsm });
        }
    }
    Ok(planned)
}

/// The fentry, fexit and BTF tracepoint programs, each on what it traces.
fn plan_tracing(kernel_btf: &KernelBtf) -> Result<Vec<Planned>, KernelError> {
    let mut planned = Vec::new();
    for &(name, traces) in TRACING_PROGRAMS {
        let (btf_id, load_as) = match traces {
            Traces::Entry(function) => (kernel_btf.function_id(function), LoadAs::Entry),
            Traces::Exit(function) => (kernel_btf.function_id(function), LoadAs::Exit),
            Traces::Tracepoint(point) => (kernel_btf.typedef_id(&format!("btf_trace_{point}")), LoadAs::Tracepoint),
        };
        let btf_id =
            btf_id.ok_or_else(|| program_err(name, format!("the kernel has no {} to attach to", traces.target())))?;
        planned.push(Planned { name, btf_id, load_as });
    }
    Ok(planned)
}

/// The task iterators, on the kernel's `bpf_iter_task`.
fn plan_iterators(kernel_btf: &KernelBtf) -> Result<Vec<Planned>, KernelError> {
    let btf_id = kernel_btf.function_id("bpf_iter_task");
    let no_iterator = |name| program_err(name, "the kernel has no task iterator (bpf_iter_task)".into());
    TASK_ITERATORS
        .iter()
        .map(|&name| {
            Ok(Planned { name, btf_id: btf_id.ok_or_else(|| no_iterator(name))?, load_as: LoadAs::TaskIterator })
        })
        .collect()
}

/// The verifier's budget is 1M processed instructions a program: the log
/// (`warrant daemon --verbose`) shows how much of it `program` used here.
pub(super) fn log_verified(program: &str, count: Option<u32>) {
    if let Some(count) = count {
        tracing::debug!(program, verified_instructions = count, budget = 1_000_000, "loaded");
    }
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

/// The object's globals: this kernel's `offsets`.
fn globals(offsets: &warrant_common::KernelOffsets) -> StdHashMap<&'static str, (&[u8], bool)> {
    StdHashMap::from([("KERNEL_OFFSETS", (offsets_bytes(offsets), true))])
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
        match program_loader::clear(&entry.path()) {
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

pub(super) fn take(maps: &mut ObjectMaps, name: &'static str) -> Result<Map, KernelError> {
    maps.take_map(name).ok_or(KernelError::MissingMap(name))
}

/// What [`copy_entries`] copied, and what it could not.
#[derive(Default)]
struct Copied {
    entries: usize,
    failed: usize,
    first_error: String,
}

/// Inserts every entry of `from` into `into`, going on past one that fails
/// (a full map): as much protection carried as fits.
fn copy_entries<K: Pod, V: Pod>(
    from: &HashMap<MapData, K, V>,
    into: &mut HashMap<impl BorrowMut<MapData>, K, V>,
) -> Copied {
    let mut copied = Copied::default();
    for entry in from.iter() {
        match entry
            .map_err(|e| e.to_string())
            .and_then(|(key, value)| into.insert(key, value, 0).map_err(|e| e.to_string()))
        {
            Ok(()) => copied.entries += 1,
            Err(e) => {
                if copied.failed == 0 {
                    copied.first_error = e;
                }
                copied.failed += 1;
            }
        }
    }
    copied
}
