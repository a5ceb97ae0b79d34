//! Subjects in the kernel's task-storage map: marking processes and their
//! threads, and looking markers up by pidfd (aya has no type for
//! task-storage maps, so the element commands go to bpf(2) directly).

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;

use aya::maps::Map;
use warrant_common::{Pickup, Subject};

use super::{Kernel, KernelError, PIN_ROOT, map_err, remove_key};

impl Kernel {
    /// Marks process `pid` (its main thread, which must be its only one) as a
    /// subject of `profile_id`, with `flags` (`warrant_common::subject_flag`).
    /// Refused if it already is a subject: nobody leaves or changes a profile.
    pub fn mark_subject(&self, pid: u32, profile_id: u32, flags: u32) -> Result<(), KernelError> {
        let subject_err = |reason: String| KernelError::Subject { pid, reason };
        let pidfd = pidfd_open(pid).map_err(|e| subject_err(format!("pidfd_open: {e}")))?;
        let fd = self.subjects_fd()?;
        let key = pidfd.as_raw_fd();
        let mut existing = Subject::default();
        if bpf_map_elem(fd, BPF_MAP_LOOKUP_ELEM, &key, &mut existing, 0).is_ok() {
            return Err(subject_err(format!(
                "is already a subject of profile #{}; a subject cannot change profile",
                existing.profile_id
            )));
        }
        let mut marker = Subject { profile_id, flags, ..Subject::default() };
        bpf_map_elem(fd, BPF_MAP_UPDATE_ELEM, &key, &mut marker, BPF_NOEXIST)
            .map_err(|e| subject_err(format!("cannot mark as subject: {e}")))
    }

    /// Marks every thread of running process `pid` as a subject of
    /// `profile_id`: the leader through its pidfd (threads it makes from
    /// then on inherit the mark), then the others from the kernel with the
    /// `mark_threads` task iterator, once more while a pass marks any (an
    /// unmarked thread may have made more). Returns how many threads were
    /// marked; a process that is gone is not an error.
    pub fn mark_process(&mut self, pid: u32, profile_id: u32) -> Result<usize, KernelError> {
        let mut marked = match self.mark_subject(pid, profile_id, 0) {
            Ok(()) => 1,
            Err(_) if self.subject_profile(pid).is_some() => 0,
            Err(_) if !Path::new(&format!("/proc/{pid}")).exists() => return Ok(0),
            Err(e) => return Err(e),
        };
        let subject_err = |reason: String| KernelError::Subject { pid, reason };
        self.hash_map::<u32, u32>("MARK_THREADS")?.insert(pid, profile_id, 0).map_err(map_err("MARK_THREADS"))?;
        let mut outcome = Ok(());
        for _ in 0..8 {
            match self.run_mark_threads() {
                Ok(0) => break,
                Ok(threads) => marked += threads,
                Err(reason) => {
                    outcome = Err(subject_err(format!("cannot mark its threads: {reason}")));
                    break;
                }
            }
        }
        remove_key(&mut self.hash_map::<u32, u32>("MARK_THREADS")?, "MARK_THREADS", &pid)?;
        outcome.map(|()| marked)
    }

    /// One run of the `mark_threads` iterator: how many threads it marked.
    fn run_mark_threads(&mut self) -> Result<usize, String> {
        // The program writes the tid of each thread it marks.
        Ok(self.run_iterator("mark_threads")?.len() / 4)
    }

    /// One walk of every task by iterator program `name`: what it wrote.
    fn run_iterator(&mut self, name: &'static str) -> Result<Vec<u8>, String> {
        let (_, program) = self
            .programs
            .iterators
            .iter()
            .find(|(loaded, _)| *loaded == name)
            .ok_or_else(|| format!("the {name} program is not loaded"))?;
        super::program_loader::run_task_iterator(program).map_err(|e| format!("running the {name} iterator: {e}"))
    }

    /// Every traced task now, with its tracer: one walk of every task (the
    /// `traced_tasks` iterator), for a whole pickup's processes at once.
    pub fn traced_tasks(&mut self) -> Result<TracedTasks, String> {
        let rows = self.run_iterator("traced_tasks")?;
        Ok(TracedTasks(
            rows.chunks_exact(12)
                .map(|row| {
                    let word = |at: usize| u32::from_ne_bytes([row[at], row[at + 1], row[at + 2], row[at + 3]]);
                    (word(0), word(4), word(8))
                })
                .collect(),
        ))
    }

    /// Notes running process `pid`, being picked up as a subject of
    /// `profile_id`: the processes it makes until [`Kernel::end_pickup`]
    /// (ten seconds at most) are noted for [`Kernel::pickup_children`]
    /// (agent-ebpf's held.rs, which does the same for cgroup moves).
    pub fn note_pickup(&mut self, pid: u32, profile_id: u32) -> Result<(), KernelError> {
        let deadline_ns = crate::clock::boot_now_ns() + 10_000_000_000;
        // The daemon ends this pickup itself, when it has looked: no start time to check.
        let pickup = Pickup { deadline_ns, profile_id, ..Pickup::default() };
        self.hash_map::<u32, Pickup>("PICKUPS")?.insert(pid, pickup, 0).map_err(map_err("PICKUPS"))?;
        let map = self.maps.map_mut("PICKUPS_UNTIL").ok_or(KernelError::MissingMap("PICKUPS_UNTIL"))?;
        let mut until: aya::maps::Array<&mut aya::maps::MapData, u64> =
            aya::maps::Array::try_from(map).map_err(map_err("PICKUPS_UNTIL"))?;
        until.set(0, deadline_ns, 0).map_err(map_err("PICKUPS_UNTIL"))
    }

