//! Names in protected trees: a new name (create, mkdir, mknod, symlink,
//! link), a name removed (unlink, rmdir) and a rename, decided on the trees
//! they touch (a new name on itself, so that a warrant can name it), and a
//! protected tree root's name, there or not; protection taken by a file
//! moved into a tree, whoever moves it; and protection dropped with an
//! inode's last name, so that an inode number the file system hands out
//! again is not protected by mistake.

use core::mem::MaybeUninit;

use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel_str,
    macros::{fexit, lsm},
    programs::{FExitContext, LsmContext},
};
use warrant_common::{
    FILE_NAME_AT, FILE_NAME_LEN, FileKey, PROTECTED_ANCESTOR, PROTECTED_HOLDS_ROOT, PROTECTED_NAMES, ProtectedEntry,
    S_IFREG, SELF_TREE, Subject, action, proc_path, verdict,
};

use crate::{
    files::{
        decide_file, dentry_inode, inode_key, inode_key_btf, protected, protected_at, protected_entry, protected_key,
        protected_named_at, tree_without_entry,
    },
    maps::{PROTECTED, offset},
    marks, overflow,
    policy::{btf_load, decide_with, read_kernel},
    selfprotect, subjects,
};

const S_IFMT: u64 = 0o170000;
const S_IFDIR: u64 = 0o040000;
const S_IFLNK: u64 = 0o120000;

/// `inode`'s type, its `S_IFMT` bits.
#[inline(always)]
fn kind_of(inode: *const u8) -> u64 {
    read_kernel::<u16>(inode, offset!(inode_i_mode)).unwrap_or(0) as u64 & S_IFMT
}

/// No tree: what [`new_name_tree`] returns for a name nothing protects.
pub(crate) const NO_TREE: u64 = u64::MAX;

/// The tree a new name `dentry` in `dir` falls in: that of the protected
/// path the name is, if it is one (there or not: see `protect::inodes`),
/// else `dir`'s; [`NO_TREE`] for any other name. `dir`'s key goes to
/// `dir_key`. Costs one lookup, and a hash of the name only in a directory
/// flagged [`PROTECTED_NAMES`].
// Its own function: called from inode_rename, whose verifier budget is tight.
#[inline(never)]
pub(crate) fn new_name_tree(dir: *const u8, dentry: *const u8, dir_key: &mut FileKey) -> u64 {
    let Some((key, entry)) = protected_entry(dir) else {
        return NO_TREE;
    };
    *dir_key = key;
    // Above trees, a name joins none of them unless it is a root's.
    let dir_tree = if entry.flags & PROTECTED_ANCESTOR == 0 { entry.tree as u64 } else { NO_TREE };
    if entry.flags & PROTECTED_NAMES == 0 {
        return dir_tree;
    }
    let Some(name_ptr) = read_kernel::<u64>(dentry, offset!(dentry_d_name_name)) else {
        return dir_tree;
    };
    // Not zeroed (that would be a memset call): the helper writes it.
    let mut name = MaybeUninit::<[u8; proc_path::NAME_LEN]>::uninit();
    let read = unsafe {
        bpf_probe_read_kernel_str(name.as_mut_ptr().cast(), proc_path::NAME_LEN as u32, name_ptr as *const _)
    };
    if read <= 0 {
        return dir_tree;
    }
    let name_key = FileKey::of_name(key, proc_path::component(unsafe { name.assume_init_ref() }));
    match unsafe { PROTECTED.get(&name_key) } {
        Some(found) => found.tree as u64,
        None => dir_tree,
    }
}

/// [`new_name_tree`], or for a directory with no entry (one made in a tree
/// while PROTECTED was full, perhaps) the tree the names above it give
/// (see `overflow`).
#[inline(never)]
pub(crate) fn name_tree(dir: *const u8, dentry: *const u8, dir_key: &mut FileKey) -> u64 {
    match new_name_tree(dir, dentry, dir_key) {
        NO_TREE if *dir_key == FileKey::default() => crate::overflow::tree_by_names(dentry),
        found => found,
    }
}

