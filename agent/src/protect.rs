//! Protected files as the kernel sees them: every inode of each protected
//! tree, keyed by (device, inode) in the kernel's encoding, with the tree's
//! stable id. See agent-ebpf's files.rs for the hooks.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use thiserror::Error;
use warrant_common::{
    FileKey, PROTECTED_ANCESTOR, PROTECTED_HOLDS_ROOT, PROTECTED_NAMES, ProtectedEntry, SELF_TREE, proc_path,
};

/// More inodes than this across all trees is refused: the kernel map holds
/// 65536, and new files need room.
pub const MAX_INODES: usize = 60_000;

#[derive(Debug, Error)]
pub enum ProtectError {
    #[error("protected trees hold more than {MAX_INODES} files; protect narrower trees")]
    TooMany,
}

/// A tree's id: a hash of its path, so that ids (and the kernel's entries)
/// stay the same when the policy's list changes around them. Never 0 (the
/// wildcard) nor SELF_TREE.
pub fn tree_id(path: &str) -> u32 {
    let hash = warrant_common::hash::fnv1a_32(path.as_bytes());
    match hash {
        0 => 1,
        SELF_TREE => SELF_TREE - 1,
        h => h,
    }
}

/// The tree ids a policy protecting `trees` puts in PROTECTED, Warrant's
/// own among them.
pub fn tree_ids(trees: &[String]) -> HashSet<u32> {
    trees.iter().map(|tree| tree_id(tree)).chain([SELF_TREE]).collect()
}

/// `st_dev` as the kernel's `super_block.s_dev` (`MAJOR << 20 | MINOR`).
pub fn kernel_dev(st_dev: u64) -> u64 {
    let (major, minor) = (libc::major(st_dev) as u64, libc::minor(st_dev) as u64);
    (major << 20) | minor
}

/// A device in the kernel's encoding as `MAJOR:MINOR`.
pub fn dev_text(dev: u64) -> String {
    format!("{}:{}", dev >> 20, dev & 0xf_ffff)
}

/// The kernel's key for the regular file at `path` (not following a final
/// symlink), with the device its super block has. `stat` says otherwise on
/// overlayfs, whose files report the device of the layer they come from:
/// the mount's own device is read from /proc/self/mountinfo by mount id.
pub fn super_block_file_key(path: &Path) -> Option<FileKey> {
    let stx = statx(path, libc::AT_SYMLINK_NOFOLLOW, libc::STATX_INO | libc::STATX_MNT_ID)?;
    let st_dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
    let dev = if stx.stx_mask & libc::STATX_MNT_ID != 0 {
        crate::marks::Mounts::current().device_of_mount(stx.stx_mnt_id).unwrap_or_else(|| kernel_dev(st_dev))
    } else {
        kernel_dev(st_dev)
    };
    Some(FileKey { dev, ino: stx.stx_ino })
}

/// `statx(2)` of `path` with `flags` (AT_*) for the fields in `mask`.
pub fn statx(path: &Path, flags: i32, mask: u32) -> Option<libc::statx> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statx writes into a zeroed struct of its own type.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out pointer.
    (unsafe { libc::statx(libc::AT_FDCWD, c_path.as_ptr(), flags, mask, &mut stx) } == 0).then_some(stx)
}

/// Where procfs trees live; their files are keyed by path, not inode.
pub const PROC: &str = "/proc";

/// The path hash the kernel computes for a file under /proc (see
/// `warrant_common::proc_path`), or None for a path outside /proc.
pub fn proc_path_hash(path: &Path) -> Option<u64> {
    let below = path.strip_prefix(PROC).ok()?;
    Some(below.components().fold(proc_path::ROOT, |hash, part| {
        proc_path::join(hash, proc_path::component(part.as_os_str().as_encoded_bytes()))
    }))
}

/// The kernel's key for the file at `path` (not following a final
/// symlink): its device and inode, or for a file on procfs, device 0 and
/// its path hash.
pub fn file_key(path: &Path) -> Option<FileKey> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(key_of(path, &meta))
}

