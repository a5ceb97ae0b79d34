//! Protected files: the config trees the policy names, and Warrant's own.
//!
//! Protection follows the inode, not the path: the daemon puts every inode
//! of a protected tree in PROTECTED, and `d_instantiate` adds each new
//! inode that appears under a protected directory, whoever creates it. So
//! hard links, symlinks, bind mounts, /proc/PID/root and /proc/self/fd paths
//! all lead to the same check. Writes are decided at open, and again at
//! each write through a file the subject did not open for writing itself
//! (an fd passed over SCM_RIGHTS), at a shared writable mmap (`mappings`)
//! and at truncate (`attributes`, with chmod, chown and xattrs); io_uring
//! goes through the same hooks.
//!
//! Files under /proc have no stable inodes; there protection goes by path
//! (see `proc_target`).
//!
//! Subjects never open block devices for writing (`self.blockdev`): raw
//! disk writes would go around every check here. Nor do they write the
//! sysfs attributes that remove, unbind, reset or fail a device or a file
//! system (`self.device`): the audit log's disk would go with it.
//!
//! Cost: a non-subject pays one map lookup per hook (the subject marker, or
//! the parent directory in `d_instantiate`, and two array reads there for
//! a directory with no entry; a directory with an entry is looked up once
//! more by `name_tree`), two when a file's last name goes (MARKS and
//! PROTECTED, each deleted only if found); freeing a file costs one array read while
//! no subject holds a protected file open for writing. A subject pays one
//! PROTECTED lookup, one MARKS lookup and two array reads per open and
//! write on an unprotected file, except where its pass covers the file
//! (`passes`: a task storage lookup and two array reads instead). While
//! PROTECTED's misses are unsettled (a full map), both walk a file's
//! directories where it has no entry (`overflow`). No
//! program runs on `inode_permission`, which every path walk passes once
//! per component: Warrant's own socket is refused in `ipc` instead.

use aya_ebpf::{
    helpers::{bpf_get_current_task, generated::bpf_probe_read_kernel_str},
    macros::lsm,
    programs::LsmContext,
};
use warrant_common::{FileKey, NAME_LEN, PROTECTED_ANCESTOR, ProtectedEntry, SELF_TREE, Subject, action, proc_path};

use crate::{
    atomics,
    maps::{PROC_TREES, PROTECTED, WRITABLE_COUNT, WRITABLE_FILES, offset},
    marks, names, overflow, passes,
    policy::{btf_load, decide_action, read_kernel, read_kernel_or_zero},
    selfprotect, subjects, sysfs,
    uapi::{INPUT_MAJOR, S_IFBLK, S_IFCHR, S_IFMT, SCSI_GENERIC_MAJOR, UINPUT_DEVICE, major},
};

const FMODE_WRITE: u32 = 2;
/// `FMODE_CREATED` (1 << 20; the kernel tier's warranted create shows it
/// on every kernel of the matrix).
const FMODE_CREATED: u32 = 0x10_0000;
const MAY_WRITE: i32 = 2;
const MAY_APPEND: i32 = 8;

/// The PROTECTED key of `inode`.
#[inline(always)]
pub fn inode_key(inode: *const u8) -> Option<FileKey> {
    if inode.is_null() {
        return None;
    }
    let sb = read_kernel::<u64>(inode, offset!(inode_i_sb))?;
    let ino = read_kernel::<u64>(inode, offset!(inode_i_ino))?;
    let dev = read_kernel::<u32>(sb as *const u8, offset!(super_block_s_dev))?;
    Some(FileKey { dev: dev as u64, ino })
}

/// [`inode_key`] of an inode the verifier knows by its BTF type (a hook's
/// argument, or a field [`btf_load`] read from one): loads, not helper
/// calls, on the paths every process takes (a create, an unlink). A load
/// that faults reads 0: such a key finds no entry.
#[inline(always)]
pub fn inode_key_btf(inode: *const u8) -> FileKey {
    let sb = btf_load::<u64>(inode, offset!(inode_i_sb)) as *const u8;
    let dev = btf_load::<u32>(sb, offset!(super_block_s_dev)) as u64;
    FileKey { dev, ino: btf_load::<u64>(inode, offset!(inode_i_ino)) }
}

