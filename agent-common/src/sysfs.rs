//! sysfs attributes whose write stops a device or a file system, which a
//! subject may never write (`self.device`), whatever the policy says: the
//! disk under the audit log, its controller or its driver would go, and
//! with them every record still to be written. Known by the attribute's own
//! name, wherever it sits in sysfs, because the same names mean the same
//! thing under every bus: a kernel can add a writable attribute of another
//! name that does as much (see tests/BYPASS.md).

/// Bytes of a name compared, its NUL included: longer names match none.
pub const NAME_BYTES: usize = 24;

/// A name as the kernel program reads it: [`NAME_BYTES`] bytes, NUL-padded,
/// as little-endian words.
pub type NameWords = [u64; NAME_BYTES / 8];

/// The attributes:
/// - `delete`: a SCSI disk's device goes (/sys/block/sda/device/delete);
/// - `remove`, `remove_single_major`: a PCI, USB or other bus device, or
///   an rbd disk, goes, a disk's controller with it;
/// - `unbind`, `unregister`, `detach`: a driver lets go of a device
///   (/sys/bus/*/drivers/*/unbind), bcache lets go of its disk;
/// - `reset`, `host_reset`, `reset_controller`, `hard_reset`, `link_reset`:
///   a PCI function, a zram disk, a SCSI host, an NVMe controller or a SAS
///   link is reset under its users;
/// - `delete_controller`: an NVMe controller goes;
/// - `enable` (a PCI device disabled under its driver), `config` (its
///   configuration space: bus mastering off, a bus reset), `authorized`,
///   `bConfigurationValue` and a port's `disable` (a USB device
///   disconnected), `power` (a PCI hotplug slot powered off);
/// - `state`: a SCSI device set `offline`, the host suspended
///   (/sys/power/state), a memory block or an md member changed;
/// - `array_state`: an md array stopped or made read-only; `stop`: a
///   bcache device stopped;
/// - `trigger_fs_error`: ext4 fails as if corrupt (read-only under
///   errors=remount-ro, a panic under errors=panic);
///   `reserved_clusters`: ext4's free space reserved, so that every write
///   fails with ENOSPC, root's too; `write_cache`, `cache_type`: a disk's
///   cache said to be write-through, so that a crash loses what was
///   written; `shutdown`: an NFS mount's every call fails (6.5);
/// - `timeout`, `eh_timeout`, `io_timeout`: a disk's commands time out at
///   once, and fail; `make-it-fail`: fault injection fails its I/O;
/// - `uevent`: a device's event replayed to root's device manager
///   (`remove` has systemd stop the mounts bound to the device); a network
///   device's (a `uevent` under a `net` directory) is decided as
///   `net.link.set` instead, as its other attributes are.
///
/// And every name that begins with [`RESOURCE_PREFIX`].
pub const DEVICE_STOPPING: [&str; 31] = [
    "delete",
    "remove",
    "remove_single_major",
    "unbind",
    "unregister",
    "detach",
    "reset",
    "host_reset",
    "reset_controller",
    "hard_reset",
    "link_reset",
    "delete_controller",
    "enable",
    "config",
    "authorized",
    "bConfigurationValue",
    "disable",
    "power",
    "state",
    "array_state",
    "stop",
    "trigger_fs_error",
    "reserved_clusters",
    "write_cache",
    "cache_type",
    "shutdown",
    "timeout",
    "eh_timeout",
    "io_timeout",
    "make-it-fail",
    "uevent",
];

/// `resource`, as the first word of a name: a PCI device's BARs
/// (`resource0`, `resource0_wc`...), whose writes and shared mappings
/// reach the device's registers.
pub const RESOURCE_PREFIX: u64 = u64::from_le_bytes(*b"resource");

/// [`DEVICE_STOPPING`] as the kernel program compares them.
pub const DEVICE_STOPPING_WORDS: [NameWords; DEVICE_STOPPING.len()] = {
    let mut words = [[0; NAME_BYTES / 8]; DEVICE_STOPPING.len()];
    let mut i = 0;
    while i < DEVICE_STOPPING.len() {
        words[i] = name_words(DEVICE_STOPPING[i].as_bytes());
        i += 1;
    }
    words
};

/// `name`'s words: its first [`NAME_BYTES`] - 1 bytes, NUL-padded, as
/// `bpf_probe_read_kernel_str` leaves them in a zeroed buffer.
pub const fn name_words(name: &[u8]) -> NameWords {
    let mut words = [0u64; NAME_BYTES / 8];
    let mut i = 0;
    while i < name.len() && i < NAME_BYTES - 1 {
        words[i / 8] |= (name[i] as u64) << ((i % 8) * 8);
        i += 1;
    }
    words
}

/// `uevent`'s words: the one listed name a network device's attribute may
/// have, decided as a link change there.
pub const UEVENT_WORDS: NameWords = name_words(b"uevent");

/// Whether the attribute named by `words` stops a device. The listed
/// names differ in their first word (a plain test checks it), so one
/// comparison a name finds the candidate and two more confirm it: fewer
/// branches for the verifier than three a name.
#[inline(always)]
pub fn stops_a_device_named(words: &NameWords) -> bool {
    if words[0] == RESOURCE_PREFIX {
        return true;
    }
    let mut i = 0;
    while i < DEVICE_STOPPING_WORDS.len() {
        if DEVICE_STOPPING_WORDS[i][0] == words[0] {
            return DEVICE_STOPPING_WORDS[i][1] == words[1] && DEVICE_STOPPING_WORDS[i][2] == words[2];
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listed_name_is_known_and_its_neighbours_are_not() {
        for name in DEVICE_STOPPING {
            assert!(stops_a_device_named(&name_words(name.as_bytes())), "{name}");
        }
        for resource in ["resource", "resource0", "resource5_wc"] {
            assert!(stops_a_device_named(&name_words(resource.as_bytes())), "{resource}");
        }
        // Names that share a listed one's first word, and differ after it.
        for other in ["remove_single_minor", "shutdownx", "write_cachex", "trigger_fs_error_"] {
            assert!(!stops_a_device_named(&name_words(other.as_bytes())), "{other}");
        }
        for other in ["mtu", "deleted", "delet", "removed", "bind", "new_id", "states", "", "online", "scan", "resourc"]
        {
            assert!(!stops_a_device_named(&name_words(other.as_bytes())), "{other}");
        }
    }

    #[test]
    fn listed_names_differ_in_their_first_word() {
        for (at, words) in DEVICE_STOPPING_WORDS.iter().enumerate() {
            assert_ne!(words[0], RESOURCE_PREFIX, "{}", DEVICE_STOPPING[at]);
            for other in &DEVICE_STOPPING_WORDS[at + 1..] {
                assert_ne!(words[0], other[0], "{}", DEVICE_STOPPING[at]);
            }
        }
    }

    #[test]
    fn a_long_name_is_cut_as_the_kernel_read_cuts_it() {
        let long = "trigger_fs_error_and_more_besides";
        let words = name_words(long.as_bytes());
        let mut bytes = [0u8; NAME_BYTES];
        for (at, word) in words.iter().enumerate() {
            bytes[at * 8..at * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        assert_eq!(&bytes[..NAME_BYTES - 1], &long.as_bytes()[..NAME_BYTES - 1]);
        assert_eq!(bytes[NAME_BYTES - 1], 0);
        assert!(!stops_a_device_named(&words));
    }
}
