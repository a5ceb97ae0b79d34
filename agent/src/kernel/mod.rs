//! The kernel side as the daemon sees it: loading and attaching the BPF-LSM
//! programs, and the maps it writes (rules, profiles, warrants, subjects).

use std::{
    borrow::BorrowMut,
    collections::HashMap as StdHashMap,
    hash::Hash,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use aya::{
    Btf, Ebpf, EbpfLoader, Pod,
    maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{Iter, Lsm, Program, links::FdLink},
};
use thiserror::Error;
use warrant_common::{
    FileKey, MatchKey, ProfileEntry, ProtectedEntry, RateWindow, RuleEntry, SETTINGS_INDEX, Settings, TargetKey,
    WarrantEntry, match_kind, profile_key,
};

use crate::btf::{self, KernelBtf};
use crate::hooks::{LSM_PROGRAMS, LsmProgram, MissingHook, TRACING_PROGRAMS};
use crate::pins;

mod fmod_ret;
pub mod links;
mod marks;
mod subjects;
pub use subjects::{pinned_subject_profile, raw_subject_profile};

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/warrant-ebpf"));

/// Where programs' links and the maps that outlive the daemon are pinned.
pub const PIN_ROOT: &str = "/sys/fs/bpf/warrant";

/// Maps pinned under PIN_ROOT/maps: everything that must survive a daemon
/// restart (subjects, policy, warrants with their remaining uses, and events
/// not yet read).
const PINNED_MAPS: &[&str] = &[
    "SUBJECTS",
    "PROFILES",
    "RULES",
    "WARRANTS",
    "SETTINGS",
    "EVENTS",
    "LOST_EVENTS",
    "PROTECTED",
    "PROC_TREES",
    "MATCHES",
    "CGROUP_PATHS",
    "RATES",
    "DIGEST_KEY",
    "MARKS",
    "PIN_LAYOUT",
];

#[derive(Debug, Error)]
pub enum KernelError {
    #[error(
        "BPF-LSM is not active: the kernel's active LSMs are {0:?}. Boot with lsm={0},bpf: on Debian or Ubuntu \
         add it to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot"
    )]
    LsmInactive(String),
    #[error("cannot read the active LSM list: {0} (is securityfs mounted?)")]
    LsmList(std::io::Error),
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("cannot read kernel BTF: {0}")]
    AyaBtf(String),
    #[error("loading the BPF object failed: {0}")]
    Object(String),
    #[error(
        "BPF-LSM is not active (the kernel's active LSMs are {active_lsms:?}) and the fmod_ret fallback failed: \
         {reason}. Boot with lsm={active_lsms},bpf: on Debian or Ubuntu add it to GRUB_CMDLINE_LINUX in \
         /etc/default/grub, run update-grub and reboot"
    )]
    NoEnforcement { active_lsms: String, reason: String },
    #[error("this kernel has no LSM hook {0}, which Warrant needs (kernels from 6.1 on have it)")]
    MissingHook(&'static str),
    #[error("the kernel refused BPF program {program}: {reason}")]
    Program { program: &'static str, reason: String },
    #[error("map {0} is missing from the BPF object")]
    MissingMap(&'static str),
    #[error("map {map}: {reason}")]
    Map { map: &'static str, reason: String },
    #[error("process {pid}: {reason}")]
    Subject { pid: u32, reason: String },
    #[error("pinning under {path}: {reason}")]
    Pin { path: String, reason: String },
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |e| KernelError::Map { map, reason: e.to_string() }
}

/// Checks that `bpf` is among the active LSMs.
pub fn check_bpf_lsm() -> Result<(), KernelError> {
    let path = "/sys/kernel/security/lsm";
    if std::fs::metadata(path).is_err() {
        // securityfs may simply not be mounted yet.
        let _ = nix::mount::mount(
            Some("securityfs"),
            "/sys/kernel/security",
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    let list = std::fs::read_to_string(path).map_err(KernelError::LsmList)?;
    if list.trim().split(',').any(|lsm| lsm == "bpf") {
        Ok(())
    } else {
        Err(KernelError::LsmInactive(list.trim().to_owned()))
    }
}

pub struct Kernel {
    ebpf: Ebpf,
    rules: HashMap<MapData, TargetKey, RuleEntry>,
    profiles: HashMap<MapData, u64, ProfileEntry>,
    warrants: HashMap<MapData, TargetKey, WarrantEntry>,
    settings: Array<MapData, Settings>,
    protected: HashMap<MapData, FileKey, ProtectedEntry>,
    rates: Array<MapData, RateWindow>,
    missing_hooks: Vec<MissingHook>,
    replaced_pins: Vec<String>,
    mode: Mode,
    /// In fmod_ret mode, the decision programs loaded there (name, fd).
    modify_return: Vec<(&'static str, OwnedFd)>,
}

/// How the decision programs are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As BPF-LSM programs on the LSM hooks (`bpf` is in `lsm=`).
    BpfLsm,
    /// As fmod_ret programs on the `security_*` functions.
    ModifyReturn { active_lsms: String },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::BpfLsm => "bpf-lsm",
            Mode::ModifyReturn { .. } => "fmod_ret",
        }
    }
}

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
        let kernel_btf = KernelBtf::from_sys_fs()?;
        let offsets = btf::kernel_offsets(&kernel_btf)?;
        let pin_root = Path::new(PIN_ROOT);
        let maps_dir = pin_root.join("maps");
        let mut loader = EbpfLoader::new();
        // SUBJECTS is a task-storage map, which aya loads but has no type for.
        loader.allow_unsupported_maps().override_global("KERNEL_OFFSETS", &offsets, true);
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
        let btf = Btf::from_sys_fs().map_err(|e| KernelError::AyaBtf(e.to_string()))?;
        let (missing_hooks, modify_return) = match &mode {
            Mode::BpfLsm => (load_programs(&mut ebpf, &btf, &kernel_btf, true)?, Vec::new()),
            Mode::ModifyReturn { active_lsms } => {
                let mut missing = load_programs(&mut ebpf, &btf, &kernel_btf, false)?;
                let globals = StdHashMap::from([("KERNEL_OFFSETS", (offsets_bytes(&offsets), true))]);
                let fmod = fmod_ret::Loader::new(EBPF_OBJECT, globals, &ebpf).map_err(|e| {
                    KernelError::NoEnforcement { active_lsms: active_lsms.clone(), reason: e.to_string() }
                })?;
                let loaded = fmod_ret::load_all(&fmod, &btf, &kernel_btf, &mut missing).map_err(|e| {
                    KernelError::NoEnforcement { active_lsms: active_lsms.clone(), reason: e.to_string() }
                })?;
                (missing, loaded)
            }
        };
        let rules = HashMap::try_from(take(&mut ebpf, "RULES")?).map_err(map_err("RULES"))?;
        let profiles = HashMap::try_from(take(&mut ebpf, "PROFILES")?).map_err(map_err("PROFILES"))?;
        let warrants = HashMap::try_from(take(&mut ebpf, "WARRANTS")?).map_err(map_err("WARRANTS"))?;
        let settings = Array::try_from(take(&mut ebpf, "SETTINGS")?).map_err(map_err("SETTINGS"))?;
        let protected = HashMap::try_from(take(&mut ebpf, "PROTECTED")?).map_err(map_err("PROTECTED"))?;
        let rates = Array::try_from(take(&mut ebpf, "RATES")?).map_err(map_err("RATES"))?;
        let mut kernel = Self {
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
        };
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
        kernel.attach_programs(&pin_root.join("links"))?;
        if let Some(aside) = set_aside {
            // Processes the old programs marked while the new ones attached.
            kernel.carry_subjects(&aside);
            kernel.replaced_pins = aside.reasons.clone();
            aside.remove();
        }
        Ok(kernel)
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

    /// Why the pinned maps were replaced at load (empty if they were reused).
    pub fn replaced_pins(&self) -> &[String] {
        &self.replaced_pins
    }

    /// How the programs are attached on this kernel.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Optional hooks this kernel lacks, each with what that costs.
    pub fn missing_hooks(&self) -> &[MissingHook] {
        &self.missing_hooks
    }

    /// The decision event stream (taken once, by the event reader).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        RingBuf::try_from(take(&mut self.ebpf, "EVENTS")?).map_err(map_err("EVENTS"))
    }

    /// Makes `rules` and `profiles` the policy in force, atomically: they are
    /// written under the generation not in force, then one settings word
    /// flips to it, then the old generation's entries go. If writing fails
    /// part way, what was written is removed and the old policy stays whole.
    pub fn set_policy(
        &mut self,
        version: u64,
        profiles: &[(u32, ProfileEntry)],
        rules: &StdHashMap<TargetKey, RuleEntry>,
    ) -> Result<(), KernelError> {
        let current = self.settings.get(&SETTINGS_INDEX, 0).map_err(map_err("SETTINGS"))?.active_generation();
        let next = current ^ 1;
        // Leftovers of an earlier apply that failed half way.
        self.remove_generation(next)?;
        if let Err(e) = self.write_generation(next, profiles, rules) {
            let _ = self.remove_generation(next);
            return Err(e);
        }
        // Two writes: the version of the generation not yet read, then the
        // flip, so the flip is the only word that changes under readers.
        self.write_settings(|settings| settings.policy_versions[next as usize] = version)?;
        self.write_settings(|settings| settings.generation = next as u32)?;
        // Rule indexes name other rules now: every rate window starts afresh.
        let indexes = rules.values().map(|r| r.rule_index + 1).max().unwrap_or(0).min(self.rates.len());
        for index in 0..indexes {
            self.rates.set(index, RateWindow::default(), 0).map_err(map_err("RATES"))?;
        }
        self.remove_generation(current)
    }

    fn write_generation(
        &mut self,
        generation: u8,
        profiles: &[(u32, ProfileEntry)],
        rules: &StdHashMap<TargetKey, RuleEntry>,
    ) -> Result<(), KernelError> {
        for (id, entry) in profiles {
            self.profiles.insert(profile_key(generation, *id), entry, 0).map_err(map_err("PROFILES"))?;
        }
        for (key, rule) in rules {
            let key = TargetKey { generation, ..*key };
            self.rules.insert(key, rule, 0).map_err(map_err("RULES"))?;
        }
        Ok(())
    }

    /// Removes every rule and profile of `generation`.
    fn remove_generation(&mut self, generation: u8) -> Result<(), KernelError> {
        remove_where(&mut self.rules, "RULES", |key, _| key.generation == generation)?;
        remove_where(&mut self.profiles, "PROFILES", |key, _| (key >> 32) as u8 == generation)
    }

    /// Makes `trees` (path hash -> tree id) the protected trees under /proc.
    pub fn set_proc_trees(&mut self, trees: &StdHashMap<u64, u32>) -> Result<(), KernelError> {
        replace_entries(&mut self.hash_map("PROC_TREES")?, "PROC_TREES", trees, |_, _| false)
    }

    /// An object map this struct does not hold open, as a typed hash map.
    fn hash_map<K: Pod, V: Pod>(&mut self, name: &'static str) -> Result<HashMap<&mut MapData, K, V>, KernelError> {
        HashMap::try_from(self.ebpf.map_mut(name).ok_or(KernelError::MissingMap(name))?).map_err(map_err(name))
    }

    /// Adds protected inodes, leaving the others as they are.
    pub fn add_protected(&mut self, entries: &StdHashMap<FileKey, ProtectedEntry>) -> Result<(), KernelError> {
        for (key, entry) in entries {
            self.protected.insert(key, entry, 0).map_err(map_err("PROTECTED"))?;
        }
        Ok(())
    }

    /// Makes `entries` the protected inodes. Entries of trees still in
    /// `trees` stay even when the walk missed them: the kernel adds files
    /// created since, and removing them would unprotect them.
    pub fn set_protected(
        &mut self,
        entries: &StdHashMap<FileKey, ProtectedEntry>,
        trees: &std::collections::HashSet<u32>,
    ) -> Result<(), KernelError> {
        replace_entries(&mut self.protected, "PROTECTED", entries, |_, entry| trees.contains(&entry.tree))
    }

    /// The content digest's key in the kernel ([0, 0] before one is set).
    pub fn digest_key(&self) -> Result<[u64; 2], KernelError> {
        let map = self.ebpf.map("DIGEST_KEY").ok_or(KernelError::MissingMap("DIGEST_KEY"))?;
        let keys: Array<&MapData, [u64; 2]> = Array::try_from(map).map_err(map_err("DIGEST_KEY"))?;
        keys.get(&0, 0).map_err(map_err("DIGEST_KEY"))
    }

    /// Sets the content digest's key (pinned: it outlives daemon restarts).
    pub fn set_digest_key(&mut self, key: [u64; 2]) -> Result<(), KernelError> {
        let map = self.ebpf.map_mut("DIGEST_KEY").ok_or(KernelError::MissingMap("DIGEST_KEY"))?;
        let mut keys: Array<&mut MapData, [u64; 2]> = Array::try_from(map).map_err(map_err("DIGEST_KEY"))?;
        keys.set(0, key, 0).map_err(map_err("DIGEST_KEY"))
    }

    /// Tells the kernel which process is the daemon (subjects may not signal or trace it).
    pub fn set_daemon_tgid(&mut self, tgid: u32) -> Result<(), KernelError> {
        self.write_settings(|settings| settings.daemon_tgid = tgid)
    }

    fn write_settings(&mut self, change: impl FnOnce(&mut Settings)) -> Result<(), KernelError> {
        let mut settings = self.settings.get(&SETTINGS_INDEX, 0).map_err(map_err("SETTINGS"))?;
        change(&mut settings);
        self.settings.set(SETTINGS_INDEX, settings, 0).map_err(map_err("SETTINGS"))
    }

    /// Events the kernel could not put on the full ring, since the maps were
    /// created (the counter is pinned, so it spans daemon restarts).
    pub fn lost_events(&self) -> Result<u64, KernelError> {
        let map = self.ebpf.map("LOST_EVENTS").ok_or(KernelError::MissingMap("LOST_EVENTS"))?;
        let counters: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(map_err("LOST_EVENTS"))?;
        let per_cpu = counters.get(&0, 0).map_err(map_err("LOST_EVENTS"))?;
        Ok(per_cpu.iter().sum())
    }

    pub fn install_warrant(&mut self, key: &TargetKey, entry: &WarrantEntry) -> Result<(), KernelError> {
        self.warrants.insert(key, entry, 0).map_err(map_err("WARRANTS"))
    }

    pub fn remove_warrant(&mut self, key: &TargetKey) -> Result<(), KernelError> {
        remove_key(&mut self.warrants, "WARRANTS", key)
    }

    pub fn warrant(&self, key: &TargetKey) -> Option<WarrantEntry> {
        self.warrants.get(key, 0).ok()
    }

    /// Makes `entries` the exec-time matches and tells the kernel which
    /// kinds to look up. Cgroup entries the kernel added for cgroups made
    /// under a matched one stay while that profile still matches cgroups.
    pub fn set_matches(
        &mut self,
        entries: &StdHashMap<MatchKey, u32>,
        cgroup_paths: &StdHashMap<u64, u32>,
        kinds: u32,
    ) -> Result<(), KernelError> {
        replace_entries(&mut self.hash_map("CGROUP_PATHS")?, "CGROUP_PATHS", cgroup_paths, |_, _| false)?;
        let cgroup_profiles: std::collections::HashSet<u32> =
            entries.iter().filter(|(k, _)| k.kind == match_kind::CGROUP).map(|(_, p)| *p).collect();
        replace_entries(&mut self.hash_map("MATCHES")?, "MATCHES", entries, |key, profile| {
            key.kind == match_kind::CGROUP && cgroup_profiles.contains(profile)
        })?;
        self.write_settings(|settings| settings.match_kinds = kinds)
    }
}

/// Loads (verifies) every program, the LSM ones only `with_lsm`; returns
/// the optional hooks this kernel lacks, whose programs are left unloaded.
fn load_programs(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kernel_btf: &KernelBtf,
    with_lsm: bool,
) -> Result<Vec<MissingHook>, KernelError> {
    for &(name, function) in TRACING_PROGRAMS {
        let loaded = match ebpf.program_mut(name).ok_or_else(|| program_err(name, "missing from the object".into()))? {
            Program::FEntry(program) => program.load(function, btf),
            Program::FExit(program) => program.load(function, btf),
            Program::BtfTracePoint(program) => program.load(function, btf),
            _ => return Err(program_err(name, "is not an fentry, fexit or BTF tracepoint program".into())),
        };
        loaded.map_err(|e| program_err(name, error_chain(&e)))?;
    }
    let mut missing_hooks = Vec::new();
    for lsm_program in LSM_PROGRAMS.iter().filter(|_| with_lsm) {
        let name = lsm_program.name;
        if !hook_present(lsm_program, kernel_btf, &mut missing_hooks)? {
            continue;
        }
        let program: &mut Lsm = typed_program(ebpf, name)?;
        program.load(lsm_program.hook, btf).map_err(|e| program_err(name, error_chain(&e)))?;
        log_verified(name, program.info().ok().and_then(|info| info.verified_instruction_count()));
    }
    let mark_threads: &mut Iter = typed_program(ebpf, "mark_threads")?;
    mark_threads.load("task", btf).map_err(|e| program_err("mark_threads", error_chain(&e)))?;
    Ok(missing_hooks)
}

/// The verifier's budget is 1M processed instructions a program: the log
/// (`warrant daemon --verbose`) shows how much of it `program` used here.
fn log_verified(program: &str, count: Option<u32>) {
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
fn hook_present(
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

/// Makes `map` hold `entries`, plus the entries it has that `keep` keeps:
/// new entries go in first, then the rest leave, so no key that stays is
/// ever missing in between.
fn replace_entries<T: BorrowMut<MapData>, K: Pod + Eq + Hash, V: Pod>(
    map: &mut HashMap<T, K, V>,
    name: &'static str,
    entries: &StdHashMap<K, V>,
    keep: impl Fn(&K, &V) -> bool,
) -> Result<(), KernelError> {
    for (key, value) in entries {
        map.insert(key, value, 0).map_err(map_err(name))?;
    }
    remove_where(map, name, |key, value| !entries.contains_key(key) && !keep(key, value))
}

/// Removes every entry of `map` that `doomed` picks.
fn remove_where<T: BorrowMut<MapData>, K: Pod, V: Pod>(
    map: &mut HashMap<T, K, V>,
    name: &'static str,
    doomed: impl Fn(&K, &V) -> bool,
) -> Result<(), KernelError> {
    let keys: Vec<K> =
        map.iter().filter_map(Result::ok).filter(|(key, value)| doomed(key, value)).map(|(key, _)| key).collect();
    for key in keys {
        remove_key(map, name, &key)?;
    }
    Ok(())
}

/// Removes `key` from `map`; a key already gone is no error.
fn remove_key<T: BorrowMut<MapData>, K: Pod, V: Pod>(
    map: &mut HashMap<T, K, V>,
    name: &'static str,
    key: &K,
) -> Result<(), KernelError> {
    match map.remove(key) {
        Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(map_err(name)(e)),
    }
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

/// Removes every pin: programs detach, maps go when their last user does.
pub fn remove_pins() -> std::io::Result<bool> {
    match std::fs::remove_dir_all(PIN_ROOT) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
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

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, KernelError> {
    ebpf.take_map(name).ok_or(KernelError::MissingMap(name))
}

/// An error with its sources, on one line (the verifier log is in there).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