/// A new name a subject makes: `dentry`'s in `dir`, for a file of type
/// `kind` (its `S_IFMT` bits), and the tree its names give it while
/// PROTECTED's misses are unsettled (see `overflow`), for a directory with
/// no entry.
pub(crate) struct NewName {
    dir: *const u8,
    dentry: *const u8,
    kind: u64,
    by_names: u64,
}

impl NewName {
    // The names are looked up here, in the hook, not in `decide_new_name`:
    // from there the walk's frames on top of its own passed the 512 bytes
    // of stack a program's calls may take together (6.1's inode_rename).
    #[inline(always)]
    fn new(dir: *const u8, dentry: *const u8, kind: u64) -> Self {
        Self { dir, dentry, kind, by_names: crate::overflow::tree_by_names(dentry) }
    }
}

/// Decides a subject's new name if [`new_name_tree`] finds it protected:
/// on a key for the directory, the name itself and the file's type (see
/// `FILE_NAME_AT`), so that a warrant can name the one regular file it lets
/// the agent make. `tree` holds, on entry, a tree already decided for this
/// call (its name is not decided again), and on return the name's tree.
#[inline(never)]
fn decide_new_name(subject: &Subject, action_id: u32, name: &NewName, tree: &mut u64) -> i32 {
    let mut dir_key = FileKey::default();
    let mut found = new_name_tree(name.dir, name.dentry, &mut dir_key);
    if found == NO_TREE && dir_key == FileKey::default() {
        found = name.by_names;
    }
    let decided = *tree;
    *tree = found;
    if found == NO_TREE || found == decided {
        return 0;
    }
    if found == SELF_TREE as u64 {
        return selfprotect::refuse(subject, action::SELF_FILES);
    }
    let name_ptr = read_kernel::<u64>(name.dentry, offset!(dentry_d_name_name)).unwrap_or(0);
    // A qstr's length sits just before its name pointer, after its hash.
    let len = read_kernel::<u32>(name.dentry, offset!(dentry_d_name_name) - 4).unwrap_or(u32::MAX);
    let new = FileKey::of_new_name(dir_key, name.kind);
    decide_with(subject, action_id, |key| unsafe {
        (&raw mut key.table).cast::<u64>().write_volatile(found);
        let object = (&raw mut key.object).cast::<u64>();
        object.write_volatile(new.ino);
        object.add(1).write_volatile(new.dev);
        // A longer name is left out: the key names the directory only.
        if (len as usize) < FILE_NAME_LEN {
            let at = (&raw mut key.object).cast::<u8>().add(FILE_NAME_AT);
            bpf_probe_read_kernel_str(at.cast(), FILE_NAME_LEN as u32, name_ptr as *const _);
        }
    })
}

/// Whether the current task's last decision let it make `dentry`'s name
/// by a warrant: the create of the open being decided now, since each new
/// name a subject makes in a protected tree is decided (and overwrites the
/// task's decision) and the open's create is the last before its
/// `file_open`. A warrant for a new file covers its create and the writes
/// of the open that made it; a rule's create does not cover writes.
#[inline(never)]
pub(crate) fn created_by_warrant(dentry: *const u8) -> bool {
    let Some(scratch) = subjects::scratch() else {
        return false;
    };
    let message = &scratch.messages[0];
    if message.verdict != verdict::ALLOWED_BY_WARRANT || message.key.action != action::FILE_CREATE {
        return false;
    }
    let Some(parent) = read_kernel::<u64>(dentry, offset!(dentry_d_parent)) else {
        return false;
    };
    let Some(dir) = inode_key(dentry_inode(parent as *const u8)) else {
        return false;
    };
    let (ino, dev) = message.key.inode();
    FileKey { ino, dev } == FileKey::of_new_name(dir, S_IFREG)
}

