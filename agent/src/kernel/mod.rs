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
    Pod,
    maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf},
};
use thiserror::Error;
use warrant_common::{
    FileKey, MatchKey, ProfileEntry, ProtectedEntry, RateWindow, RuleEntry, SETTINGS_INDEX, Settings, TargetKey,
    WarrantEntry, match_kind, profile_key,
};

use crate::btf::{self, KernelBtf};
use crate::hooks::{LSM_PROGRAMS, LsmProgram, MissingHook, TASK_ITERATORS, TRACING_PROGRAMS, Traces};
use crate::pins;

mod fmod_ret;
pub mod links;
mod load;
use load::{hook_present, log_verified, take};
mod local_addresses;
mod marks;
mod object_maps;
use object_maps::ObjectMaps;
mod policy_maps;
mod program_loader;
mod protected;
use program_loader::{LoadAs, Planned, program_err};
mod subjects;
pub use local_addresses::LocalAddressesChange;
pub use policy_maps::{PolicyLeftovers, PolicyNotPut, PolicyStepFailed, StagedPolicy};
pub use program_loader::{clear as clear_pin, is_directory};
pub use subjects::{TracedTasks, pidfd_open, pinned_subject_profile, raw_subject_profile};

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
    "FILE_STATE",
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
    #[error(
        "PROTECTED (the kernel's map of protected files) is full, and this policy needs room for {what}: remove \
         files from the protected trees, then apply it again (`warrant status` says while the map is full)"
    )]
    ProtectedFull { what: &'static str },
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: aya::maps::MapError },
    /// A map operation aya has no call for (task storage).
    #[error("map {map}: {source}")]
    MapCall { map: &'static str, source: std::io::Error },
    #[error("map {0} is not of the type Warrant made it")]
    MapType(&'static str),
    #[error("process {pid}: {reason}")]
    Subject { pid: u32, reason: String },
    #[error("pinning under {path}: {reason}")]
    Pin { path: String, reason: String },
    #[error("cannot read the host's routes to itself (its addresses, for ipc.loopback): {0}")]
    LocalAddresses(std::io::Error),
    #[error("cannot name the daemon's process to the kernel: {0}")]
    OwnStart(String),
    #[error("{error}; undoing what was written failed too: {undo}")]
    Undo { error: Box<KernelError>, undo: Box<KernelError> },
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { map, source }
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
    maps: ObjectMaps,
    rules: HashMap<MapData, TargetKey, RuleEntry>,
    profiles: HashMap<MapData, u64, ProfileEntry>,
    warrants: HashMap<MapData, TargetKey, WarrantEntry>,
    settings: Array<MapData, Settings>,
    protected: HashMap<MapData, FileKey, ProtectedEntry>,
    rates: Array<MapData, RateWindow>,
    missing_hooks: Vec<MissingHook>,
    replaced_pins: Vec<String>,
    /// What a replacement carried from the replaced maps (see `load`).
    carried_over: Vec<String>,
    mode: Mode,
    programs: Programs,
}

/// The loaded programs (name, descriptor), held while the daemon runs.
#[derive(Default)]
struct Programs {
    /// Attached at load, in this order.
    attached: Vec<(&'static str, OwnedFd)>,
    /// Task iterators, run when asked.
    iterators: Vec<(&'static str, OwnedFd)>,
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
    /// Why the pinned maps were replaced at load (empty if they were reused).
    pub fn replaced_pins(&self) -> &[String] {
        &self.replaced_pins
    }

    /// What a replacement of the pinned maps carried into the new ones, map
    /// by map: how many entries, or why not.
    pub fn carried_over(&self) -> &[String] {
        &self.carried_over
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
        RingBuf::try_from(take(&mut self.maps, "EVENTS")?).map_err(map_err("EVENTS"))
    }

    /// An object map this struct does not hold open, as a typed hash map.
    fn hash_map<K: Pod, V: Pod>(&mut self, name: &'static str) -> Result<HashMap<&mut MapData, K, V>, KernelError> {
        HashMap::try_from(self.maps.map_mut(name).ok_or(KernelError::MissingMap(name))?).map_err(map_err(name))
    }

    /// The content digest's key in the kernel ([0, 0] before one is set).
    pub fn digest_key(&self) -> Result<[u64; 2], KernelError> {
        let map = self.maps.map("DIGEST_KEY").ok_or(KernelError::MissingMap("DIGEST_KEY"))?;
        let keys: Array<&MapData, [u64; 2]> = Array::try_from(map).map_err(map_err("DIGEST_KEY"))?;
        keys.get(&0, 0).map_err(map_err("DIGEST_KEY"))
    }

    /// Sets the content digest's key (pinned: it outlives daemon restarts).
    pub fn set_digest_key(&mut self, key: [u64; 2]) -> Result<(), KernelError> {
        let map = self.maps.map_mut("DIGEST_KEY").ok_or(KernelError::MissingMap("DIGEST_KEY"))?;
        let mut keys: Array<&mut MapData, [u64; 2]> = Array::try_from(map).map_err(map_err("DIGEST_KEY"))?;
        keys.set(0, key, 0).map_err(map_err("DIGEST_KEY"))
    }

    /// Tells the kernel that this process is the daemon (subjects may not
    /// signal or trace it; it is not confined at exec): its tgid and when
    /// it started, so that no later process with its pid passes for it.
    pub fn set_daemon(&mut self) -> Result<(), KernelError> {
        let started = own_start_ticks()?;
        self.write_settings(|settings| {
            settings.daemon_tgid = std::process::id();
            settings.daemon_started = started;
        })
    }

    /// Tells the kernel that the daemon (this process) has stopped, unless
    /// another has taken its place meanwhile.
    pub fn clear_daemon(&mut self) -> Result<(), KernelError> {
        self.write_settings(|settings| {
            if settings.daemon_tgid == std::process::id() {
                settings.daemon_tgid = 0;
                settings.daemon_started = 0;
            }
        })
    }

    fn write_settings(&mut self, change: impl FnOnce(&mut Settings)) -> Result<(), KernelError> {
        let mut settings = self.settings.get(&SETTINGS_INDEX, 0).map_err(map_err("SETTINGS"))?;
        change(&mut settings);
        self.settings.set(SETTINGS_INDEX, settings, 0).map_err(map_err("SETTINGS"))
    }

    /// Events the kernel could not put on the full ring, since the maps were
    /// created (the counter is pinned, so it spans daemon restarts).
    pub fn lost_events(&self) -> Result<u64, KernelError> {
        let map = self.maps.map("LOST_EVENTS").ok_or(KernelError::MissingMap("LOST_EVENTS"))?;
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
        // The delete syscall says ENOENT, not KeyNotFound.
        Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(map_err(name)(e)),
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

/// An error with its sources, on one line (the verifier log is in there).
/// A source the error before it already says (an error that prints its
/// source and also returns it) is not said twice.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let said = inner.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = inner.source();
    }
    text
}

/// This process's start in the clock ticks /proc/self/stat counts since
/// boot (field 22), modulo 2^32, as `Settings::daemon_started` holds it.
fn own_start_ticks() -> Result<u32, KernelError> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| KernelError::OwnStart(format!("cannot read /proc/self/stat: {e}")))?;
    crate::held::start_ticks(&stat)
        .map(|ticks| ticks as u32)
        .ok_or_else(|| KernelError::OwnStart(format!("no start time in /proc/self/stat: {stat:?}")))
}

#[cfg(test)]
mod start_tests {
    #[test]
    fn this_process_start_time_is_read() {
        assert!(super::own_start_ticks().is_ok());
    }
}
