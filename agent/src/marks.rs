//! Marks on disk: the daemon's copy of the kernel's MARKS map (files
//! subjects wrote), so that a reboot, which empties the pinned map, does
//! not clear them. A device number is not stable across boots (anonymous
//! devices such as tmpfs, overlayfs and btrfs are numbered as they are
//! mounted), so each mark is saved with its file system's mount point and
//! put back on whatever device is mounted there then. One line per mark:
//! `MOUNT_POINT INO GENERATION PROFILE_ID`, the mount point as
//! /proc/self/mountinfo writes it (spaces escaped).

use std::{collections::HashMap, path::Path};

use thiserror::Error;
use warrant_common::{FileKey, Mark};

/// The file under the state directory.
pub const FILE_NAME: &str = "marks";

#[derive(Debug, Error)]
pub enum MarksFileError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}, line {line}: {reason}")]
    Malformed { path: String, line: usize, reason: &'static str },
}

/// Mounted file systems: (mount id, device in the kernel's encoding, mount
/// point), in /proc/self/mountinfo's order.
pub struct Mounts(Vec<(u64, u64, String)>);

impl Mounts {
    /// Parses /proc/self/mountinfo text.
    pub fn parse(mountinfo: &str) -> Self {
        let mounts = mountinfo
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let id = fields.first()?.parse::<u64>().ok()?;
                let (major, minor) = fields.get(2)?.split_once(':')?;
                let dev = (major.parse::<u64>().ok()? << 20) | minor.parse::<u64>().ok()?;
                Some((id, dev, (*fields.get(4)?).to_owned()))
            })
            .collect();
        Self(mounts)
    }

    /// The device of mount `id` (statx's `stx_mnt_id`).
    pub fn device_of_mount(&self, id: u64) -> Option<u64> {
        self.0.iter().find(|(i, ..)| *i == id).map(|(_, dev, _)| *dev)
    }

    /// The table now. A point that is not UTF-8 comes out altered (its
    /// line only): mountinfo does not escape such bytes.
    pub fn current() -> Self {
        Self::parse(&String::from_utf8_lossy(&std::fs::read("/proc/self/mountinfo").unwrap_or_default()))
    }

    /// Every mount point, unescaped.
    pub fn points(&self) -> impl Iterator<Item = std::path::PathBuf> + '_ {
        use std::os::unix::ffi::OsStringExt as _;
        self.0.iter().map(|(.., point)| std::ffi::OsString::from_vec(unescape_octal(point.as_bytes())).into())
    }

    /// Where device `dev` is mounted (its first mount).
    pub fn mount_point(&self, dev: u64) -> Option<&str> {
        self.0.iter().find(|(_, d, _)| *d == dev).map(|(.., point)| point.as_str())
    }

    /// The device mounted at `point` now (the last mount there).
    fn device(&self, point: &str) -> Option<u64> {
        self.0.iter().rev().find(|(.., p)| p == point).map(|(_, dev, _)| *dev)
    }
}

/// `text` with mountinfo's escapes (`\040` for a space) undone.
pub(crate) fn unescape_octal(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], digits) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, b| n.wrapping_mul(8).wrapping_add(b - b'0')));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Renders `marks` (those on a mounted device), sorted so that equal sets
/// give equal files.
pub fn render(marks: &HashMap<FileKey, Mark>, mounts: &Mounts) -> String {
    let mut lines: Vec<String> = marks
        .iter()
        .filter_map(|(key, mark)| {
            let point = mounts.mount_point(key.dev)?;
            Some(format!("{point} {} {} {}", key.ino, mark.generation, mark.profile_id))
        })
        .collect();
    lines.sort();
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Parses what [`render`] wrote, onto the devices mounted now; marks of a
/// mount point nothing is mounted at are left out.
pub fn parse(text: &str, path: &str, mounts: &Mounts) -> Result<HashMap<FileKey, Mark>, MarksFileError> {
    let mut marks = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |reason| MarksFileError::Malformed { path: path.to_owned(), line: index + 1, reason };
        let [point, ino, generation, profile_id] = line.split(' ').collect::<Vec<_>>()[..] else {
            return Err(malformed("expected MOUNT_POINT INO GENERATION PROFILE_ID"));
        };
        let (Ok(ino), Ok(generation), Ok(profile_id)) = (ino.parse(), generation.parse(), profile_id.parse()) else {
            return Err(malformed("inode, generation and profile id are numbers"));
        };
        if let Some(dev) = mounts.device(point) {
            marks.insert(FileKey { dev, ino }, Mark { profile_id, generation });
        }
    }
    Ok(marks)
}