/// Whether `inode` is open for writing or mapped shared and writable
/// (`i_writecount`): moved or linked into a tree, what an RI approved or
/// the tree holds could still be written through that fd or mapping.
#[inline(always)]
fn held_for_writing(inode: *const u8) -> bool {
    read_kernel::<i32>(inode, offset!(inode_i_writecount)).unwrap_or(1) > 0
}

/// A new name `dentry` in `dir` for a file of type `kind` (or, for a link,
/// a new name of `linked`): decided on `linked` if it is protected, and on
/// the name if it falls in another tree. A file held open for writing is
/// not linked into a tree.
#[inline(always)]
fn new_name(action_id: u32, dir: *const u8, dentry: *const u8, linked_at: *const u8, kind: u64) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    // bpffs holds Warrant's pins: a directory or symlink a subject put at a
    // pin's path (or its staging name) would stand in the daemon's way at
    // its next start, or be taken for a pin.
    if selfprotect::on_bpffs(dir) {
        return selfprotect::refuse(&subject, action::SELF_PINS);
    }
    // Most new names are in a directory with no entry: one lookup by BTF
    // loads says so, unless PROTECTED's misses are unsettled (then names
    // decide). A link's file is decided first, wherever the name goes.
    if linked_at.is_null() && unsafe { PROTECTED.get(&inode_key_btf(dir)) }.is_none() && !overflow::unsettled() {
        return 0;
    }
    // Before any decision, which would take a warrant's use.
    let linked = dentry_inode(linked_at);
    if !linked.is_null() && held_for_writing(linked) && lands_in_another_tree(linked, dir, dentry) {
        return selfprotect::refuse(&subject, action_id);
    }
    let mut tree = NO_TREE;
    // By its names too: a file root made in a tree while PROTECTED was full
    // has no entry, and linked out of the tree would be written there. (Not
    // a file with no name: a subject's O_TMPFILE linked in is its new name's.)
    if let Some((key, linked_tree)) = protected_named_at(linked_at) {
        let verdict = decide_file(&subject, action_id, key, linked_tree);
        if verdict != 0 {
            return verdict;
        }
        tree = linked_tree as u64;
    }
    decide_new_name(&subject, action_id, &NewName::new(dir, dentry, kind), &mut tree)
}

/// Whether file `inode`, given a name `dentry` in `dir`, lands in a
/// protected tree it is not in already (over a protected file, or at a new
/// name [`new_name_tree`] finds). Moves within one tree change nothing.
#[inline(always)]
fn lands_in_another_tree(inode: *const u8, dir: *const u8, dentry: *const u8) -> bool {
    let destination = match protected(dentry_inode(dentry)) {
        Some((_, tree)) => tree as u64,
        // A directory made in a tree while PROTECTED was full too.
        None => name_tree(dir, dentry, &mut FileKey::default()),
    };
    let source = protected(inode).map_or(NO_TREE, |(_, tree)| tree as u64);
    destination != NO_TREE && destination != source
}

/// The create family `(dir, dentry, ...)`: a new name of type `kind` in a
/// protected directory.
#[inline(always)]
fn creation(ctx: &LsmContext, kind: u64) -> i32 {
    new_name(action::FILE_CREATE, ctx.arg(0), ctx.arg(1), core::ptr::null(), kind)
}

#[lsm(hook = "inode_create")]
pub fn inode_create(ctx: LsmContext) -> i32 {
    creation(&ctx, S_IFREG)
}

#[lsm(hook = "inode_mkdir")]
pub fn inode_mkdir(ctx: LsmContext) -> i32 {
    creation(&ctx, S_IFDIR)
}

/// `inode_mknod(dir, dentry, mode, dev)`: a fifo, socket or device node.
#[lsm(hook = "inode_mknod")]
pub fn inode_mknod(ctx: LsmContext) -> i32 {
    let mode: u64 = ctx.arg(2);
    // Never a regular file's type: a warrant for a file does not make a node.
    let kind = if mode & S_IFMT == S_IFREG { 0 } else { mode & S_IFMT };
    creation(&ctx, kind)
}

