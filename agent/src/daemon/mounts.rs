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
}

impl MountChange {
    /// What changed from `before` to `now`, as (mount id, point) sets.
    fn between(before: &BTreeSet<(u64, PathBuf)>, now: &BTreeSet<(u64, PathBuf)>) -> Self {
        Self {
            mounted: now.difference(before).map(|(_, point)| point.clone()).collect(),
            unmounted: before.difference(now).map(|(_, point)| point.clone()).collect(),
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
        // Cleared before the read: a change from here on wakes the next loop.
        ready.clear_ready();
        // Polling the file again is what the kernel counts as having seen
        // the change (seq_file's poll_event), so that epoll reports the next.
        let mut poll = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLPRI, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut poll, 1, 0) };
        let now = mount_points().doing(doing)?;
        let change = MountChange::between(&seen, &now);
        seen = now;
        if !change.is_empty() {
            owner.ask(|reply| Command::Mounts { change, reply }).await.ok_or(DaemonError::Unanswered)?;
        }
    }
}

impl State {
    /// Walks the trees again when `change` touches one (or Warrant's own
    /// paths), adding the entries the kernel lacks: the files of a file
    /// system mounted there, or those an unmount uncovered. Recorded as
    /// `protected.mounts`, with why not if they find no room.
    pub(super) fn protect_mounts(&mut self, change: &MountChange) {
        let trees = self.policy.as_ref().map(|policy| policy.policy.protect.clone()).unwrap_or_default();
        // As written and as the kernel sees them (a tree through /lib on a
        // merged-/usr host is mounted on at /usr/lib).
        let roots: Vec<PathBuf> = trees
            .iter()
            .map(PathBuf::from)
            .chain(self.config.own_paths())
            .flat_map(|root| [fs::canonicalize(&root).ok(), Some(root)])
            .flatten()
            .collect();
        let touching = |points: &[PathBuf]| -> Vec<String> {
            points
                .iter()
                .filter(|point| touches(point, &roots))
                .map(|point| point.to_string_lossy().into_owned())
                .collect()
        };
        let (mounted, unmounted) = (touching(&change.mounted), touching(&change.unmounted));
        if mounted.is_empty() && unmounted.is_empty() {
            return;
        }
        let shown = crate::render::escape(&[mounted.as_slice(), &unmounted].concat().join(" ")).into_owned();
        // As for a tree on overlayfs (`protected_inodes` warns): its files'
        // entries would have the layers' devices, not the one hooks see.
        let overlays: Vec<String> = protect::on_overlayfs(change.mounted.iter().map(PathBuf::as_path))
            .into_iter()
            .filter(|point| touches(point, &roots))
            .map(|point| point.to_string_lossy().into_owned())
            .collect();
        let walked = self.protected_inodes(&trees).map_err(|e| e.to_string()).and_then(|(entries, _)| {
            self.kernel.add_missing_protected(&entries).map(|()| entries.len()).map_err(|e| error_chain(&e))
        });
        match walked {
            Ok(files) => {
                info!(points = shown, files, "a mount changed a protected tree; its files are protected");
                self.record(
                    "protected.mounts",
                    json!({"mounted": mounted, "unmounted": unmounted, "files": files, "on_overlayfs": overlays}),
                );
            }
            Err(e) => {
                error!(points = shown, "a mount changed a protected tree, and its files are not all protected: {e}");
                self.record(
                    "protected.mounts",
                    json!({"mounted": mounted, "unmounted": unmounted, "error": e, "on_overlayfs": overlays}),
                );
            }
        }
    }
}

/// Whether a mount at `point` is at, in or above one of `roots`: it adds,
/// hides or uncovers files of the tree.
fn touches(point: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| root.starts_with(point) || point.starts_with(root))
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
        let roots = [PathBuf::from("/etc/nft"), PathBuf::from("/var/lib/warrant")];
        let touching: Vec<_> = change.mounted.iter().filter(|point| touches(point, &roots)).collect();
        assert_eq!(touching, [&PathBuf::from("/etc/nft/sub"), &"/etc".into()]);
        // A sibling whose name begins the same is not in the tree.
        assert!(!touches(Path::new("/etc/nft2"), &roots));
        assert!(MountChange::between(&now, &now).is_empty());
    }
}