/// The marks saved under `state_dir` (none if the file is missing).
pub fn load(state_dir: &Path) -> Result<HashMap<FileKey, Mark>, MarksFileError> {
    let path = state_dir.join(FILE_NAME);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &shown, &Mounts::current()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(source) => Err(MarksFileError::Io { path: shown, source }),
    }
}

/// Saves `marks` under `state_dir`, atomically; the saved marks of a file
/// system not mounted now (an automount, a disk not back yet) are kept.
pub fn save(state_dir: &Path, marks: &HashMap<FileKey, Mark>) -> Result<(), MarksFileError> {
    let path = state_dir.join(FILE_NAME);
    let mounts = Mounts::current();
    let mut text = render(marks, &mounts);
    if let Ok(saved) = std::fs::read_to_string(&path) {
        for line in saved.lines().filter(|l| l.split(' ').next().is_some_and(|point| mounts.device(point).is_none())) {
            text.push_str(line);
            text.push('\n');
        }
    }
    crate::durable::write_atomic(&path, text.as_bytes())
        .map_err(|source| MarksFileError::Io { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "23 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                             48 23 0:40 / /usr rw - overlay o rw\n\
                             49 23 0:41 / /mnt/my\\040disk rw - tmpfs t rw\n";

    #[test]
    fn marks_survive_a_round_trip() {
        let mounts = Mounts::parse(MOUNTINFO);
        let marks = HashMap::from([
            (FileKey { dev: 8 << 20 | 1, ino: 1234 }, Mark { profile_id: 7, generation: 99 }),
            (FileKey { dev: 40, ino: 1 }, Mark { profile_id: u32::MAX, generation: 0 }),
            (FileKey { dev: 41, ino: 5 }, Mark { profile_id: 3, generation: 4 }),
        ]);
        assert_eq!(parse(&render(&marks, &mounts), "marks", &mounts).unwrap(), marks);
    }

    #[test]
    fn marks_follow_their_mount_point_to_another_device() {
        let before = Mounts::parse(MOUNTINFO);
        let marks = HashMap::from([(FileKey { dev: 40, ino: 1 }, Mark { profile_id: 7, generation: 0 })]);
        let text = render(&marks, &before);
        // After a reboot overlayfs at /usr is device 0:52, and /mnt/my disk is not mounted.
        let after = Mounts::parse("23 1 8:1 / / rw - ext4 /dev/sda1 rw\n60 23 0:52 / /usr rw - overlay o rw\n");
        let restored = parse(&format!("{text}/mnt/my\\040disk 5 4 3\n"), "marks", &after).unwrap();
        assert_eq!(restored, HashMap::from([(FileKey { dev: 52, ino: 1 }, Mark { profile_id: 7, generation: 0 })]));
    }

    #[test]
    fn mount_points_come_unescaped() {
        let points: Vec<_> = Mounts::parse(MOUNTINFO).points().collect();
        let expected: Vec<std::path::PathBuf> = ["/", "/usr", "/mnt/my disk"].iter().map(Into::into).collect();
        assert_eq!(points, expected);
        assert_eq!(unescape_octal(b"a\\134b\\0x\\"), b"a\\b\\0x\\");
    }

    #[test]
    fn a_malformed_line_is_named() {
        let mounts = Mounts::parse(MOUNTINFO);
        let error = parse("/ 2 3 4\n/ 2 x 4\n", "/var/lib/warrant/marks", &mounts).unwrap_err();
        assert_eq!(error.to_string(), "/var/lib/warrant/marks, line 2: inode, generation and profile id are numbers");
        assert!(parse("/ 2 3\n", "m", &mounts).is_err());
        assert!(parse("/ 2 4294967296 4\n", "m", &mounts).is_err());
    }
}
