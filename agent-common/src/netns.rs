//! Network namespace pinning, the one mount a subject may make.
//!
//! `ip netns add NAME` creates the namespace with unshare(CLONE_NEWNET),
//! which `netns.create` decides, and then pins it so it outlives the process:
//! it marks /run/netns shared and bind-mounts /proc/self/ns/net (or
//! /proc/PID/task/TID/ns/net) onto /run/netns/NAME. Self-protection refuses
//! subjects every other mount. These checks say whether a mount call is
//! exactly one of those two steps; the kernel side also checks that the
//! target is on tmpfs.

/// Bytes of a mount source the kernel reads (with its NUL).
pub const SOURCE_LEN: usize = 48;

/// `MS_REC`, `MS_SILENT` and the propagation flags.
const MS_REC: u64 = 0x4000;
const MS_SILENT: u64 = 0x8000;
const MS_PROPAGATION: u64 = (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20);
/// `MS_BIND`.
pub const MS_BIND: u64 = 0x1000;

/// `MS_SHARED`.
const MS_SHARED: u64 = 1 << 20;

/// Making a mount shared (`mount --make-shared`), the one propagation change
/// `ip netns` makes: nothing is mounted. (Unbindable or private would hide
/// the pins under /run/netns from the daemon's look beneath them.)
pub fn is_propagation_change(flags: u64) -> bool {
    flags & MS_PROPAGATION == MS_SHARED && flags & !(MS_PROPAGATION | MS_REC | MS_SILENT) == 0
}

/// A plain bind mount (no recursion, no other flags).
pub fn is_plain_bind(flags: u64) -> bool {
    flags & !MS_SILENT == MS_BIND
}

/// Whether `name` (NUL-padded) is `netns`, the directory pins live in.
pub fn is_netns_dir_name(name: &[u8; 8]) -> bool {
    name[0] == b'n' && name[1] == b'e' && name[2] == b't' && name[3] == b'n' && name[4] == b's' && name[5] == 0
}

/// Whether a mount source is a process's network namespace file under
/// /proc: `/proc/SEG/ns/net` or `/proc/SEG/task/DIGITS/ns/net`, where SEG is
/// `self`, `thread-self` or DIGITS. Nothing else under /proc qualifies, so a
/// subject cannot route the bind through `/proc/self/cwd` or `root` to a file
/// of its choosing. Written with fixed bounds for the verifier.
pub fn is_proc_netns_path(path: &[u8; SOURCE_LEN]) -> bool {
    const PREFIX: &[u8; 6] = b"/proc/";
    const SUFFIX: &[u8; 7] = b"/ns/net";
    let mut len = SOURCE_LEN;
    for (i, &byte) in path.iter().enumerate() {
        if byte == 0 {
            len = i;
            break;
        }
    }
    if len == SOURCE_LEN || len < PREFIX.len() + 1 + SUFFIX.len() {
        return false;
    }
    for i in 0..PREFIX.len() {
        if path[i] != PREFIX[i] {
            return false;
        }
    }
    let middle_end = len - SUFFIX.len();
    for i in 0..SUFFIX.len() {
        if path[(middle_end + i) % SOURCE_LEN] != SUFFIX[i] {
            return false;
        }
    }
    let middle_start = PREFIX.len();
    if equals_at(path, middle_start, middle_end, b"self") || equals_at(path, middle_start, middle_end, b"thread-self") {
        return true;
    }
    // DIGITS, then optionally /task/DIGITS.
    let mut at = middle_start;
    let first = digits_from(path, at, middle_end);
    if first == 0 {
        return false;
    }
    at += first;
    if at == middle_end {
        return true;
    }
    if !starts_at(path, at, middle_end, b"/task/") {
        return false;
    }
    at += 6;
    let second = digits_from(path, at, middle_end);
    second > 0 && at + second == middle_end
}

/// How many ASCII digits run from `at`, stopping at `end`.
fn digits_from(path: &[u8; SOURCE_LEN], at: usize, end: usize) -> usize {
    let mut count = 0;
    for i in 0..SOURCE_LEN {
        let index = at + i;
        if index >= end || index >= SOURCE_LEN || !path[index].is_ascii_digit() {
            break;
        }
        count += 1;
    }
    count
}

fn starts_at<const N: usize>(path: &[u8; SOURCE_LEN], at: usize, end: usize, word: &[u8; N]) -> bool {
    if at + N > end {
        return false;
    }
    for i in 0..N {
        if path[(at + i) % SOURCE_LEN] != word[i] {
            return false;
        }
    }
    true
}

fn equals_at<const N: usize>(path: &[u8; SOURCE_LEN], at: usize, end: usize, word: &[u8; N]) -> bool {
    at + N == end && starts_at(path, at, end, word)
}