/// Writes the key of the inode of the executable the current process runs
/// to `key`: zero where unreadable (a kernel thread has no `mm`). Written
/// field by field into the event, read with no branch: a key returned by
/// value and kept across the event loop pushed the deepest program's
/// frames past the verifier's 512 bytes on 6.1 (`inode_rename`).
#[inline(always)]
pub fn write_current_exe(key: *mut FileKey) {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let mm = read_kernel_or_zero::<u64>(task, offset!(task_struct_mm)) as *const u8;
    let exe = read_kernel_or_zero::<u64>(mm, offset!(mm_struct_exe_file)) as *const u8;
    let inode = read_kernel_or_zero::<u64>(exe, offset!(file_f_inode)) as *const u8;
    let sb = read_kernel_or_zero::<u64>(inode, offset!(inode_i_sb)) as *const u8;
    unsafe {
        (*key).dev = read_kernel_or_zero::<u32>(sb, offset!(super_block_s_dev)) as u64;
        (*key).ino = read_kernel_or_zero::<u64>(inode, offset!(inode_i_ino));
    }
}

/// `inode`'s key and tree, if it is protected.
#[inline(always)]
pub(crate) fn protected(inode: *const u8) -> Option<(FileKey, u32)> {
    protected_key(inode_key(inode)?)
}

/// The key's tree, if it is protected.
#[inline(always)]
pub(crate) fn protected_key(key: FileKey) -> Option<(FileKey, u32)> {
    let entry = unsafe { PROTECTED.get(&key) }?;
    (entry.flags & PROTECTED_ANCESTOR == 0).then_some((key, entry.tree))
}

/// `inode`'s PROTECTED entry, ancestors of trees included.
#[inline(always)]
pub(crate) fn protected_entry(inode: *const u8) -> Option<(FileKey, ProtectedEntry)> {
    let key = inode_key(inode)?;
    let entry = unsafe { PROTECTED.get(&key) }?;
    Some((key, *entry))
}

/// `PROC_SUPER_MAGIC`.
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;
/// `BINFMTFS_MAGIC`.
const BINFMTFS_MAGIC: u64 = 0x4249_4e4d;
/// Deepest /proc path looked at (`sys/net/ipv4/conf/all/forwarding` is 6).
const PROC_DEPTH: usize = 8;

/// For a file on procfs (the caller checks): the protected /proc tree it
/// is under and the hash of its own path (see `warrant_common::proc_path`). Walks up to the
/// procfs root, then hashes each prefix top-down and looks it up; the
/// longest protected prefix wins. Only subjects' writes get here. The
/// task's scratch probe key is the working memory (the stack arrays would
/// be memset calls).
#[inline(always)]
fn proc_target(dentry: *const u8) -> Option<(FileKey, u32)> {
    // No working memory: deny (tree 0 matches no rule) rather than let it
    // pass. (A key of one repeated byte here would be a memset call.)
    let Some(scratch) = subjects::scratch() else {
        return Some((FileKey { dev: 0, ino: 1 }, 0));
    };
    let components = (&raw mut scratch.probe.object).cast::<u64>();
    let name = (&raw mut scratch.probe.table).cast::<u8>();
    const _: () = assert!(PROC_DEPTH * 8 <= NAME_LEN && proc_path::NAME_LEN <= NAME_LEN);
    let parent_at = offset!(dentry_d_parent);
    let mut depth = 0;
    let mut at = dentry;
    let mut reached_root = false;
    for i in 0..PROC_DEPTH {
        let parent = read_kernel::<u64>(at, parent_at)? as *const u8;
        if parent == at {
            reached_root = true;
            break;
        }
        let name_ptr = read_kernel::<u64>(at, offset!(dentry_d_name_name))?;
        unsafe {
            bpf_probe_read_kernel_str(name.cast(), proc_path::NAME_LEN as u32, name_ptr as *const _);
            let bytes = &*name.cast::<[u8; proc_path::NAME_LEN]>();
            components.add(i).write_volatile(proc_path::component(bytes));
        }
        depth += 1;
        at = parent;
    }
    if !reached_root && read_kernel::<u64>(at, parent_at)? as *const u8 != at {
        return None;
    }
    let mut hash = proc_path::ROOT;
    // A number, not an `Option`: LLVM carried a `None`'s unset value in a
    // register the verifier refuses to read.
    let mut tree = names::NO_TREE;
    for i in 0..PROC_DEPTH {
        if i >= depth {
            break;
        }
        let component = unsafe { components.add((depth - 1 - i) % PROC_DEPTH).read_volatile() };
        hash = proc_path::join(hash, component);
        if let Some(found) = unsafe { PROC_TREES.get(&hash) } {
            tree = *found as u64;
        }
    }
    (tree != names::NO_TREE).then_some((FileKey { dev: 0, ino: hash }, tree as u32))
}

