//! A full PROTECTED. The hooks that add a new file to a tree (a create's
//! `d_instantiate`, a move into a tree) cannot refuse, so a file whose
//! entry does not fit would be nobody's: an agent allowed to make files in
//! one tree could fill the map, then write every file root makes in the
//! others (a new unit in /etc/systemd/system). Each failed insert is
//! counted instead; until the daemon settles the count (a walk of the trees
//! whose every file went in), a file with no entry is decided by its names:
//! as the tree `d_instantiate` would have given it and the directories
//! above it, had there been room. Slower while it lasts (tests/BYPASS.md
//! says what it does not cover).

use warrant_common::{FileKey, PROTECTED_MISSED, PROTECTED_SETTLED};

use crate::{
    atomics,
    maps::{PROTECTED_MISSES, offset},
    names::{NO_TREE, new_name_tree},
    policy::{read_kernel, repeat},
};

/// Most directories a name is looked up through: deeper, a file of a
/// directory made in a tree while the map was full is not found in it.
const DEPTH: u32 = 32;

/// Counts an insert into PROTECTED that failed; a subject's pass on a file
/// with no entry no longer holds (see `passes`).
#[inline(always)]
pub fn note_missed() {
    crate::passes::voiding(|| {
        if let Some(count) = PROTECTED_MISSES.get_ptr_mut(PROTECTED_MISSED) {
            atomics::fetch_add(count, 1);
        }
    });
}

/// True while some failed insert is not settled (and when the count cannot
/// be read: fail-closed).
#[inline(always)]
pub(crate) fn unsettled() -> bool {
    let missed = PROTECTED_MISSES.get(PROTECTED_MISSED).copied().unwrap_or(1);
    let settled = PROTECTED_MISSES.get(PROTECTED_SETTLED).copied().unwrap_or(0);
    missed > settled
}

/// The tree the file at `dentry` is in by its names, for a file with no
/// entry while failed inserts are unsettled; `NO_TREE` otherwise.
#[inline(always)]
pub fn tree_by_names(dentry: *const u8) -> u64 {
    if dentry.is_null() || !unsettled() {
        return NO_TREE;
    }
    walk_up(dentry as u64)
}

/// Where the walk is: the name looked up next, and what was found.
struct Walk {
    name: u64,
    tree: u64,
}

/// Looks `name` (a dentry) up in its directory; while the directory has no
/// entry (made while the map was full, or outside every tree) and gives
/// the name no tree, the directory's own name in its parent, and so on.
// Its own function, its step a `bpf_loop`'s: a plain loop of 32 steps
// took the verifier ~150k more instructions in file_open and inode_rename
// each, and doubled a daemon's start under emulation.
#[inline(never)]
fn walk_up(dentry: u64) -> u64 {
    let mut walk = Walk { name: dentry, tree: NO_TREE };
    repeat(DEPTH, |_| step(&mut walk));
    walk.tree
}

/// One directory of [`walk_up`]; false ends the walk.
#[inline(always)]
fn step(walk: &mut Walk) -> bool {
    let name = walk.name as *const u8;
    let Some(parent) = read_kernel::<u64>(name, offset!(dentry_d_parent)) else {
        return false;
    };
    // A file system's root is its own parent: the walk ends at a mount
    // (an apply's walk crosses them).
    if parent == 0 || parent == walk.name {
        return false;
    }
    let dir = read_kernel::<u64>(parent as *const u8, offset!(dentry_d_inode)).unwrap_or(0);
    let mut dir_key = FileKey::default();
    let tree = new_name_tree(dir as *const u8, name, &mut dir_key);
    // A directory with an entry that gives the name no tree is above the
    // trees: nothing further up does.
    if tree != NO_TREE || dir_key != FileKey::default() {
        walk.tree = tree;
        return false;
    }
    walk.name = parent;
    true
}