#[lsm(hook = "inode_symlink")]
pub fn inode_symlink(ctx: LsmContext) -> i32 {
    creation(&ctx, S_IFLNK)
}

/// `inode_link(old_dentry, dir, new_dentry)`: a new name for a protected
/// file (anywhere), or any new name in a protected directory.
#[lsm(hook = "inode_link")]
pub fn inode_link(ctx: LsmContext) -> i32 {
    let linked_at: *const u8 = ctx.arg(0);
    new_name(action::FILE_LINK, ctx.arg(1), ctx.arg(2), linked_at, kind_of(dentry_inode(linked_at)))
}

/// Removing a name: bpffs pins are Warrant's own (as is every name there,
/// see [`new_name`]); a protected file, or one in a protected directory, is
/// `file.delete`.
#[inline(always)]
fn removal(subject: &Subject, dir: *const u8, dentry: *const u8) -> i32 {
    if selfprotect::on_bpffs(dir) {
        return selfprotect::refuse(subject, action::SELF_PINS);
    }
    // The file by its entry, or its names while PROTECTED's misses are
    // unsettled; then its directory. Both hook arguments are BTF-typed:
    // loads, not helper calls (a subject's every unlink passes here).
    let inode = btf_load::<u64>(dentry, offset!(dentry_d_inode)) as *const u8;
    if !inode.is_null() {
        let key = inode_key_btf(inode);
        if let Some((key, tree)) = protected_key(key) {
            return decide_file(subject, action::FILE_DELETE, key, tree);
        }
        match tree_without_entry(btf_load::<u32>(inode, offset!(inode_i_nlink)), dentry) {
            NO_TREE => {}
            tree => return decide_file(subject, action::FILE_DELETE, key, tree as u32),
        }
    }
    match protected_key(inode_key_btf(dir)) {
        Some((key, tree)) => decide_file(subject, action::FILE_DELETE, key, tree),
        None => 0,
    }
}

#[lsm(hook = "inode_unlink")]
pub fn inode_unlink(ctx: LsmContext) -> i32 {
    // Every process's unlinks pass here. Another process's last name takes
    // its entry and mark with it once the file system has dropped it
    // (`forget_nameless`), not here, where the unlink can still fail.
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let dentry: *const u8 = ctx.arg(1);
    let verdict = removal(&subject, ctx.arg(0), dentry);
    // A subject's drops clear nothing there (see `forget_nameless`): its
    // allowed unlink of a last name clears them now, before the file
    // system's own unlink (BYPASS).
    let inode: *const u8 = btf_load::<u64>(dentry, offset!(dentry_d_inode)) as *const u8;
    if verdict == 0 && !inode.is_null() && btf_load::<u32>(inode, offset!(inode_i_nlink)) <= 1 {
        forget_file(inode);
    }
    verdict
}

/// Removes the entry and the mark of `inode`, which loses its last name.
#[inline(always)]
fn forget_file(inode: *const u8) {
    let key = inode_key_btf(inode);
    marks::forget(&key, btf_load::<u32>(inode, offset!(inode_i_generation)));
    forget_protected(&key);
}

/// Removes `key`'s PROTECTED entry, if it has one: a lookup first, since
/// a delete locks its bucket and most files have none.
#[inline(always)]
fn forget_protected(key: &FileKey) {
    if unsafe { PROTECTED.get(key) }.is_some() {
        let _ = PROTECTED.remove(key);
    }
}

/// The last name of `inode` is going (the daemon's rename over it): so
/// does its protection. Kept, the entry would protect
/// whatever file the file system next gives that inode number: on ext4 the
/// daemon's own atomic rewrites of its state left entries that refused an
/// agent's `dpkg` as `self.files`.
#[inline(always)]
fn forget_last_name(inode: *const u8) {
    if let Some(key) = last_name_key(inode) {
        forget_protected(&key);
    }
}