/// See [`file_key`]. A file under /proc on another file system (binfmt_misc
/// mounted at /proc/sys/fs/binfmt_misc) is keyed by its inode: the kernel
/// matches paths only on procfs.
fn key_of(path: &Path, meta: &std::fs::Metadata) -> FileKey {
    match proc_path_hash(path) {
        Some(hash) if on_procfs(meta) => FileKey { dev: 0, ino: hash },
        _ => FileKey { dev: kernel_dev(meta.dev()), ino: meta.ino() },
    }
}

/// Whether `meta` is of a file on the procfs mounted at /proc.
fn on_procfs(meta: &std::fs::Metadata) -> bool {
    std::fs::symlink_metadata(PROC).is_ok_and(|proc| proc.dev() == meta.dev())
}

/// Every inode under `root` (itself included), without following symlinks.
/// Each entry is visited as its directory is read: only directories wait
/// their turn (a directory of 10,000 files held 10,000 paths and stats).
pub fn walk<E>(root: &Path, mut visit: impl FnMut(&Path, FileKey) -> Result<(), E>) -> Result<(), E> {
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return Ok(());
    };
    visit(root, key_of(root, &meta))?;
    let mut directories = if meta.is_dir() { vec![root.to_path_buf()] } else { Vec::new() };
    while let Some(directory) = directories.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            visit(&path, key_of(&path, &meta))?;
            if meta.is_dir() {
                directories.push(path);
            }
        }
    }
    Ok(())
}

/// The PROTECTED map's entries for `trees` (policy paths) and Warrant's own
/// paths. Missing paths are skipped: a tree that appears later is picked up
/// at the next policy apply.
pub fn inodes(trees: &[String], own: &[PathBuf]) -> Result<HashMap<FileKey, ProtectedEntry>, ProtectError> {
    let mut entries = HashMap::new();
    // /proc trees are matched by path in the kernel (`proc_trees`); one
    // that is another file system's mount (binfmt_misc) is walked here too.
    let roots = trees
        .iter()
        .filter(|t| proc_path_hash(Path::new(t)).is_none() || std::fs::metadata(t).is_ok_and(|meta| !on_procfs(&meta)))
        .map(|t| (PathBuf::from(t), tree_id(t)))
        .chain(own.iter().map(|p| (p.clone(), SELF_TREE)));
    // A protected path that is a symlink protects its target too: writes
    // go there. Such a target is marked `true`.
    let mut roots: Vec<(PathBuf, u32, bool)> = roots
        .flat_map(|(root, tree)| {
            let target = std::fs::symlink_metadata(&root)
                .is_ok_and(|m| m.file_type().is_symlink())
                .then(|| std::fs::canonicalize(&root).ok())
                .flatten();
            std::iter::once((root, tree, false)).chain(target.map(|t| (t, tree, true)))
        })
        .collect();
    // A tree inside another is walked first and keeps its files: the
    // nearest root decides (a guarded `/root/.bashrc` inside a policy's
    // `/root` stays guarded; a policy's tree inside a guarded directory
    // takes its own rules). Symlinks' targets come after every real root
    // and take only what no tree has: whoever can make a tree's root a
    // symlink would otherwise hand that tree's rules another tree's files.
    // Depth as the kernel sees the path (a root written through /lib on a
    // merged-/usr host is as deep as its /usr/lib path).
    let depth = |root: &Path| std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()).components().count();
    roots.sort_by_cached_key(|(root, _, by_symlink)| (*by_symlink, std::cmp::Reverse(depth(root))));
    for (root, tree, _) in &roots {
        let tree = *tree;
        walk(root, |_, key| {
            // Warrant's own files win over a policy tree that contains them.
            let entry = entries.entry(key).or_insert(ProtectedEntry { tree, flags: 0 });
            if tree == SELF_TREE {
                entry.tree = SELF_TREE;
            }
            if entries.len() > MAX_INODES { Err(ProtectError::TooMany) } else { Ok(()) }
        })?;
    }
    // The directories above each tree root: renaming one would move the tree.
    for (root, tree, _) in &roots {
        for ancestor in root.ancestors().skip(1) {
            if ancestor == Path::new("/") {
                break;
            }
            if let Some(key) = file_key(ancestor) {
                let entry = entries.entry(key).or_insert(ProtectedEntry { tree: *tree, flags: PROTECTED_ANCESTOR });
                if entry.flags & PROTECTED_ANCESTOR == 0 && entry.tree != *tree && entry.tree != SELF_TREE {
                    entry.flags |= PROTECTED_HOLDS_ROOT;
                }
            }
        }
    }
    let policy_roots = || roots.iter().filter(|(_, tree, _)| *tree != SELF_TREE);
    // Real roots first (sorted so): a symlink's target takes no name a real
    // root has, nor one in another tree's directory.
    for (root, tree, by_symlink) in policy_roots() {
        guard_name(&mut entries, root, *tree, if *by_symlink { NameIn::NoOtherTree } else { NameIn::AnyTree });
    }
    // A symlink to nothing: writes through it would make its target.
    for (root, tree, _) in policy_roots() {
        if std::fs::symlink_metadata(root).is_ok_and(|meta| meta.file_type().is_symlink())
            && std::fs::metadata(root).is_err()
            && let Ok(target) = std::fs::read_link(root)
        {
            let target = root.parent().unwrap_or(Path::new("/")).join(target);
            guard_name(&mut entries, &target, *tree, NameIn::NoOtherTree);
        }
    }
    Ok(entries)
}