/// Whether the file of `facts` is one of the daemon's own /proc files
/// (/proc/PID/... or /proc/PID/task/TID/...): written, `oom_score_adj`
/// makes it the OOM killer's first pick, `comm` renames it, `loginuid`
/// changes whom its audit records name. Unreadable counts as not: most
/// files of /proc are no process's.
#[inline(always)]
fn of_the_daemons_process(facts: &FileFacts) -> bool {
    if facts.dentry_magic != PROC_SUPER_MAGIC {
        return false;
    }
    let inode = facts.inode;
    // container_of(inode, struct proc_inode, vfs_inode)->pid.
    let proc_inode = (inode as u64).wrapping_sub(u64::from(offset!(proc_inode_vfs_inode))) as *const u8;
    let pid = read_kernel::<u64>(proc_inode, offset!(proc_inode_pid)).unwrap_or(0) as *const u8;
    if pid.is_null() {
        return false;
    }
    // The task of the pid (its PIDTYPE_PID list holds one).
    let link = read_kernel::<u64>(pid, offset!(pid_tasks)).unwrap_or(0);
    if link == 0 {
        return false;
    }
    let task = link.wrapping_sub(u64::from(offset!(task_struct_pid_links))) as *const u8;
    selfprotect::is_daemon(task)
}

/// What the checks of a subject's write read of its file, each read once
/// (a write passes them all: a raw device, a cgroup file, a network
/// device's attribute, a protected file, the mark). Unreadable: a null
/// pointer, 0 or `None`, each check failing closed its own way.
pub(crate) struct FileFacts {
    pub inode: *const u8,
    pub dentry: *const u8,
    /// The magic of the superblock of `dentry` (the path's file system).
    pub dentry_magic: u64,
    /// The magic of the superblock of `inode` (the same one but on
    /// overlayfs, whose files' inodes are the layer's).
    pub inode_magic: Option<u64>,
    pub mode: Option<u16>,
    pub key: Option<FileKey>,
}

/// `file`'s facts; its mode only if `with_mode` (a read's check needs none).
/// `file` must be a hook's argument: a subject passes here on every open,
/// write and shared mapping, and BTF loads do here what helper calls did
/// at ~100 instructions each.
#[inline(always)]
pub(crate) fn file_facts(file: *const u8, with_mode: bool) -> FileFacts {
    let dentry = btf_load::<u64>(file, offset!(file_f_path_dentry)) as *const u8;
    let dentry_sb = btf_load::<u64>(dentry, offset!(dentry_d_sb)) as *const u8;
    let dentry_magic = btf_load::<u64>(dentry_sb, offset!(super_block_s_magic));
    let inode = btf_load::<u64>(file, offset!(file_f_inode)) as *const u8;
    let inode_sb = btf_load::<u64>(inode, offset!(inode_i_sb)) as *const u8;
    let inode_magic = match inode_sb {
        sb if sb.is_null() => None,
        sb if sb == dentry_sb => Some(dentry_magic),
        sb => Some(btf_load::<u64>(sb, offset!(super_block_s_magic))),
    };
    let key = match inode.is_null() || inode_sb.is_null() {
        true => None,
        false => Some(FileKey {
            dev: btf_load::<u32>(inode_sb, offset!(super_block_s_dev)) as u64,
            ino: btf_load::<u64>(inode, offset!(inode_i_ino)),
        }),
    };
    FileFacts {
        inode,
        dentry,
        dentry_magic,
        inode_magic,
        mode: (with_mode && !inode.is_null()).then(|| btf_load::<u16>(inode, offset!(inode_i_mode))),
        key,
    }
}