    /// Ends the noting of process `pid`'s new processes.
    pub fn end_pickup(&mut self, pid: u32) -> Result<(), KernelError> {
        remove_key(&mut self.hash_map::<u32, Pickup>("PICKUPS")?, "PICKUPS", &pid)
    }

    /// Running processes made during a pickup and not yet looked at, with
    /// their pickup. A walk of /proc with one map lookup per process.
    pub fn pickup_children(&self) -> Result<Vec<(u32, Pickup)>, KernelError> {
        let fd = self.task_storage_fd("PICKUP_CHILDREN")?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
            let Ok(pidfd) = pidfd_open(pid) else { continue };
            let mut pickup = Pickup::default();
            if bpf_map_elem(fd, BPF_MAP_LOOKUP_ELEM, &pidfd.as_raw_fd(), &mut pickup, 0).is_ok() {
                found.push((pid, pickup));
            }
        }
        Ok(found)
    }

    /// Forgets that process `pid` was made during a pickup (it has been looked at).
    pub fn forget_pickup_child(&self, pid: u32) -> Result<(), KernelError> {
        let fd = self.task_storage_fd("PICKUP_CHILDREN")?;
        let pidfd = match pidfd_open(pid) {
            Ok(pidfd) => pidfd,
            // Gone: nothing left to forget.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(e) => return Err(KernelError::Subject { pid, reason: format!("pidfd_open: {e}") }),
        };
        let mut unused = 0u64;
        match bpf_map_elem(fd, BPF_MAP_DELETE_ELEM, &pidfd.as_raw_fd(), &mut unused, 0) {
            Err(source) if source.raw_os_error() != Some(libc::ENOENT) => {
                Err(KernelError::MapCall { map: "PICKUP_CHILDREN", source })
            }
            _ => Ok(()),
        }
    }

    /// The profile id of `pid` if it is a subject.
    pub fn subject_profile(&self, pid: u32) -> Option<u32> {
        subject_profile_in(self.subjects_fd().ok()?, pid)
    }

    /// The profile of the subject that made the unix connection whose
    /// accepted end has socket cookie `cookie` (the kernel's UNIX_CALLERS).
    pub fn unix_caller(&self, cookie: u64) -> Option<u32> {
        let map = aya::maps::HashMap::<_, u64, u32>::try_from(self.maps.map("UNIX_CALLERS")?).ok()?;
        map.get(&cookie, 0).ok()
    }

    fn subjects_fd(&self) -> Result<i32, KernelError> {
        self.task_storage_fd("SUBJECTS")
    }

    /// The fd of task-storage map `name` (aya has no type for them).
    fn task_storage_fd(&self, name: &'static str) -> Result<i32, KernelError> {
        match self.maps.map(name) {
            Some(Map::Unsupported(data)) => Ok(data.fd().as_fd().as_raw_fd()),
            Some(_) => Err(KernelError::MapType(name)),
            None => Err(KernelError::MissingMap(name)),
        }
    }
}

/// The profile id of `pid` per the pinned subjects map, without loading
/// anything (for CLI commands that subjects may not run). `Ok(None)` when
/// Warrant is not installed or `pid` is no subject. An error when the map
/// cannot be read: a subject's bpf() is refused, so callers must treat that
/// as "may be a subject" and refuse.
pub fn pinned_subject_profile(pid: u32) -> std::io::Result<Option<u32>> {
    let pin = Path::new(PIN_ROOT).join("maps/SUBJECTS");
    if !pin.exists() {
        return Ok(None);
    }
    let map = aya::maps::MapData::from_pin(&pin).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(subject_profile_in(map.fd().as_fd().as_raw_fd(), pid))
}

/// The profile id of `pid` in a subjects map of any layout (one another
/// Warrant pinned): read as raw bytes, the profile id being the first word
/// of every marker layout.
pub fn raw_subject_profile(map_fd: i32, pid: u32) -> Option<u32> {
    let pidfd = pidfd_open(pid).ok()?;
    // Bigger than any marker: the kernel copies the map's value size.
    let mut value = [0u8; 512];
    bpf_map_elem(map_fd, BPF_MAP_LOOKUP_ELEM, &pidfd.as_raw_fd(), &mut value, 0).ok()?;
    Some(u32::from_ne_bytes([value[0], value[1], value[2], value[3]]))
}

/// Looks `pid` up in the subjects map behind `map_fd` (keyed by pidfd).
fn subject_profile_in(map_fd: i32, pid: u32) -> Option<u32> {
    let pidfd = pidfd_open(pid).ok()?;
    let mut marker = Subject::default();
    bpf_map_elem(map_fd, BPF_MAP_LOOKUP_ELEM, &pidfd.as_raw_fd(), &mut marker, 0).ok()?;
    Some(marker.profile_id)
}

/// A pidfd for process `pid`.
pub fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_NOEXIST: u64 = 1;

/// `union bpf_attr` for map element commands.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Task-storage maps are keyed by pidfd from userspace; aya has no type for
/// them, so these two commands go to bpf(2) directly.
fn bpf_map_elem<K, V>(map_fd: i32, command: libc::c_long, key: &K, value: &mut V, flags: u64) -> std::io::Result<()> {
    let attr = MapElemAttr {
        map_fd: map_fd as u32,
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_mut(value) as u64,
        flags,
    };
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, command, &attr as *const MapElemAttr, std::mem::size_of::<MapElemAttr>())
    };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Traced tasks as (tracer's tgid, tgid, tid), from one walk.
pub struct TracedTasks(Vec<(u32, u32, u32)>);

impl TracedTasks {
    /// The tasks the threads of process `tracer` trace, as (tgid, tid).
    pub fn of(&self, tracer: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.iter().filter(move |row| row.0 == tracer).map(|&(_, tgid, tid)| (tgid, tid))
    }
}
