//! Protecting what root mounts in, over or out of a protected tree between
//! applies. The kernel's names walk ends at a mount's root, so a file
//! system mounted in a tree (or over it) has no protection until a walk
//! gives its files entries, and files a mount hid, once it goes, have none
//! either. A task hears the mount table change (/proc/self/mountinfo polls
//! PRI on every change in the daemon's namespace) and hands the owner the
//! mount points that came or went; the owner walks the trees again when one
//! is at, in or above a protected root.

use std::{collections::BTreeSet, os::fd::AsRawFd as _};

use super::*;
use crate::marks::Mounts;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount points that came and went since the last look, each with its
/// mount id (a mount made again at the same point is another).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct MountChange {
    pub(super) mounted: Vec<PathBuf>,
    pub(super) unmounted: Vec<PathBuf>,
    /// When the watcher heard it, for the log's latency.
    pub(super) heard: Option<std::time::Instant>,
}

impl MountChange {
    /// What changed from `before` to `now`, as (mount id, point) sets.
    fn between(before: &BTreeSet<(u64, PathBuf)>, now: &BTreeSet<(u64, PathBuf)>) -> Self {
        Self {
            mounted: now.difference(before).map(|(_, point)| point.clone()).collect(),
            unmounted: before.difference(now).map(|(_, point)| point.clone()).collect(),
            heard: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.mounted.is_empty() && self.unmounted.is_empty()
    }
}

fn mount_points() -> std::io::Result<BTreeSet<(u64, PathBuf)>> {
    Ok(Mounts::parse(&fs::read_to_string(MOUNTINFO)?).by_id().collect())
}

/// Hears the mount table change until the daemon stops. The table read at
/// the start is the one the start's walk saw (give or take the moments
/// between); each change is read at once, with no settling: a subject may
/// write a mounted file system's files until its walk.
pub(super) async fn watch_mounts(owner: Owner) -> Result<(), DaemonError> {
    let doing = || format!("cannot watch {MOUNTINFO} for mounts in protected trees");
    let file = fs::File::open(MOUNTINFO).doing(doing)?;
    // SAFETY: the AsyncFd owns the file it watches, and closes it last.
    let file = unsafe { AsyncFd::register_with_interest(file, tokio::io::Interest::PRIORITY) }.doing(doing)?;
    let mut seen = mount_points().doing(doing)?;
    loop {
        let mut ready = file.ready(tokio::io::Interest::PRIORITY).await.doing(doing)?;
        let heard = std::time::Instant::now();
        // Cleared before the read: a change from here on wakes the next loop.
        ready.clear_ready();
        // Polling the file again is what the kernel counts as having seen
        // the change (seq_file's poll_event), so that epoll reports the next.
        let mut poll = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLPRI, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut poll, 1, 0) };
        let now = mount_points().doing(doing)?;
        let change = MountChange { heard: Some(heard), ..MountChange::between(&seen, &now) };
        seen = now;
        if !change.is_empty() {
            owner.ask(|reply| Command::Mounts { change, reply }).await.ok_or(DaemonError::Unanswered)?;
        }
    }
}

