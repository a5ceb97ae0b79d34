//! Maps shared by the hook families. Layouts are in `warrant_common`.

use aya_ebpf::{
    macros::{btf_map, map},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use warrant_common::{
    FileKey, KernelOffsets, LOCAL_ADDRESSES_CAPACITY, LocalAddress, MARKS_CAPACITY, Mark, MatchKey, Pickup,
    ProfileEntry, ProtectedEntry, RateWindow, RuleEntry, Settings, SocketKey, SocketVerdict, Subject, TargetKey,
    WarrantEntry, batch_slots,
    decision::{BatchScratch, SingleScratch},
};

/// `BPF_MAP_TYPE_TASK_STORAGE`.
const MAP_TYPE_TASK_STORAGE: usize = 29;
/// `BPF_F_NO_PREALLOC`, required by local storage maps.
const MAP_FLAG_NO_PREALLOC: usize = 1;

/// A task-local storage map in the libbpf BTF map layout: each array length
/// encodes a map attribute for the loader. aya-ebpf has no task storage type.
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; MAP_TYPE_TASK_STORAGE],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; MAP_FLAG_NO_PREALLOC],
}

// SAFETY: the fields are never dereferenced; the loader reads their BTF.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    pub fn as_ptr(&self) -> *mut core::ffi::c_void {
        core::ptr::from_ref(self).cast_mut().cast()
    }
}

/// Subject marker per task (thread). Userspace sets it through a pidfd.
#[btf_map]
pub static SUBJECTS: TaskStorage<Subject> = TaskStorage::new();

/// `warrant_common::PIN_LAYOUT_VERSION` of the daemon that made the pinned
/// maps; only the daemon reads it.
#[map]
pub static PIN_LAYOUT: Array<u32> = Array::with_max_entries(1, 0);

/// Processes being picked up, by tgid (see `warrant_common::Pickup`): set
/// by the cgroup tracepoint and by the daemon, removed by the daemon once
/// it has looked at what the process holds. Not pinned.
#[map]
pub static PICKUPS: HashMap<u32, Pickup> = HashMap::with_max_entries(1024, 0);

/// The latest deadline in PICKUPS (one slot): `task_alloc` looks a pickup
/// up only before it, so a host where nothing is being picked up pays one
/// array read per fork.
#[map]
pub static PICKUPS_UNTIL: Array<u64> = Array::with_max_entries(1, 0);

/// Processes made during a pickup by the process picked up, or by one of
/// those: the daemon looks at each of them too (a child keeps the mappings
/// and fds its parent held), then removes the entry.
#[btf_map]
pub static PICKUP_CHILDREN: TaskStorage<Pickup> = TaskStorage::new();

/// Processes whose threads the `mark_threads` iterator marks: tgid -> profile
/// id, written by the daemon around each run.
#[map]
pub static MARK_THREADS: HashMap<u32, u32> = HashMap::with_max_entries(64, 0);

/// How processes become subjects at exec (executable, cgroup, uid) -> profile id.
#[map]
pub static MATCHES: HashMap<MatchKey, u32> = HashMap::with_max_entries(4096, 0);

/// Matched cgroup paths (`cgroup_path_hash`) -> profile id: a matched
/// cgroup made again gets its new id into MATCHES.
#[map]
pub static CGROUP_PATHS: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);

/// `profile_key(generation, profile id)` -> mode.
#[map]
pub static PROFILES: HashMap<u64, ProfileEntry> = HashMap::with_max_entries(512, 0);

/// Compiled policy rules of both generations (room for two policies of up
/// to 8192 rules); see `warrant_common::decision::widen_key`.
#[map]
pub static RULES: HashMap<TargetKey, RuleEntry> = HashMap::with_max_entries(16384, 0);

/// Rate windows of `allow` rules with a rate, by rule index (RULES values
/// carry the index). Reset by the daemon when a policy is applied.
#[map]
pub static RATES: Array<RateWindow> = Array::with_max_entries(16384, 0);

/// Installed warrants, by exact target.
#[map]
pub static WARRANTS: HashMap<TargetKey, WarrantEntry> = HashMap::with_max_entries(4096, 0);