/// A file's protection: by inode, by path under /proc, or for any
/// binfmt_misc file, that of /proc/sys/fs/binfmt_misc (a guarded surface),
/// wherever and whenever root mounted it: one mounted after the last
/// apply has no inodes in PROTECTED.
#[inline(always)]
fn protected_file(facts: &FileFacts) -> Option<(FileKey, u32)> {
    if facts.dentry.is_null() {
        return None;
    }
    match facts.dentry_magic {
        // First: an entry left by an earlier mount's inode is not its tree.
        BINFMTFS_MAGIC => {
            let tree = unsafe { PROC_TREES.get(&proc_path::BINFMT_MISC) }?;
            Some((FileKey { dev: 0, ino: proc_path::BINFMT_MISC }, *tree))
        }
        PROC_SUPER_MAGIC => facts.key.and_then(protected_key).or_else(|| proc_target(facts.dentry)),
        _ => facts.key.and_then(protected_key).or_else(|| without_entry(facts)),
    }
}

/// A file with no entry: see [`tree_without_entry`].
#[inline(always)]
fn without_entry(facts: &FileFacts) -> Option<(FileKey, u32)> {
    let key = facts.key?;
    let links = btf_load::<u32>(facts.inode, offset!(inode_i_nlink));
    match tree_without_entry(links, facts.dentry) {
        names::NO_TREE => None,
        tree => Some((key, tree as u32)),
    }
}

/// The tree of a file with no entry of its own and `links` names, at
/// `dentry`, or `NO_TREE`. With no name (an O_TMPFILE, or one whose last
/// name went), its directory's: it has no entry (see `d_instantiate`), and
/// what is written to it may be linked in later. While PROTECTED's misses
/// are unsettled, the one its names give it (see `overflow`).
// Its own function, returning a number: inlined, LLVM merged the callers'
// `Option`s into a read of a register one path never set. Its reads are
// helper copies: its callers' dentries are not all BTF-typed.
#[inline(never)]
pub(crate) fn tree_without_entry(links: u32, dentry: *const u8) -> u64 {
    if links != 0 {
        return overflow::tree_by_names(dentry);
    }
    let parent = read_kernel_or_zero::<u64>(dentry, offset!(dentry_d_parent)) as *const u8;
    if parent.is_null() || parent == dentry {
        return names::NO_TREE;
    }
    match protected(dentry_inode(parent)) {
        Some((_, tree)) => tree as u64,
        None => overflow::tree_by_names(parent),
    }
}

/// The protection of `dentry`'s file if it has a name: its entry's, or
/// while PROTECTED's misses are unsettled its names' (see `overflow`).
#[inline(always)]
pub(crate) fn protected_named_at(dentry: *const u8) -> Option<(FileKey, u32)> {
    let inode = dentry_inode(dentry);
    let key = inode_key(inode)?;
    protected_key(key).or_else(|| match overflow::tree_by_names(dentry) {
        names::NO_TREE => None,
        tree => Some((key, tree as u32)),
    })
}

