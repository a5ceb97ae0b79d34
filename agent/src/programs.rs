//! Programs the daemon runs (nft for rollback snapshots, the notify
//! command's shell): named by absolute path from a fixed list of system
//! directories, never by the daemon's PATH, and run with a fixed
//! environment, so that nothing planted in a PATH directory or an
//! environment variable runs as the daemon. The daemon also refuses a
//! program a subject wrote (`State::check_program`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The directories searched, in order, and the PATH programs get.
pub const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The first `DIR/name` of [`SYSTEM_DIRS`] that is a file.
pub fn find(name: &str) -> Option<PathBuf> {
    SYSTEM_DIRS.iter().map(|dir| Path::new(dir).join(name)).find(|path| path.is_file())
}

/// A command for the program at `path` with a fixed environment (PATH of
/// [`SYSTEM_DIRS`], the C locale) and nothing of the daemon's.
pub fn command(path: &Path) -> Command {
    let mut command = Command::new(path);
    command.env_clear().env("PATH", SYSTEM_DIRS.join(":")).env("LC_ALL", "C");
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_system_directories_only() {
        let sh = find("sh").expect("sh is in a system directory");
        assert!(SYSTEM_DIRS.iter().any(|dir| sh.starts_with(dir)));
        assert_eq!(find("no-such-program-anywhere"), None);
    }

    #[test]
    fn the_environment_is_fixed() {
        // SAFETY: a test of its own; no other thread reads this variable.
        unsafe { std::env::set_var("LD_PRELOAD", "/tmp/planted.so") };
        let out = command(&find("env").unwrap()).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains("LD_PRELOAD"), "{text}");
        assert!(text.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), "{text}");
    }
}
