//! The configuration's trust root (version 0), pinned on first use. The
//! configuration names key files, and on some hosts those files are new
//! inodes at every start (a DaemonSet's Secret), unprotected until the
//! daemon runs: without a pin, whoever swapped them before a start would
//! choose the keys bundles are checked against. The pin lives in the state
//! directory, which subjects can neither write nor remove, also while the
//! daemon is down. Keys change by a signed rotation (`warrant trust
//! rotate`), or by root with `warrant trust accept-config`.

use std::{fs, path::Path, path::PathBuf};

use anyhow::Context as _;

use crate::{durable::write_atomic, trust_root::TrustRoot};

/// Where the pinned root is kept.
pub fn pin_path(state_dir: &Path) -> PathBuf {
    state_dir.join("trust-root-v0.toml")
}

/// What settling the configuration's root against the pin found.
#[derive(Debug, PartialEq, Eq)]
pub enum Pin {
    /// Pinned now: the first start with keys.
    Made,
    /// The configuration's root is the pinned one.
    Same,
    /// The configuration names other keys (or threshold): the pinned root
    /// stays in force.
    ConfigDiffers { config: TrustRoot },
    /// No keys configured and none pinned.
    Nothing,
}

/// The root to use as version 0, given the configuration's: the pinned one
/// if there is one, else the configuration's, pinned now if it has keys.
pub fn settle(state_dir: &Path, config: TrustRoot) -> anyhow::Result<(TrustRoot, Pin)> {
    let path = pin_path(state_dir);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let pinned = TrustRoot::parse(&text).with_context(|| {
                format!(
                    "the pinned trust root {} is damaged (remove it as root to pin the configuration's keys again)",
                    path.display()
                )
            })?;
            let pin = if pinned.same_keys_as(&config) { Pin::Same } else { Pin::ConfigDiffers { config } };
            Ok((pinned, pin))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if config.keys.is_empty() {
                return Ok((config, Pin::Nothing));
            }
            pin(state_dir, &config)?;
            Ok((config, Pin::Made))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the pinned trust root {}", path.display())),
    }
}

/// Pins `root` as version 0.
pub fn pin(state_dir: &Path, root: &TrustRoot) -> anyhow::Result<()> {
    let path = pin_path(state_dir);
    write_atomic(&path, root.to_text().as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;

    fn root(seeds: &[u8], threshold: usize) -> TrustRoot {
        let keys = seeds
            .iter()
            .map(|s| PublicKey::from(ed25519_dalek::SigningKey::from_bytes(&[*s; 32]).verifying_key()))
            .collect();
        TrustRoot { version: 0, threshold, keys }
    }

    #[test]
    fn the_first_keys_are_pinned_and_later_ones_only_reported() {
        let dir = std::env::temp_dir().join(format!("warrant-trust-pin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let dir = Dir(dir);
        assert_eq!(settle(dir.path(), root(&[], 1)).unwrap().1, Pin::Nothing);
        assert!(!pin_path(dir.path()).exists(), "no keys, no pin");
        let (used, found) = settle(dir.path(), root(&[1, 2], 1)).unwrap();
        assert_eq!((used, found), (root(&[1, 2], 1), Pin::Made));
        // Same keys in another order: the same root.
        assert_eq!(settle(dir.path(), root(&[2, 1], 1)).unwrap().1, Pin::Same);
        // Another key, or another threshold: the pinned root stays.
        for other in [root(&[3], 1), root(&[1, 2], 2), root(&[1], 1)] {
            let (used, found) = settle(dir.path(), other.clone()).unwrap();
            assert_eq!(used, root(&[1, 2], 1));
            assert_eq!(found, Pin::ConfigDiffers { config: other });
        }
        // Accepted by root: pinned anew.
        pin(dir.path(), &root(&[3], 1)).unwrap();
        assert_eq!(settle(dir.path(), root(&[3], 1)).unwrap().1, Pin::Same);
        fs::write(pin_path(dir.path()), "version = ").unwrap();
        assert!(settle(dir.path(), root(&[3], 1)).unwrap_err().to_string().contains("damaged"));
    }

    /// A directory removed when the test ends.
    struct Dir(PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
