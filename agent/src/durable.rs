//! Writing the daemon's own state so that a crash leaves the old file or
//! the new one, never a torn one, and so that nothing already at a path (a
//! symlink planted there, a file of another owner) is followed or reused:
//! new files are made with O_EXCL and O_NOFOLLOW under a fresh name, their
//! mode and owner set on the fd, then renamed into place.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, fchown},
    path::{Path, PathBuf},
};

/// Opens `path` for writing, truncated, without following a final symlink.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A name beside `path` that nothing has: `.NAME.RANDOM.tmp`.
fn fresh_name(path: &Path) -> PathBuf {
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", hex::encode(nonce)))
}

/// A new file at a fresh name beside `path` (O_CREAT|O_EXCL|O_NOFOLLOW).
fn create_beside(path: &Path, mode: u32) -> std::io::Result<(File, PathBuf)> {
    let tmp = fresh_name(path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    Ok((file, tmp))
}

/// Writes `bytes` to `path` atomically (mode 0600): a new fsynced file
/// beside it, renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_file(path, bytes, 0o600, None)
}

/// Puts `bytes` at `path` with `mode` (and `owner`, uid and gid), set on
/// the new file's fd before it is renamed over `path`; the directory is
/// fsynced after. On failure the new file is removed and `path` untouched.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let (mut file, tmp) = create_beside(path, 0o600)?;
    let written = (|| {
        file.write_all(bytes)?;
        if let Some((uid, gid)) = owner {
            fchown(&file, Some(uid), Some(gid))?;
        }
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return written;
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent).and_then(|d| d.sync_all()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_neither_followed_nor_reused() {
        let dir = std::env::temp_dir().join(format!("warrant-durable-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "root's").unwrap();
        let state = dir.join("state.json");
        std::os::unix::fs::symlink(&victim, &state).unwrap();
        assert!(write_synced(&state, b"x").is_err(), "write_synced followed a symlink");
        write_atomic(&state, b"new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root's");
        assert_eq!(fs::read_to_string(&state).unwrap(), "new");
        assert!(fs::symlink_metadata(&state).unwrap().is_file());
        replace_file(&state, b"mode", 0o640, None).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "a temporary file was left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