impl State {
    /// Gives entries to what `change` brought into a tree (or Warrant's own
    /// paths): the files of a file system mounted there, or those an
    /// unmount uncovered. Only the mount points are walked when each is
    /// inside a root, every tree otherwise (see [`walks`]); entries the
    /// kernel has stay. Recorded as `protected.mounts`, with why not if
    /// they find no room.
    pub(super) fn protect_mounts(&mut self, change: &MountChange) {
        let trees = self.policy.as_ref().map(|policy| policy.policy.protect.clone()).unwrap_or_default();
        let roots = self.mount_roots(&trees, false);
        let touching = |points: &[PathBuf]| -> Vec<PathBuf> {
            points.iter().filter(|point| roots.iter().any(|(root, _)| touches(point, root))).cloned().collect()
        };
        let (mounted, unmounted) = (touching(&change.mounted), touching(&change.unmounted));
        if mounted.is_empty() && unmounted.is_empty() {
            return;
        }
        let text = |points: &[PathBuf]| -> Vec<String> {
            points.iter().map(|point| point.to_string_lossy().into_owned()).collect()
        };
        let points: Vec<&PathBuf> = mounted.iter().chain(&unmounted).collect();
        let walk = walks(&points, &roots);
        let walked = match &walk {
            Some(walks) => {
                walks.iter().try_fold(0, |files, (point, tree)| Ok(files + self.protect_subtree(point, *tree)?))
            }
            None => {
                self.protect_roots_under(&points, &roots);
                self.protected_inodes(&trees).map_err(|e| e.to_string()).and_then(|(entries, _)| {
                    self.kernel.add_missing_protected(&entries).map(|()| entries.len()).map_err(|e| error_chain(&e))
                })
            }
        };
        // From the watcher's wake-up to the last entry: the moments a
        // subject had to write what the mounts brought.
        let heard_ms = change.heard.map(|heard| heard.elapsed().as_millis() as u64);
        // After the walk, which every moment before is a subject's: as for
        // a tree on overlayfs (`protected_inodes` warns), its files'
        // entries have the layers' devices, not the one hooks see.
        let overlays = text(&protect::on_overlayfs(mounted.iter().map(PathBuf::as_path)));
        // A mount may have changed where a root's path leads.
        self.mount_roots(&trees, true);
        let (mounted, unmounted, scope) =
            (text(&mounted), text(&unmounted), if walk.is_some() { "mounts" } else { "trees" });
        let shown = crate::render::escape(&[mounted.as_slice(), &unmounted].concat().join(" ")).into_owned();
        match walked {
            Ok(files) => {
                info!(
                    points = shown,
                    files,
                    scope,
                    ?heard_ms,
                    "a mount changed a protected tree; its files are protected"
                );
                self.record(
                    "protected.mounts",
                    json!({"mounted": mounted, "unmounted": unmounted, "walked": scope, "files": files, "on_overlayfs": overlays}),
                );
            }
            Err(e) => {
                error!(points = shown, "a mount changed a protected tree, and its files are not all protected: {e}");
                self.record(
                    "protected.mounts",
                    json!({"mounted": mounted, "unmounted": unmounted, "walked": scope, "error": e, "on_overlayfs": overlays}),
                );
            }
        }
    }
}

impl State {
    /// The roots of `trees` and Warrant's own paths with their trees, as
    /// written and as the kernel sees them (a tree through /lib on a
    /// merged-/usr host is mounted on at /usr/lib). Kept for the policy in
    /// force until `again`: resolving ~40 paths took ~30 ms in the
    /// emulated VM, moments a subject may write a new mount's files in.
    fn mount_roots(&mut self, trees: &[String], again: bool) -> Vec<(PathBuf, u32)> {
        let version = self.policy.as_ref().map_or(0, |policy| policy.version());
        if let Some((kept, roots)) = &self.mount_roots
            && *kept == version
            && !again
        {
            return roots.clone();
        }
        let roots: Vec<(PathBuf, u32)> = trees
            .iter()
            .map(|tree| (PathBuf::from(tree), protect::tree_id(tree)))
            .chain(self.config.own_paths().into_iter().map(|own| (own, SELF_TREE)))
            .flat_map(|(root, tree)| [fs::canonicalize(&root).ok().map(|real| (real, tree)), Some((root, tree))])
            .flatten()
            .collect();
        self.mount_roots = Some((version, roots.clone()));
        roots
    }

    /// Resolves the roots for mount changes ahead of the next one, after a
    /// policy change (the 2 s tick).
    pub(super) fn resolve_mount_roots(&mut self) {
        let version = self.policy.as_ref().map_or(0, |policy| policy.version());
        if self.mount_roots.as_ref().is_none_or(|(kept, _)| *kept != version) {
            let trees = self.policy.as_ref().map(|policy| policy.policy.protect.clone()).unwrap_or_default();
            self.mount_roots(&trees, true);
        }
    }

    /// Before every tree's walk (~1 s for ~660 files in the emulated VM),
    /// gives the roots at or below `points` their files' entries as
    /// [`Self::protect_subtree`] does, deepest first (a tree inside another
    /// keeps its files): a mount over a tree's root is then decided from
    /// the moment its root directory has its entry. Failures are the walk's
    /// to report.
    fn protect_roots_under(&mut self, points: &[&PathBuf], roots: &[(PathBuf, u32)]) {
        let mut under: Vec<&(PathBuf, u32)> =
            roots.iter().filter(|(root, _)| points.iter().any(|point| root.starts_with(point))).collect();
        under.sort_by_key(|(root, _)| std::cmp::Reverse(root.components().count()));
        for (root, tree) in under {
            let _ = self.protect_subtree(root, *tree);
        }
    }

