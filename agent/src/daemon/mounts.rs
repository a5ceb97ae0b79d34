//! Protecting what root mounts in, over or out of a protected tree between
//! applies. The kernel's names walk ends at a mount's root, so a file
//! system mounted in a tree (or over it) has no protection until a walk
//! gives its files entries, and files a mount hid, once it goes, have none
//! either. A task hears the mount table change (/proc/self/mountinfo polls
//! PRI on every change in the daemon's namespace) and hands the owner the
//! mount points that came and went; the owner walks what a mount at, in or
//! above a protected root brought. The 2 s tick looks at every mount point
//! at or inside a root whose root has no entry: one moved into a tree with
//! its directory (no mount event), or made again at a point with the mount
//! id it had before (no change in the table).

use std::{
    collections::BTreeSet,
    os::{fd::AsRawFd as _, unix::ffi::OsStringExt as _},
};

use super::*;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Mounts as (mount id, mount point).
pub(super) type MountPoints = BTreeSet<(u64, PathBuf)>;

/// The mount points that came and went since the last look.
#[derive(Debug, Default)]
pub(super) struct MountChange {
    pub(super) mounted: Vec<PathBuf>,
    pub(super) unmounted: Vec<PathBuf>,
    /// When the watcher heard it, for the log's latency.
    pub(super) heard: Option<std::time::Instant>,
}

impl MountChange {
    /// What changed from `before` to `now`.
    fn between(before: &MountPoints, now: &MountPoints) -> Self {
        Self {
            mounted: now.difference(before).map(|(_, point)| point.clone()).collect(),
            unmounted: before.difference(now).map(|(_, point)| point.clone()).collect(),
            heard: None,
        }
    }
}

/// The mount table's points, read as bytes: mountinfo escapes only space,
/// tab, newline and backslash, and a point may be any other byte.
pub(super) fn mount_points() -> std::io::Result<MountPoints> {
    Ok(parse_points(&fs::read(MOUNTINFO)?))
}

fn parse_points(mountinfo: &[u8]) -> MountPoints {
    mountinfo
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut fields = line.split(|b| *b == b' ');
            let id = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
            let point = fields.nth(3)?;
            Some((id, PathBuf::from(std::ffi::OsString::from_vec(crate::marks::unescape_octal(point)))))
        })
        .collect()
}

/// Hears the mount table change until the daemon stops, from `seen` (read
/// before the start's walk, so that what came during it is walked too).
/// Each change is read at once, with no settling: a subject may write a
/// mounted file system's files until its walk. A failed read is logged and
/// tried again at the next change (the tick looks too).
pub(super) async fn watch_mounts(owner: Owner, mut seen: MountPoints) -> Result<(), DaemonError> {
    let doing = || format!("cannot watch {MOUNTINFO} for mounts in protected trees");
    let file = fs::File::open(MOUNTINFO).doing(doing)?;
    // SAFETY: the AsyncFd owns the file it watches, and closes it last.
    let file = unsafe { AsyncFd::register_with_interest(file, tokio::io::Interest::PRIORITY) }.doing(doing)?;
    let mut first = true;
    loop {
        if !first {
            let mut ready = file.ready(tokio::io::Interest::PRIORITY).await.doing(doing)?;
            // Cleared before the read: a change from here on wakes the next loop.
            ready.clear_ready();
        }
        first = false;
        let heard = std::time::Instant::now();
        // Marks the change seen (seq_file's poll_event), as epoll's own
        // poll does; harmless if it already has.
        let mut poll = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLPRI, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut poll, 1, 0) };
        let now = match mount_points() {
            Ok(now) => now,
            Err(e) => {
                warn!("cannot read {MOUNTINFO}: {e}; mounts in protected trees wait for the next change or tick");
                continue;
            }
        };
        let change = MountChange { heard: Some(heard), ..MountChange::between(&seen, &now) };
        seen = now;
        if !change.mounted.is_empty() || !change.unmounted.is_empty() {
            owner.ask(|reply| Command::Mounts { change, reply }).await.ok_or(DaemonError::Unanswered)?;
        }
    }
}

impl State {
    /// The 2 s tick's look at the mount table (see the module's comment):
    /// every mount at or inside a root (not under /proc, whose files go by
    /// path) whose root has no entry is taken as mounted. Not at each
    /// change: there it cost each of a host's mounts ~25 times the mount
    /// itself in the emulated VM's instructions (BENCHMARKS, session 43).
    /// Not while PROTECTED is full: the walk would fail again at every
    /// look (the daemon's heal walk, which crosses mounts, waits for room).
    pub(super) fn check_mount_points(&mut self) {
        let now = match mount_points() {
            Ok(now) => now,
            Err(e) => return warn!("cannot read {MOUNTINFO}: {e}"),
        };
        let roots = self.mount_roots(false);
        let looked_at: Vec<PathBuf> = now
            .into_iter()
            .map(|(_, point)| point)
            .filter(|point| !point.starts_with(protect::PROC) && roots.iter().any(|(root, _)| point.starts_with(root)))
            .collect();
        if looked_at.is_empty() || !self.kernel.protected_has_room() {
            return;
        }
        let mounted = looked_at
            .into_iter()
            .filter(|point| mount_root_key(point).is_some_and(|key| !self.kernel.is_protected(&key)))
            .collect();
        self.protect_mounts(&MountChange { mounted, ..MountChange::default() });
    }