/// Protected inodes (config trees from the policy, Warrant's own files).
/// New inodes under a protected directory join its tree as they appear.
#[map]
pub static PROTECTED: HashMap<FileKey, ProtectedEntry> = HashMap::with_max_entries(65536, 0);

/// Files subjects wrote (see `warrant_common::Mark` and marks.rs). Pinned,
/// and kept on disk by the daemon across reboots. Not preallocated: most
/// hosts use a small part of it.
#[map]
pub static MARKS: HashMap<FileKey, Mark> = HashMap::with_max_entries(MARKS_CAPACITY, MAP_FLAG_NO_PREALLOC as u32);

/// How many marks the kernel has added or removed (index 0), so the daemon
/// saves MARKS to disk only when it changed. Not pinned.
#[map]
pub static MARK_CHANGES: Array<u64> = Array::with_max_entries(1, 0);

/// Protected trees under /proc, by path hash (see `warrant_common::proc_path`) -> tree id.
#[map]
pub static PROC_TREES: HashMap<u64, u32> = HashMap::with_max_entries(256, 0);

/// PROTECTED's inserts that failed (index `PROTECTED_MISSED`: a full map;
/// the hooks that add new files to trees cannot refuse), and how many of
/// them the daemon has settled (`PROTECTED_SETTLED`: a walk of the trees
/// since entered every file). While they differ, a file with no entry is
/// decided by its names (see `overflow`). Not pinned: each start counts
/// one miss until its restore's walk settles it.
#[map]
pub static PROTECTED_MISSES: Array<u64> = Array::with_max_entries(2, 0);

/// Open files a subject was allowed to write (by rule or warrant), so that
/// its writes through them are not decided, and charged, once more each.
/// Keyed by `struct file` address; entries leave when the file is freed.
#[map]
pub static WRITABLE_FILES: HashMap<u64, u64> = HashMap::with_max_entries(8192, 0);

/// The host's own addresses, beyond loopback's (see `local`): the daemon
/// fills it from the local routing table before the programs attach and
/// keeps it as the table changes. Not pinned: a new daemon fills its own.
#[map]
pub static LOCAL_ADDRESSES: LpmTrie<LocalAddress, u32> = LpmTrie::with_max_entries(LOCAL_ADDRESSES_CAPACITY, 0);

/// Connected unix sockets whose peer was decided for a subject (see
/// `ipc::connected_send`), so that their sends are not decided, and
/// charged, once more each. Least recently used entries go first: an
/// evicted socket's next send is decided again. Not pinned.
#[map]
pub static CONNECTED_SOCKETS: LruHashMap<SocketKey, SocketVerdict> = LruHashMap::with_max_entries(8192, 0);

/// The profile of the subject that made each unix stream connection,
/// keyed by the socket cookie of the listening side's end (the socket
/// `accept` returns: `SO_COOKIE`). The daemon names its query socket's
/// callers by it: a pid names whoever holds it when the daemon looks, and a
/// caller that exits frees it for another. Least recently used go first.
/// Not pinned.
#[map]
pub static UNIX_CALLERS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(4096, 0);

/// Counts of changes to PROTECTED and MARKS that could void a pass
/// (`warrant_common::FILE_STATE_BY_KERNEL` and `FILE_STATE_BY_DAEMON`).
/// Pinned: a restart's old programs, still attached while the new daemon
/// writes PROTECTED, see its changes.
#[map]
pub static FILE_STATE: Array<u64> = Array::with_max_entries(2, 0);

/// Each subject task's last pass (see `passes`); not pinned, a cache.
#[btf_map]
pub static PASSES: TaskStorage<crate::passes::Pass> = TaskStorage::new();

/// How many entries WRITABLE_FILES may hold (at least as many as it does):
/// `file_free_security` runs for every file any process frees, and skips
/// the hash delete while this is 0, as it is on a host whose subjects hold
/// no protected file open for writing. Not pinned, like WRITABLE_FILES.
#[map]
pub static WRITABLE_COUNT: Array<u64> = Array::with_max_entries(1, 0);