/// The roots (`trees`, Warrant's `own` paths, where a symlink root leads)
/// whose `entries` a full PROTECTED's names lookup cannot stand in for, and
/// the mount points in trees. The lookup finds a file with no entry by the
/// directory above it: a root is found by a name of its tree guarded
/// there, or by that directory's own entry of its tree if the directory is
/// a root found in turn (Warrant's audit log in its own directory). At a
/// mount's root it stops (or, for a bind mount, goes on in the file system
/// the mount came from). The others' entries must fit.
pub fn roots_needing_entries(
    trees: &[String],
    own: &[PathBuf],
    entries: &HashMap<FileKey, ProtectedEntry>,
) -> HashSet<FileKey> {
    let mut roots: Vec<PathBuf> = trees
        .iter()
        .map(PathBuf::from)
        .chain(own.iter().cloned())
        .flat_map(|root| [std::fs::canonicalize(&root).ok(), Some(root)])
        .flatten()
        .collect();
    // A directory before the roots in it, by the path the kernel sees.
    roots.sort_by_cached_key(|root| {
        std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()).components().count()
    });
    let (mut needing, mut found) = (HashSet::new(), HashSet::new());
    for root in &roots {
        let Some((key, entry)) = file_key(root).and_then(|key| Some((key, entries.get(&key)?))) else { continue };
        let by_names = root.parent().zip(root.file_name()).and_then(|(dir, name)| {
            let dir_key = file_key(&std::fs::canonicalize(dir).ok()?)?;
            let dir_entry = entries.get(&dir_key)?;
            let name_key = FileKey::of_name(dir_key, proc_path::component(name.as_encoded_bytes()));
            let by_name =
                dir_entry.flags & PROTECTED_NAMES != 0 && entries.get(&name_key).is_some_and(|e| e.tree == entry.tree);
            let by_dir = dir_entry.flags & PROTECTED_ANCESTOR == 0
                && dir_entry.tree == entry.tree
                && (needing.contains(&dir_key) || found.contains(&dir_key));
            Some(by_name || by_dir)
        });
        if by_names == Some(true) {
            found.insert(key);
        } else {
            needing.insert(key);
        }
    }
    for point in crate::marks::Mounts::current().points() {
        if let Some(key) = file_key(&point).filter(|key| entries.get(key).is_some_and(|e| e.flags == 0)) {
            needing.insert(key);
        }
    }
    needing
}

