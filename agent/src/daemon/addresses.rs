//! Keeping LOCAL_ADDRESSES as the host's local routing table changes (see
//! `crate::local_addresses`): a task hears route changes and, after one of
//! the local table, reads the table again and hands it to the owner.

use std::{io, os::fd::AsRawFd as _, time::Duration};

use super::*;
use crate::local_addresses::{self, LocalPrefix};

/// How long a burst of route changes (an interface coming up adds several)
/// is let settle before the table is read once for all of it.
const SETTLE: Duration = Duration::from_millis(100);
/// How long after a failed read the table is read again.
const RETRY: Duration = Duration::from_secs(1);

/// Hears route changes until the daemon stops; reads the table once at the
/// start too, for changes made since the programs were loaded.
pub(super) async fn watch_local_addresses(owner: Owner) -> Result<(), DaemonError> {
    let socket = local_addresses::watch().doing(|| "cannot hear the host's route changes".into())?;
    // SAFETY: the AsyncFd owns the fd it watches, and closes it last.
    let socket = unsafe { AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) }
        .doing(|| "cannot hear the host's route changes".into())?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut changed = true;
    // A read that keeps failing is recorded once, not every retry.
    let mut failing = false;
    loop {
        if changed {
            tokio::time::sleep(SETTLE).await;
            // Changes heard from here on are read again by the next loop.
            let prefixes = tokio::task::spawn_blocking(local_addresses::dump)
                .await
                .doing(|| "the routing table's reader failed".into())?
                .map_err(|e| e.to_string());
            let failed = prefixes.is_err();
            if !(failed && failing) {
                owner.ask(|reply| Command::LocalAddresses { prefixes, reply }).await.ok_or(DaemonError::Unanswered)?;
            }
            failing = failed;
            if failed {
                // Read again soon, changes or not (ENOBUFS in a burst, say).
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        let mut guard = socket.readable().await.doing(|| "cannot wait for route changes".into())?;
        changed = false;
        loop {
            // SAFETY: writes at most buffer.len() bytes into it.
            let got = unsafe {
                libc::recv(socket.get_ref().as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_DONTWAIT)
            };
            if got >= 0 {
                changed |= local_addresses::local_table_changed(&buffer[..got as usize]);
                continue;
            }
            match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                // The socket's buffer overflowed: changes were missed.
                e if e.raw_os_error() == Some(libc::ENOBUFS) => changed = true,
                e if e.kind() == io::ErrorKind::Interrupted => {}
                e => return Err(e).doing(|| "cannot read route changes".into()),
            }
        }
    }
}

impl State {
    /// Makes the kernel's LOCAL_ADDRESSES `prefixes`, as read (Err: why
    /// not); a failure is logged and recorded (connects to the addresses
    /// missing are not decided meanwhile).
    pub(super) fn set_local_addresses(&mut self, prefixes: &Result<BTreeSet<LocalPrefix>, String>) {
        let prefixes = match prefixes {
            Ok(prefixes) => prefixes,
            Err(e) => {
                error!("cannot read the host's routes to itself: {e}");
                self.record("daemon.local_addresses", json!({"error": e}));
                return;
            }
        };
        match self.kernel.set_local_addresses(prefixes) {
            Ok(change) if change.left_out == 0 => {
                if change.added + change.removed > 0 {
                    info!(added = change.added, removed = change.removed, "the host's addresses changed");
                }
            }
            Ok(change) => {
                error!(left_out = change.left_out, "the host's addresses do not all fit LOCAL_ADDRESSES");
                self.record("daemon.local_addresses", json!({"left_out": change.left_out}));
            }
            Err(e) => {
                error!("cannot update the host's addresses in the kernel: {e}");
                self.record("daemon.local_addresses", json!({"error": error_chain(&e)}));
            }
        }
    }
}