#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Decision events for the daemon's audit log. 2 MiB: a batch of
/// `MAX_MESSAGES` rules puts ~775 KiB on it at once (an event of 240 bytes
/// and a content record of 536 a rule), faster than any reader takes them
/// off, so two such batches at once still fit. No larger: the daemon maps
/// the ring (its data twice over, as the kernel lays it out), so its pages
/// count twice in the daemon's RSS, from the start.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(2 << 20, 0);

/// Events that did not fit in EVENTS (index 0), summed over CPUs by the daemon.
#[map]
pub static LOST_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Working memory for one single-action decision, per task. Task-local
/// rather than per-CPU: BPF programs run with migration, not preemption,
/// disabled, so on a `preempt=full` kernel another task's hook on the same
/// CPU could otherwise overwrite a decision in progress.
#[btf_map]
pub static SCRATCH: TaskStorage<SingleScratch> = TaskStorage::new();

/// How many subjects' netlink sendmsgs may be decided at once (the
/// subjects of one profile half of them, see `warrant_common::batch_slots`);
/// one more waits for nothing and is refused (and counted as a lost event).
pub const BATCH_SLOTS: u32 = 16;

/// Working memory for a netlink batch (168 KiB each, 2.6 MiB for the 16:
/// `MAX_MESSAGES` decisions and a spare), claimed by a thread
/// for one sendmsg (see `BatchScratch::owner`). Preallocated: task storage
/// of that size is a GFP_ATOMIC allocation of order 4 at a subject's first
/// netlink write, which fails once memory is fragmented.
#[map]
pub static BATCHES: Array<BatchScratch> = Array::with_max_entries(BATCH_SLOTS, 0);

/// BATCHES' owner words.
struct BatchOwners;

impl batch_slots::Owners for BatchOwners {
    const SLOTS: u32 = BATCH_SLOTS;

    #[inline(always)]
    fn compare_exchange(&self, index: u32, current: u64, new: u64) -> bool {
        match BATCHES.get_ptr_mut(index) {
            // SAFETY: a map value, valid for the program's run.
            Some(slot) => crate::atomics::compare_exchange(unsafe { &raw mut (*slot).owner }, current, new),
            None => false,
        }
    }

    #[inline(always)]
    fn load(&self, index: u32) -> u64 {
        match BATCHES.get_ptr_mut(index) {
            // SAFETY: as above.
            Some(slot) => crate::atomics::load(unsafe { &raw mut (*slot).owner }),
            None => 0,
        }
    }

    #[inline(always)]
    fn repeat<F: FnMut(u32) -> bool>(&self, times: u32, step: F) {
        crate::policy::repeat(times, step)
    }
}

/// Claims a batch scratch for the current thread of a subject of
/// `profile_id` (see `batch_slots::claim`); None if none is free to it.
#[inline(always)]
pub fn claim_batch(profile_id: u32) -> Option<&'static mut BatchScratch> {
    let index = warrant_claim_batch(profile_id);
    // SAFETY: a map value, valid for the program's run.
    BATCHES.get_ptr_mut(index).map(|slot| unsafe { &mut *slot })
}

/// The index of the batch scratch [`claim_batch`] claims, or BATCH_SLOTS
/// for none. A global function: the verifier checks it once, on its own.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn warrant_claim_batch(profile_id: u32) -> u32 {
    let thread = aya_ebpf::helpers::bpf_get_current_pid_tgid() as u32;
    batch_slots::claim(&BatchOwners, profile_id, thread).unwrap_or(BATCH_SLOTS)
}

/// Gives back a scratch from [`claim_batch`].
#[inline(always)]
pub fn release_batch(scratch: &mut BatchScratch) {
    // SAFETY: a plain field.
    unsafe { (&raw mut scratch.owner).write_volatile(0) }
}

/// The key of the nft rule content digest (SipHash-2-4), drawn by the
/// daemon at its first start in a boot and pinned, so it lasts until the
/// reboot. Subjects cannot call bpf() to read it.
#[map]
pub static DIGEST_KEY: Array<[u64; 2]> = Array::with_max_entries(1, 0);