    /// Gives entries to what a mount brought into a tree (or Warrant's own
    /// paths): the files of a file system mounted there, or those an
    /// unmount uncovered: each point `change` says came or went. Only the
    /// mount points are walked when each is inside a root, every tree otherwise (see
    /// [`walks`]); entries the kernel has stay. Recorded as
    /// `protected.mounts`, with why not if some find no room.
    pub(super) fn protect_mounts(&mut self, change: &MountChange) {
        let trees = self.protected_trees();
        let roots = self.mount_roots(false);
        let touching = |points: &[PathBuf]| -> BTreeSet<PathBuf> {
            points.iter().filter(|point| roots.iter().any(|(root, _)| touches(point, root))).cloned().collect()
        };
        let (mounted, unmounted) = (touching(&change.mounted), touching(&change.unmounted));
        if mounted.is_empty() && unmounted.is_empty() {
            return;
        }
        let points: Vec<&PathBuf> = mounted.union(&unmounted).collect();
        let walk = walks(&points, &roots);
        let (files, failed) = match &walk {
            Some(walks) => walks.iter().fold((0, Vec::new()), |(files, mut failed), (point, tree)| {
                let (walked, error) = self.protect_subtree(point, *tree);
                failed.extend(error);
                (files + walked, failed)
            }),
            None => {
                self.protect_roots_under(&points, &roots);
                let added = self.protected_inodes(&trees).map_err(|e| e.to_string()).and_then(|(entries, _)| {
                    self.kernel.add_missing_protected(&entries).map(|()| entries.len()).map_err(|e| error_chain(&e))
                });
                match added {
                    Ok(files) => (files, Vec::new()),
                    Err(e) => (0, vec![e]),
                }
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
        self.mount_roots(true);
        let (mounted, unmounted) = (text(&mounted), text(&unmounted));
        let scope = if walk.is_some() { "mounts" } else { "trees" };
        let shown = crate::render::escape(&[mounted.as_slice(), &unmounted].concat().join(" ")).into_owned();
        let mut fields = json!({"mounted": mounted, "unmounted": unmounted, "walked": scope, "files": files,
                                "on_overlayfs": overlays});
        if failed.is_empty() {
            info!(points = shown, files, scope, ?heard_ms, "a mount changed a protected tree; its files are protected");
        } else {
            let errors = failed.join("; ");
            error!(points = shown, "a mount changed a protected tree, and its files are not all protected: {errors}");
            fields["error"] = json!(errors);
        }
        self.record("protected.mounts", fields);
    }

    /// The trees of the policy in force.
    pub(super) fn protected_trees(&self) -> Vec<String> {
        self.policy.as_ref().map(|policy| policy.policy.protect.clone()).unwrap_or_default()
    }

    /// The roots of the policy's trees and Warrant's own paths with their trees, as
    /// written and as the kernel sees them (a tree through /lib on a
    /// merged-/usr host is mounted on at /usr/lib). Kept for the policy in
    /// force unless `resolve_again`: resolving ~40 paths took ~30 ms in
    /// the emulated VM, moments a subject may write a new mount's files in.
    fn mount_roots(&mut self, resolve_again: bool) -> Vec<(PathBuf, u32)> {
        let version = self.policy.as_ref().map_or(0, |policy| policy.version());
        if let Some((kept, roots)) = &self.mount_roots
            && *kept == version
            && !resolve_again
        {
            return roots.clone();
        }
        let roots: Vec<(PathBuf, u32)> = self
            .protected_trees()
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
    /// policy change (at the apply, and the 2 s tick).
    pub(super) fn resolve_mount_roots(&mut self) {
        let version = self.policy.as_ref().map_or(0, |policy| policy.version());
        if self.mount_roots.as_ref().is_none_or(|(kept, _)| *kept != version) {
            self.mount_roots(true);
        }
    }

    /// Before every tree's walk (~1 s for ~660 files in the emulated VM),
    /// gives the roots at or below `points` their files' entries as
    /// [`Self::protect_subtree`] does, Warrant's own first, then deepest
    /// first (a tree inside another keeps its files): a mount over a
    /// tree's root is then decided from the moment its root directory has
    /// its entry. Failures are the walk's to report.
    fn protect_roots_under(&mut self, points: &[&PathBuf], roots: &[(PathBuf, u32)]) {
        let mut under: Vec<&(PathBuf, u32)> =
            roots.iter().filter(|(root, _)| points.iter().any(|point| root.starts_with(point))).collect();
        under.sort_by_key(|(root, tree)| (*tree != SELF_TREE, std::cmp::Reverse(root.components().count())));
        for (root, tree) in under {
            let _ = self.protect_subtree(root, *tree);
        }
    }

    /// Gives each inode under `point` (itself first) tree `tree`'s entry as
    /// the walk finds it: a directory has its entry before it is read, so a
    /// file made in it meanwhile is the walk's or, made after, the tree's
    /// already (a subject's create is decided; `d_instantiate` gives
    /// root's its entry). How many inodes it walked, and why it stopped.
    fn protect_subtree(&mut self, point: &Path, tree: u32) -> (usize, Option<String>) {
        let (entry, mut files) = (ProtectedEntry { tree, flags: 0 }, 0);
        let walked = protect::walk(point, |_, key| {
            files += 1;
            if files > protect::MAX_INODES {
                return Err(protect::ProtectError::TooMany.to_string());
            }
            self.kernel.add_missing_protected_entry(key, entry).map_err(|e| error_chain(&e))
        });
        (files, walked.err())
    }
}

/// The key an apply's walk gives the root of the mount at `point`, by a
/// stat that neither triggers an automount nor asks a network file system's
/// server (the 2 s tick makes it, on the daemon's owner thread). None for a
/// root with no name left (a bind-mounted file renamed over or removed:
/// its entry went with its last name, and put back would outlive it).
fn mount_root_key(point: &Path) -> Option<FileKey> {
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | libc::AT_STATX_DONT_SYNC;
    let stx = protect::statx(point, flags, libc::STATX_INO | libc::STATX_NLINK).filter(|stx| stx.stx_nlink > 0)?;
    let dev = protect::kernel_dev(libc::makedev(stx.stx_dev_major, stx.stx_dev_minor));
    Some(FileKey { dev, ino: stx.stx_ino })
}

fn text<'a>(points: impl IntoIterator<Item = &'a PathBuf>) -> Vec<String> {
    points.into_iter().map(|point| point.to_string_lossy().into_owned()).collect()
}

/// Whether a mount at `point` is at, in or above `root`: it adds, hides or
/// uncovers files of the tree.
fn touches(point: &Path, root: &Path) -> bool {
    root.starts_with(point) || point.starts_with(root)
}

/// The walks that protect what mounts at `points` added or uncovered: each
/// point inside a root, with no root at or below it, alone, as the nearest
/// root's tree (Warrant's own if one is: as an apply's walk gives it), as
/// an apply's walk of every tree takes ~1 s for ~660 files in the emulated
/// VM, a subject writing meanwhile. None when one is at or above a root:
/// then every tree is walked again (its name guarded, the directories
/// above it, the trees inside it).
fn walks(points: &[&PathBuf], roots: &[(PathBuf, u32)]) -> Option<Vec<(PathBuf, u32)>> {
    points
        .iter()
        .map(|point| {
            if roots.iter().any(|(root, _)| root.starts_with(point)) {
                return None;
            }
            let containing = roots.iter().filter(|(root, _)| point.starts_with(root));
            let nearest = containing.max_by_key(|(root, tree)| (*tree == SELF_TREE, root.components().count()));
            nearest.map(|(_, tree)| ((*point).clone(), *tree))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(points: &[(u64, &str)]) -> MountPoints {
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
        assert_eq!(walks(&[&deep, &warrant], &roots), Some(vec![(deep.clone(), 8), (warrant.clone(), 9)]));
        // Warrant's own root wins over a policy's inside it.
        let own = [(PathBuf::from("/var/lib/warrant"), SELF_TREE), ("/var/lib/warrant/policy-tree".into(), 3)];
        let inside = PathBuf::from("/var/lib/warrant/policy-tree/x");
        assert_eq!(walks(&[&inside], &own), Some(vec![(inside.clone(), SELF_TREE)]));
        // One above a root (or at it) takes every tree's walk.
        for point in ["/etc/nft/sub", "/etc/nft", "/etc"] {
            assert_eq!(walks(&[&deep, &PathBuf::from(point)], &roots), None, "{point}");
        }
    }

    #[test]
    fn mount_points_are_read_as_bytes_and_unescaped() {
        let mountinfo = b"22 1 0:21 / / rw - ext4 /dev/root rw\n\
            95 22 0:50 / /etc/nft/a\\040b rw - tmpfs x rw\n\
            96 22 0:51 / /etc/nft/\xff rw - tmpfs y rw\n";
        let points = parse_points(mountinfo);
        let expected: Vec<(u64, PathBuf)> = vec![
            (22, "/".into()),
            (95, "/etc/nft/a b".into()),
            (96, PathBuf::from(std::ffi::OsString::from_vec(b"/etc/nft/\xff".to_vec()))),
        ];
        assert_eq!(points.into_iter().collect::<Vec<_>>(), expected);
    }
}