/// The protection of `dentry`'s file: its entry's, or [`tree_without_entry`]'s.
#[inline(always)]
pub(crate) fn protected_at(dentry: *const u8) -> Option<(FileKey, u32)> {
    let inode = dentry_inode(dentry);
    let key = inode_key(inode)?;
    protected_key(key).or_else(|| {
        let links = read_kernel::<u32>(inode, offset!(inode_i_nlink)).unwrap_or(1);
        match tree_without_entry(links, dentry) {
            names::NO_TREE => None,
            tree => Some((key, tree as u32)),
        }
    })
}

#[inline(always)]
pub(crate) fn dentry_inode(dentry: *const u8) -> *const u8 {
    read_kernel::<u64>(dentry, offset!(dentry_d_inode)).unwrap_or(0) as *const u8
}

#[inline(always)]
pub fn file_inode(file: *const u8) -> *const u8 {
    read_kernel::<u64>(file, offset!(file_f_inode)).unwrap_or(0) as *const u8
}

/// Decides `action` on a protected inode; Warrant's own files are never changed.
#[inline(always)]
pub(crate) fn decide_file(subject: &Subject, action_id: u32, key: FileKey, tree: u32) -> i32 {
    if tree == SELF_TREE {
        return selfprotect::refuse(subject, action::SELF_FILES);
    }
    decide_action(subject, action_id, 0, tree as u64, [key.ino, key.dev])
}

/// Decides a subject's `action` on `dentry`'s file if it is protected.
#[inline(always)]
pub(crate) fn check_at(action_id: u32, dentry: *const u8) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    match protected_at(dentry) {
        Some((key, tree)) => decide_file(&subject, action_id, key, tree),
        None => 0,
    }
}

#[inline(always)]
pub(crate) fn is_writable_file(file: *const u8) -> bool {
    unsafe { WRITABLE_FILES.get(&(file as u64)) }.is_some()
}

/// A write through `file` by a subject: decided unless the subject was
/// already allowed to open this very file for writing. The verdict, and
/// whether it passed as a file with no protection (a pass may cover it:
/// see `passes`).
#[inline(always)]
pub(crate) fn check_write_through(subject: &Subject, file: *const u8, facts: &FileFacts) -> (i32, bool) {
    // An fd opened before the subject was one (or handed over) is refused
    // here what `file_open` refuses a subject.
    let verdict = refuse_device_or_cgroup(subject, file, facts);
    if verdict != 0 {
        return (verdict, false);
    }
    if sysfs::is_network_device_attribute(facts) {
        return (crate::policy::decide_action(subject, action::NET_LINK_SET, 0, 0, [0, 0]), false);
    }
    let Some((key, tree)) = protected_file(facts) else {
        return (0, true);
    };
    if is_writable_file(file) {
        return (0, false);
    }
    (decide_file(subject, action::FILE_WRITE, key, tree), false)
}

/// A subject writes no block device nor SCSI generic device (raw writes
/// go around every file check: sg's write() takes a SCSI WRITE from any
/// writable open, CAP_SYS_RAWIO or not) and no cgroup control file (they
/// move, freeze or kill processes, the daemon among them), whenever the fd
/// was opened; except its own cgroup's `cgroup.procs` before it execs,
/// when its unconfined parent moved it there (see
/// `selfprotect::may_write_own_procs`); nor a sysfs attribute that stops
/// a device (`self.device`).
#[inline(always)]
fn refuse_device_or_cgroup(subject: &Subject, file: *const u8, facts: &FileFacts) -> i32 {
    // One refusal for them all: each `refuse` is a copy of the record's code.
    match device_or_cgroup_refusal(subject, file, facts) {
        0 => 0,
        action_id => selfprotect::refuse(subject, action_id),
    }
}

