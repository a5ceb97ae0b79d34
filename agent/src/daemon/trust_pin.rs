//! The configuration's trust root (version 0), pinned. The configuration
//! names key files, and on some hosts those files are new inodes at every
//! start (a DaemonSet's Secret), unprotected until the daemon runs: without
//! a pin, whoever swapped them before a start would choose the keys bundles
//! are checked against. The pin lives in the state directory, which
//! subjects can neither write nor remove while enforcement is on (the
//! daemon down included).
//!
//! A host's first keys are pinned when nothing says otherwise: a fresh
//! state directory, or a persisted policy the keys verify (an upgrade).
//! Keys that differ from the pin, or that do not verify what this host
//! already accepted, are "unsettled": the policy in force stays, no new
//! bundle or rotation is accepted, and root settles it with `warrant trust
//! accept-config` (or puts the configuration back).

use std::{fs, path::Path, path::PathBuf};

use crate::{
    durable::write_atomic,
    trust_root::{TrustRoot, TrustRootError},
};

/// Why the pin could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("the pinned trust root {path} is damaged (remove it as root to pin the configuration's keys again)")]
    Damaged {
        path: String,
        #[source]
        source: TrustRootError,
    },
    #[error("cannot read the pinned trust root {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the trust root cannot be written out (check trusted_keys and policy_threshold)")]
    Unwritable,
    #[error("the trust root does not read back as itself (check trusted_keys and policy_threshold)")]
    NotItself {
        #[source]
        source: Option<TrustRootError>,
    },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the pinned root is kept.
pub fn pin_path(state_dir: &Path) -> PathBuf {
    state_dir.join("trust-root-v0.toml")
}

/// What the pin says of the configuration's root.
#[derive(Debug, PartialEq, Eq)]
pub enum Pin {
    /// The configuration's root is the pinned one.
    Same,
    /// Nothing pinned yet (the caller pins once it knows the keys verify
    /// what the host already holds).
    Unpinned,
    /// The configuration names other keys (or threshold) than the pin:
    /// the pinned root stays version 0.
    ConfigDiffers { config: TrustRoot },
}

/// Version 0 of the trust chain, given the configuration's root: the pinned
/// one if there is one, else the configuration's.
pub fn settle(state_dir: &Path, config: TrustRoot) -> Result<(TrustRoot, Pin), PinError> {
    let path = pin_path(state_dir);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let pinned = TrustRoot::parse(&text)
                .map_err(|source| PinError::Damaged { path: path.display().to_string(), source })?;
            let pin = if pinned.same_keys_as(&config) { Pin::Same } else { Pin::ConfigDiffers { config } };
            Ok((pinned, pin))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((config, Pin::Unpinned)),
        Err(source) => Err(PinError::Read { path: path.display().to_string(), source }),
    }
}

/// Pins `root` as version 0, checked to read back as itself.
pub fn pin(state_dir: &Path, root: &TrustRoot) -> Result<(), PinError> {
    let text = root.to_text().ok_or(PinError::Unwritable)?;
    match TrustRoot::parse(&text) {
        Ok(back) if back.same_keys_as(root) && back.version == 0 => {}
        Ok(_) => return Err(PinError::NotItself { source: None }),
        Err(e) => return Err(PinError::NotItself { source: Some(e) }),
    }
    let path = pin_path(state_dir);
    write_atomic(&path, text.as_bytes()).map_err(|source| PinError::Write { path: path.display().to_string(), source })
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
    fn a_pinned_root_stays_and_other_keys_are_only_reported() {
        let dir = std::env::temp_dir().join(format!("warrant-trust-pin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let dir = Dir(dir);
        assert_eq!(settle(dir.path(), root(&[1, 2], 1)).unwrap(), (root(&[1, 2], 1), Pin::Unpinned));
        assert!(!pin_path(dir.path()).exists(), "settling pins nothing");
        // A root that would not read back is not pinned.
        assert!(pin(dir.path(), &root(&[1, 2], 3)).unwrap_err().to_string().contains("threshold"));
        assert!(pin(dir.path(), &root(&[], 1)).is_err());
        assert!(!pin_path(dir.path()).exists());
        pin(dir.path(), &root(&[1, 2], 1)).unwrap();
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