/// Per task: the nft rule content digest in progress (see `netfilter::DigestWalk`).
#[btf_map]
pub static DIGEST_WALKS: TaskStorage<crate::netfilter::DigestWalk> = TaskStorage::new();

/// Kernel structure offsets, resolved from BTF by the daemon at load time.
#[unsafe(no_mangle)]
pub static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    sk_buff_data: 0,
    sk_buff_len: 0,
    sock_sk_protocol: 0,
    task_struct_tgid: 0,
    inode_i_sb: 0,
    super_block_s_magic: 0,
    ns_common_inum: 0,
    path_dentry: 0,
    dentry_d_parent: 0,
    dentry_d_name_name: 0,
    dentry_d_sb: 0,
    dentry_d_inode: 0,
    inode_i_ino: 0,
    super_block_s_dev: 0,
    file_f_inode: 0,
    file_f_mode: 0,
    iattr_ia_valid: 0,
    iattr_ia_file: 0,
    linux_binprm_file: 0,
    linux_binprm_cred: 0,
    cred_uid: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    kernfs_node_parent: 0,
    file_f_path_dentry: 0,
    inode_i_mode: 0,
    vm_area_struct_vm_file: 0,
    vm_area_struct_vm_flags: 0,
    socket_sk: 0,
    unix_sock_addr: 0,
    unix_address_len: 0,
    unix_address_name: 0,
    inode_setattr_dentry_arg: 1,
    harmless_read_ids: 0,
    harmless_load_ids: 0,
    task_struct_pid: 0,
    unix_sock_path_dentry: 0,
    inode_i_generation: 0,
    inode_i_nlink: 0,
    msghdr_msg_name: 0,
    msghdr_msg_namelen: 0,
    sock_net: 0,
    net_ns_inum: 0,
    net_dev_index_head: 0,
    net_device_index_hlist: 0,
    net_device_ifindex: 0,
    net_device_name: 0,
    task_struct_files: 0,
    files_struct_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    socket_type: 0,
    sock_family: 0,
    sock_sk_socket: 0,
    unix_sock_peer: 0,
    socket_alloc_vfs_inode: 0,
    fdtable_close_on_exec: 0,
    files_struct_count: 0,
    task_struct_real_parent: 0,
    task_struct_self_exec_id: 0,
    task_struct_parent_exec_id: 0,
    task_struct_start_time: 0,
    cgroup_root: 0,
    cgroup_root_hierarchy_id: 0,
    task_struct_group_leader: 0,
    task_struct_start_boottime: 0,
    inode_i_writecount: 0,
    task_struct_ptrace: 0,
    task_struct_parent: 0,
    task_struct_ptraced: 0,
    sock_daddr: 0,
    sock_dport: 0,
    sock_v6_daddr: 0,
    sock_bound_dev_if: 0,
    inet_sock_uc_index: 0,
    msghdr_msg_control: 0,
    msghdr_msg_controllen: 0,
    inode_i_rdev: 0,
    io_uring_cmd_file: 0,
    proc_inode_vfs_inode: 0,
    proc_inode_pid: 0,
    pid_tasks: 0,
    task_struct_pid_links: 0,
    sock_sk_dst_cache: 0,
    dst_entry_dev: 0,
    task_struct_mm: 0,
    mm_struct_exe_file: 0,
    pt_regs_orig_ax: 0,
    task_struct_bpf_storage: 0,
    socket_file: 0,
    super_block_s_root: 0,
};

/// One field of [`KERNEL_OFFSETS`], read on its own and volatile: the
/// loader rewrites the global, so a plain read would fold to the zero it is
/// compiled with; and a volatile read of the whole struct loads every field
/// (85 loads at every use, each on the verifier's paths too).
macro_rules! offset {
    // A use inside an `unsafe` block would otherwise warn of this one.
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&raw const $crate::maps::KERNEL_OFFSETS.$field) };
        value
    }};
}
pub(crate) use offset;

pub fn count_lost_event() {
    if let Some(counter) = LOST_EVENTS.get_ptr_mut(0) {
        unsafe { *counter += 1 };
    }
}