/// The self-protection action [`refuse_device_or_cgroup`] refuses, or 0.
#[inline(always)]
fn device_or_cgroup_refusal(subject: &Subject, file: *const u8, facts: &FileFacts) -> u32 {
    let inode = facts.inode;
    let file_type = facts.mode.unwrap_or(S_IFBLK) & S_IFMT;
    let device = if file_type == S_IFCHR { read_kernel::<u32>(inode, offset!(inode_i_rdev)) } else { Some(0) };
    let scsi_generic = device.is_none_or(|rdev| major(rdev) == SCSI_GENERIC_MAJOR);
    if file_type == S_IFBLK || scsi_generic {
        return action::SELF_BLOCKDEV;
    }
    // Keys typed into a real keyboard (an event device) or a made one
    // (uinput) reach whatever has the focus: a root console, or the
    // kernel's sysrq keys.
    if device.is_some_and(|rdev| major(rdev) == INPUT_MAJOR || rdev == UINPUT_DEVICE) {
        return action::SELF_TTY;
    }
    if selfprotect::is_cgroup_control_at(facts.inode_magic, facts.dentry)
        && !selfprotect::may_write_own_procs(subject, file, inode)
    {
        return action::SELF_CGROUP;
    }
    if sysfs::stops_a_device(facts) {
        return action::SELF_DEVICE;
    }
    0
}

#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(1);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let file: *const u8 = ctx.arg(0);
    let mode = btf_load::<u32>(file, offset!(file_f_mode));
    let facts = file_facts(file, mode & FMODE_WRITE != 0);
    if mode & FMODE_WRITE == 0 {
        // Warrant's own files are not a subject's to read either: the state
        // directory holds the audit checkpoint key and the content digest key.
        return match protected_file(&facts) {
            Some((_, SELF_TREE)) => selfprotect::refuse(&subject, action::SELF_FILES),
            _ => 0,
        };
    }
    // Read before the checks: a change to what they read meanwhile voids
    // the pass they leave. A file this open made has none, and is left to
    // its first write's: most temporary files get none.
    let created = mode & FMODE_CREATED != 0;
    let epoch = passes::epoch();
    if !created && passes::holds(&subject, &facts, epoch) {
        return 0;
    }
    let inode = facts.inode;
    let refused = refuse_device_or_cgroup(&subject, file, &facts);
    if refused != 0 {
        return refused;
    }
    if of_the_daemons_process(&facts) {
        return selfprotect::refuse(&subject, action::SELF_PTRACE);
    }
    if sysfs::is_network_device_attribute(&facts) {
        return crate::policy::decide_action(&subject, action::NET_LINK_SET, 0, 0, [0, 0]);
    }
    let Some((key, tree)) = protected_file(&facts) else {
        return marked_with_pass(&subject, &facts, if created { passes::NO_EPOCH } else { epoch });
    };
    // The open that made the file by a warrant: its writes go with the
    // create the warrant allowed. (An O_TMPFILE's open made no name, and
    // passed no create hook.)
    let made_here = mode & FMODE_CREATED != 0
        && read_kernel::<u32>(inode, offset!(inode_i_nlink)).unwrap_or(0) > 0
        && names::created_by_warrant(facts.dentry);
    let verdict = if made_here { 0 } else { decide_file(&subject, action::FILE_WRITE, key, tree) };
    // Remember the allowed open so its writes (and an O_TRUNC) are not charged again.
    if verdict == 0 {
        let marked = marks::note_write_of(&subject, &facts);
        if marked != 0 {
            return marked;
        }
        if WRITABLE_FILES.insert(&(file as u64), &0, 0).is_err() {
            return -1;
        }
        if let Some(count) = WRITABLE_COUNT.get_ptr_mut(0) {
            atomics::fetch_add(count, 1);
        }
    }
    verdict
}