/// A link count dropped to zero (`drop_nlink`, `clear_nlink`): a file
/// renamed over (`sed -i`, an editor's save, a package's conffile), which
/// `inode_rename` cannot tell from an exchange, or a last name removed.
/// The inode's entry goes: kept, it would stay for good, protect whatever
/// file next gets the number, and fill PROTECTED. The inode is still held
/// here, so on a file system whose live files have distinct numbers the
/// key is no other file's. Not a subject's drops: on one where two live
/// files can share a key (btrfs subvolumes share a device), a subject's
/// O_TMPFILEs (each dropped 1 to 0 at once) would sweep the numbers and
/// clear a protected file's entry; its stale entries stay, fail-closed.
/// The mark goes too, if it is this inode's generation's.
#[fexit(function = "drop_nlink")]
pub fn forget_dropped(ctx: FExitContext) -> u32 {
    forget_nameless(ctx.arg(0));
    0
}

#[fexit(function = "clear_nlink")]
pub fn forget_cleared(ctx: FExitContext) -> u32 {
    forget_nameless(ctx.arg(0));
    0
}

/// Drops `inode`'s entry and mark if it has no name left and no subject
/// dropped it.
#[inline(always)]
fn forget_nameless(inode: *const u8) {
    if inode.is_null() || btf_load::<u32>(inode, offset!(inode_i_nlink)) != 0 || subjects::current().is_some() {
        return;
    }
    forget_file(inode);
}

/// `inode`'s key if the name going now is its last one.
#[inline(always)]
fn last_name_key(inode: *const u8) -> Option<FileKey> {
    if read_kernel::<u32>(inode, offset!(inode_i_nlink)).unwrap_or(2) > 1 {
        return None;
    }
    inode_key(inode)
}

#[lsm(hook = "inode_rmdir")]
pub fn inode_rmdir(ctx: LsmContext) -> i32 {
    match subjects::current() {
        Some(subject) => removal(&subject, ctx.arg(0), ctx.arg(1)),
        None => 0,
    }
}

/// `inode_rename(old_dir, old_dentry, new_dir, new_dentry)`: moving a
/// protected file, moving over one (`sed -i`, `mv`), or into or out of a
/// protected directory.
#[lsm(hook = "inode_rename")]
pub fn inode_rename(ctx: LsmContext) -> i32 {
    let Some(subject) = subjects::current() else {
        adopt_moved(ctx.arg(1), ctx.arg(2), ctx.arg(3), 0);
        forget_if_daemons(ctx.arg(3));
        return 0;
    };
    let verdict = rename_verdict(&ctx, &subject);
    if verdict == 0 {
        adopt_moved(ctx.arg(1), ctx.arg(2), ctx.arg(3), 1);
    }
    verdict
}

/// The daemon's own atomic rewrites (a new file renamed over its state
/// file) free an inode each: its entry goes with `victim`'s (see
/// forget_last_name), at once rather than at `forget_dropped`. Only the
/// daemon's renames: it makes no RENAME_EXCHANGE, which this hook cannot
/// tell from a rename over a file.
// Its own function, as `adopt_moved`: inlined, LLVM reshuffled
// `rename_verdict`'s registers into a pointer shift the verifier refuses.
#[inline(never)]
fn forget_if_daemons(victim: *const u8) {
    if selfprotect::current_is_daemon() {
        forget_last_name(dentry_inode(victim));
    }
}