    /// Gives each inode under `point` (itself first) tree `tree`'s entry as
    /// the walk finds it: a directory has its entry before it is read, so a
    /// file made in it meanwhile is the walk's or, made after, the tree's
    /// already (a subject's create is decided; `d_instantiate` gives
    /// root's its entry). How many inodes it walked.
    fn protect_subtree(&mut self, point: &Path, tree: u32) -> Result<usize, String> {
        let (entry, mut files) = (ProtectedEntry { tree, flags: 0 }, 0);
        protect::walk(point, |_, key| {
            files += 1;
            if files > protect::MAX_INODES {
                return Err(protect::ProtectError::TooMany.to_string());
            }
            self.kernel.add_missing_protected(&HashMap::from([(key, entry)])).map_err(|e| error_chain(&e))
        })?;
        Ok(files)
    }
}

/// Whether a mount at `point` is at, in or above `root`: it adds, hides or
/// uncovers files of the tree.
fn touches(point: &Path, root: &Path) -> bool {
    root.starts_with(point) || point.starts_with(root)
}

/// The walks that protect what mounts at `points` added or uncovered: each
/// point inside a root, with no root at or below it, alone, as the nearest
/// root's tree (an apply's walk of ~660 files takes ~1 s in the emulated
/// VM; a subject writes meanwhile). None when one is at or above a root:
/// then every tree is walked again (its name guarded, the directories
/// above it, the trees inside it).
fn walks(points: &[&PathBuf], roots: &[(PathBuf, u32)]) -> Option<Vec<(PathBuf, u32)>> {
    points
        .iter()
        .map(|point| {
            if roots.iter().any(|(root, _)| root.starts_with(point)) {
                return None;
            }
            let nearest = roots.iter().filter(|(root, _)| point.starts_with(root));
            nearest.max_by_key(|(root, _)| root.components().count()).map(|(_, tree)| ((*point).clone(), *tree))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(points: &[(u64, &str)]) -> BTreeSet<(u64, PathBuf)> {
        points.iter().map(|(id, point)| (*id, PathBuf::from(point))).collect()
    }

    #[test]
    fn a_change_touches_the_trees_it_is_in_or_above() {
        let before = set(&[(1, "/"), (20, "/etc/nft/sub"), (30, "/srv")]);
        let now = set(&[(1, "/"), (21, "/etc/nft/sub"), (30, "/srv"), (40, "/etc"), (41, "/var/tmp")]);
        let change = MountChange::between(&before, &now);
        assert_eq!(change.mounted, [PathBuf::from("/etc/nft/sub"), "/etc".into(), "/var/tmp".into()]);
        assert_eq!(change.unmounted, [PathBuf::from("/etc/nft/sub")]);
        let roots =
            [(PathBuf::from("/etc/nft"), 7), (PathBuf::from("/etc/nft/sub/inner"), 8), ("/var/lib/warrant".into(), 9)];
        let touching: Vec<_> =
            change.mounted.iter().filter(|point| roots.iter().any(|(root, _)| touches(point, root))).collect();
        assert_eq!(touching, [&PathBuf::from("/etc/nft/sub"), &"/etc".into()]);
        // A sibling whose name begins the same is not in the tree.
        assert!(!touches(Path::new("/etc/nft2"), Path::new("/etc/nft")));
        // A mount in one tree is walked alone, as the nearest root's.
        let (deep, warrant) = (PathBuf::from("/etc/nft/sub/inner/x"), PathBuf::from("/var/lib/warrant/marks"));
        assert_eq!(walks(&[&deep, &warrant], &roots), Some(vec![(deep.clone(), 8), (warrant, 9)]));
        // One above a root (or at it) takes every tree's walk.
        for point in ["/etc/nft/sub", "/etc/nft", "/etc"] {
            assert_eq!(walks(&[&deep, &PathBuf::from(point)], &roots), None, "{point}");
        }
        assert!(MountChange::between(&now, &now).is_empty());
    }
}