/// Where [`guard_name`] may guard a name: a policy's root takes its own
/// name in a directory of another tree too (not a directory's on the way
/// to it: what is made there is that tree's); where a symlink leads takes
/// none there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameIn {
    AnyTree,
    NoOtherTree,
}

/// Guards the name of tree root `root` in its directory, so that a
/// subject may not make it (it is missing, or root moves or removes it
/// later) and what root makes there joins the tree. For a root this host
/// lacks, the first missing component's name in the nearest directory
/// that is there (a subject makes no directory on the way either). /proc
/// paths go by path already.
fn guard_name(entries: &mut HashMap<FileKey, ProtectedEntry>, root: &Path, tree: u32, allowed: NameIn) {
    if proc_path_hash(root).is_some() {
        return;
    }
    let found = if std::fs::symlink_metadata(root).is_ok() {
        root.parent().zip(root.file_name()).map(|(dir, name)| (dir.to_path_buf(), name.to_os_string()))
    } else {
        nearest_present(root)
    };
    let Some((dir, name)) = found else {
        return;
    };
    let own_name = root.parent() == Some(dir.as_path());
    // The directory the kernel sees: a symlink on the way (/lib on a
    // merged-/usr host) leads to it.
    let Some(dir_key) = std::fs::canonicalize(&dir).ok().and_then(|dir| file_key(&dir)) else {
        return;
    };
    let entry = entries.entry(dir_key).or_insert(ProtectedEntry { tree, flags: PROTECTED_ANCESTOR });
    // Warrant's own directories decide every name in them.
    let in_tree = entry.flags & PROTECTED_ANCESTOR == 0;
    let another_tree = in_tree && entry.tree != tree;
    if in_tree && entry.tree == SELF_TREE || another_tree && (allowed == NameIn::NoOtherTree || !own_name) {
        return;
    }
    entry.flags |= PROTECTED_NAMES;
    let name_key = FileKey::of_name(dir_key, proc_path::component(name.as_encoded_bytes()));
    entries.entry(name_key).or_insert(ProtectedEntry { tree, flags: 0 });
}

/// The nearest directory above `path` that is there, and the name below it
/// on the way to `path`.
fn nearest_present(path: &Path) -> Option<(PathBuf, std::ffi::OsString)> {
    let mut below = path;
    for dir in path.ancestors().skip(1) {
        if std::fs::metadata(dir).is_ok_and(|meta| meta.is_dir()) {
            return Some((dir.to_path_buf(), below.file_name()?.to_os_string()));
        }
        below = dir;
    }
    None
}

/// The kernel's PROC_TREES entries: path hash -> tree id, for the trees under /proc.
pub fn proc_trees(trees: &[String]) -> HashMap<u64, u32> {
    trees.iter().filter_map(|t| Some((proc_path_hash(Path::new(t))?, tree_id(t)))).collect()
}

/// The path under `root` (or above it) of the inode `key`, if it is still there.
pub fn find_path(root: &Path, key: FileKey) -> Option<PathBuf> {
    if let Some(above) = root.ancestors().skip(1).find(|a| file_key(a) == Some(key)) {
        return Some(above.to_path_buf());
    }
    let mut found = None;
    let _ = walk(root, |path, k| {
        if k == key && found.is_none() {
            found = Some(path.to_path_buf());
        }
        Ok::<_, std::convert::Infallible>(())
    });
    found
}

/// `OVERLAYFS_SUPER_MAGIC`.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// The paths among `paths` on overlayfs, whose files cannot be protected:
/// stat there reports the layer's inode, not the one the kernel hooks see.
pub fn on_overlayfs<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    paths
        .into_iter()
        .filter(|path| nix::sys::statfs::statfs(*path).is_ok_and(|fs| fs.filesystem_type().0 == OVERLAYFS_MAGIC))
        .map(Path::to_path_buf)
        .collect()
}