/// A file moved over a protected one, or into a protected directory (or
/// onto a missing protected path's name), joins that tree: root's rewrites
/// (`sed -i`, an editor's save, dpkg's conffiles) put a new inode under the
/// protected name, and a subject's warranted move puts in what an RI
/// approved, which would otherwise stay unprotected (the agent's to
/// rewrite) until the next apply. A rename that fails after the hook only
/// over-protects. (RENAME_EXCHANGE calls the hook for each direction.) Not
/// joined: a directory's contents. The replaced inode's entry goes when its
/// link count reaches zero (`forget_dropped`).
// Its own function: inlined, LLVM merged its `Option`s into a read of a
// register one path never set, which the verifier refuses.
#[inline(never)]
fn adopt_moved(moved: *const u8, new_dir: *const u8, new: *const u8, by_subject: u64) {
    let tree = match protected(dentry_inode(new)) {
        Some((_, found)) => found as u64,
        None => name_tree(new_dir, new, &mut FileKey::default()),
    };
    if tree == NO_TREE {
        return;
    }
    let inode = dentry_inode(moved);
    // Root's move of a file with other names: not the destination's alone
    // (a subject's hard link to a library, moved into Warrant's inbox by
    // root, would make the library Warrant's own). A subject's own move
    // protects it by every name: protection binds subjects only.
    if by_subject == 0 && read_kernel::<u32>(inode, offset!(inode_i_nlink)).unwrap_or(2) > 1 {
        return;
    }
    let Some(key) = inode_key(inode) else {
        return;
    };
    // Moved from another tree, it takes the destination's rules, and a
    // directory drops the flags it had there. Moved within its tree, it
    // keeps its entry (a directory its guarded names and roots held), as
    // do Warrant's own files and the directories above trees.
    if let Some(entry) = unsafe { PROTECTED.get(&key) }
        && (entry.flags & PROTECTED_ANCESTOR != 0 || entry.tree == SELF_TREE || entry.tree as u64 == tree)
    {
        return;
    }
    if crate::passes::voiding(|| PROTECTED.insert(&key, &ProtectedEntry { tree: tree as u32, flags: 0 }, 0)).is_err() {
        crate::overflow::note_missed();
    }
}

#[inline(always)]
fn rename_verdict(ctx: &LsmContext, subject: &Subject) -> i32 {
    let old_dir: *const u8 = ctx.arg(0);
    let new_dir: *const u8 = ctx.arg(2);
    if selfprotect::on_bpffs(old_dir) || selfprotect::on_bpffs(new_dir) {
        return selfprotect::refuse(subject, action::SELF_PINS);
    }
    let old: *const u8 = ctx.arg(1);
    let new: *const u8 = ctx.arg(3);
    let moved = dentry_inode(old);
    // Moving a directory above a tree (`mv /etc /etc.old`) moves the tree;
    // one inside another tree on the way may not be moved at all.
    if let Some((key, entry)) = protected_entry(moved) {
        if entry.flags & PROTECTED_ANCESTOR != 0 {
            return decide_file(subject, action::FILE_RENAME, key, entry.tree);
        }
        if entry.flags & PROTECTED_HOLDS_ROOT != 0 {
            return selfprotect::refuse(subject, action::FILE_RENAME);
        }
    }
    // Moved into a tree while open for writing: written through that fd
    // or mapping after the move, it would not be what the tree holds.
    // Before any decision, which would take a warrant's use.
    if held_for_writing(moved) && lands_in_another_tree(moved, new_dir, new) {
        return selfprotect::refuse(subject, action::FILE_RENAME);
    }
    // Each side on its own tree: what the rename replaces or names (the
    // file moved over, else the new name) and what it takes away (the file
    // moved, the directory it leaves). Deciding only the first protected
    // one let a move allowed in one tree replace a file of another,
    // Warrant's own included. Trees as plain numbers (NO_TREE for none):
    // LLVM hoisted compares of `Option`s above their discriminants.
    let mut destination = NO_TREE;
    let verdict = match protected(dentry_inode(new)) {
        Some((key, tree)) => {
            destination = tree as u64;
            decide_file(subject, action::FILE_RENAME, key, tree)
        }
        None => {
            let name = NewName::new(new_dir, new, kind_of(moved));
            decide_new_name(subject, action::FILE_RENAME, &name, &mut destination)
        }
    };
    if verdict != 0 {
        return verdict;
    }
    match protected_at(old).or_else(|| protected(old_dir)) {
        Some((key, tree)) if tree as u64 != destination => decide_file(subject, action::FILE_RENAME, key, tree),
        _ => 0,
    }
}