#[lsm(hook = "file_permission")]
pub fn file_permission(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(2);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let mask: i32 = ctx.arg(1);
    if mask & (MAY_WRITE | MAY_APPEND) == 0 {
        return 0;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let file: *const u8 = ctx.arg(0);
    let facts = file_facts(file, true);
    let epoch = passes::epoch();
    if passes::holds(&subject, &facts, epoch) {
        return 0;
    }
    match check_write_through(&subject, file, &facts) {
        (0, true) => marked_with_pass(&subject, &facts, epoch),
        (0, false) => marks::note_write_of(&subject, &facts),
        (verdict, _) => verdict,
    }
}

/// The end of a subject's write checks of a file with no protection: its
/// mark, then a pass for the next write, made at `epoch` (read before the
/// checks), or none at `passes::NO_EPOCH`.
#[inline(always)]
fn marked_with_pass(subject: &Subject, facts: &FileFacts, epoch: u64) -> i32 {
    let marked = marks::note_write_of(subject, facts);
    if marked == 0 && epoch != passes::NO_EPOCH {
        passes::remember(subject, facts, epoch);
    }
    marked
}

#[lsm(hook = "file_free_security")]
pub fn file_free_security(ctx: LsmContext) -> i32 {
    let Some(count) = WRITABLE_COUNT.get_ptr_mut(0) else {
        return 0;
    };
    if atomics::load(count) == 0 {
        return 0;
    }
    let file: *const u8 = ctx.arg(0);
    if WRITABLE_FILES.remove(&(file as u64)).is_ok() {
        atomics::fetch_add(count, u64::MAX);
    }
    0
}

/// New inodes under a protected directory, or at a missing protected path,
/// join its tree, whoever makes them.
#[lsm(hook = "d_instantiate")]
pub fn d_instantiate(ctx: LsmContext) -> i32 {
    let dentry: *const u8 = ctx.arg(0);
    let inode: *const u8 = ctx.arg(1);
    if inode.is_null() {
        return 0;
    }
    // Every process passes here for each pipe, socket and file it makes:
    // the parent's inode is read by BTF loads, not helper calls. A pipe's
    // or socket's dentry is its own parent, its inode not yet set: no
    // directory, no tree.
    let parent: *const u8 = btf_load::<u64>(dentry, offset!(dentry_d_parent)) as *const u8;
    if parent.is_null() {
        return 0;
    }
    let dir: *const u8 = btf_load::<u64>(parent, offset!(dentry_d_inode)) as *const u8;
    // Most new files are in no tree: one lookup by BTF loads says so,
    // unless PROTECTED's misses are unsettled (then their names decide).
    if dir.is_null() || (unsafe { PROTECTED.get(&inode_key_btf(dir)) }.is_none() && !overflow::unsettled()) {
        return 0;
    }
    // Under a tree, or at a missing protected path's name (root made it);
    // in a directory with no entry while PROTECTED's misses are unsettled,
    // where its names put it (an apply's walk may have passed it already).
    let tree = match names::name_tree(dir, dentry, &mut FileKey::default()) {
        names::NO_TREE => return 0,
        tree => tree as u32,
    };
    // A subject's O_TMPFILE (its count already dropped to zero: no create
    // hook, no name) takes no entry: nothing would ever remove it, tmpfs
    // numbers inodes afresh, and a subject's refused opens in a tree filled
    // the map until new files went unprotected. Its open and writes are
    // decided as its directory's tree's (`tree_without_entry`); linked in, it
    // comes back here with a name. Root's keeps its entry: a subject handed
    // it must not write it, chmod it or link it out of the tree.
    if btf_load::<u32>(inode, offset!(inode_i_nlink)) == 0 && subjects::current().is_some() {
        return 0;
    }
    // A lookup instantiates existing files too (after the dentry cache let
    // them go): Warrant's own keep their entries, and so does one of this
    // tree (a directory's flags: the names it guards, the roots it holds).
    // Any other is replaced (an entry an unmounted file system, or a
    // removed directory, left under this key is not this file's tree;
    // directories above trees are never inside one).
    if let Some(key) = inode_key(inode) {
        if let Some(entry) = unsafe { PROTECTED.get(&key) }
            && (entry.tree == SELF_TREE || (entry.tree == tree && entry.flags & PROTECTED_ANCESTOR == 0))
        {
            return 0;
        }
        if passes::voiding(|| PROTECTED.insert(&key, &ProtectedEntry { tree, flags: 0 }, 0)).is_err() {
            overflow::note_missed();
        }
    }
    0
}
