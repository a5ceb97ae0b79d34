//! A restart onto the same programs keeps the attached ones: the daemon
//! takes the pinned maps and links as they are and loads, verifies and
//! attaches nothing again. Attaching again would change nothing, yet it
//! costs a verification of every program and rewrites each hook's
//! trampoline, live kernel text, twice (the new link in, the old one out).
//! A marker directory in the pin root names what the links were attached
//! for: this object, this mode and this kernel's struct layout.

use std::io;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::Mode;

const MARKER: &str = "attached-";

/// What the attached programs were made from.
pub fn fingerprint(object: &[u8], mode: &Mode, kernel_offsets: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(object);
    hash.update(mode.name().as_bytes());
    hash.update(kernel_offsets);
    hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the pinned links were attached for `fingerprint`.
pub fn marked(pin_root: &Path, fingerprint: &str) -> bool {
    pin_root.join(format!("{MARKER}{fingerprint}")).is_dir()
}

/// Whether the links pinned under `links` are exactly `expected`: none
/// lost (a crash between two attaches, a pin removed by hand), none extra.
pub fn links_are(links: &Path, expected: &[&str]) -> bool {
    let Ok(entries) = std::fs::read_dir(links) else { return false };
    let mut pinned: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let mut expected: Vec<&str> = expected.to_vec();
    pinned.sort();
    expected.sort_unstable();
    pinned.iter().map(String::as_str).eq(expected)
}

/// Removes the marker before the links change, so that a daemon that dies
/// halfway leaves none.
pub fn forget(pin_root: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(pin_root)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(MARKER) {
            std::fs::remove_dir(entry.path())?;
        }
    }
    Ok(())
}

/// Marks the links, all attached, as attached for `fingerprint`.
pub fn mark(pin_root: &Path, fingerprint: &str) -> io::Result<()> {
    std::fs::create_dir(pin_root.join(format!("{MARKER}{fingerprint}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_the_object_the_mode_and_the_layout() {
        let lsm = Mode::BpfLsm;
        let fmod = Mode::ModifyReturn { active_lsms: "capability".into() };
        let base = fingerprint(b"object", &lsm, &[1, 2]);
        assert_eq!(base.len(), 32);
        assert_eq!(base, fingerprint(b"object", &lsm, &[1, 2]));
        assert_ne!(base, fingerprint(b"object2", &lsm, &[1, 2]));
        assert_ne!(base, fingerprint(b"object", &fmod, &[1, 2]));
        assert_ne!(base, fingerprint(b"object", &lsm, &[1, 3]));
    }

    #[test]
    fn links_are_reused_only_when_every_one_is_there_and_no_other() {
        let dir = std::env::temp_dir().join(format!("warrant-reuse-{}", std::process::id()));
        let links = dir.join("links");
        std::fs::create_dir_all(&links).unwrap();
        for name in ["a", "b"] {
            std::fs::write(links.join(name), "").unwrap();
        }
        assert!(links_are(&links, &["b", "a"]));
        assert!(!links_are(&links, &["a"]));
        assert!(!links_are(&links, &["a", "b", "c"]));
        assert!(!marked(&dir, "f00"));
        mark(&dir, "f00").unwrap();
        assert!(marked(&dir, "f00") && !marked(&dir, "f01"));
        forget(&dir).unwrap();
        assert!(!marked(&dir, "f00"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
