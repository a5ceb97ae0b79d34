//! sysfs attributes a subject's write is decided on by name, whichever
//! path reached them: a network device's (decided as `net.link.set`) and
//! those that stop a device or a file system (refused, `self.device`).
//! `files` asks both at every write open and every write through an fd.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use warrant_common::sysfs::{NAME_BYTES, NameWords, UEVENT_WORDS, stops_a_device_named};

use crate::{
    files::FileFacts,
    maps::offset,
    policy::{as_number, read_kernel},
};

/// `SYSFS_MAGIC`.
const SYSFS_MAGIC: u64 = 0x6265_6572;
/// "net" and its NUL, as a little-endian word.
const NET_NAME: u32 = u32::from_le_bytes(*b"net\0");
/// Levels above a sysfs file that a `net` directory is looked for at:
/// /sys/class/net/bonding_masters is one, .../net/eth0/mtu two,
/// .../net/br0/bridge/stp_state three, .../net/eth0/queues/rx-0/rps_cpus
/// and .../net/br0/brif/eth1/priority four.
const NET_ATTRIBUTE_DEPTH: usize = 5;

/// Whether `file` is a sysfs attribute of a network device or of the net
/// class (what `/sys/class/net` shows): writing one changes the link as
/// RTM_SETLINK would (flags, MTU, group, carrier), makes or enslaves bonds,
/// sets a bridge's STP or VLAN filtering. Unreadable counts as one.
#[inline(always)]
pub(crate) fn is_network_device_attribute(facts: &FileFacts) -> bool {
    if facts.dentry.is_null() {
        return true;
    }
    facts.dentry_magic == SYSFS_MAGIC && under_a_net_directory(facts.dentry, true)
}

/// Whether a `net` directory is among the [`NET_ATTRIBUTE_DEPTH`] levels
/// above `dentry`; `unreadable` if a parent cannot be read (each caller
/// fails closed its own way).
#[inline(always)]
fn under_a_net_directory(dentry: *const u8, unreadable: bool) -> bool {
    let mut at = dentry;
    for _ in 0..NET_ATTRIBUTE_DEPTH {
        let Some(parent) = read_kernel::<u64>(at, offset!(dentry_d_parent)) else {
            return unreadable;
        };
        let parent = parent as *const u8;
        if parent == at {
            return false;
        }
        let name = read_kernel::<u64>(parent, offset!(dentry_d_name_name)).unwrap_or(0) as *const u8;
        if read_kernel::<u32>(name, 0) == Some(NET_NAME) {
            return true;
        }
        at = parent;
    }
    false
}

/// Whether `file` is a sysfs attribute that stops a device or a file
/// system (see `warrant_common::sysfs`), but a network device's uevent,
/// which [`is_network_device_attribute`] has decided as a link change. An
/// unreadable name counts as one.
#[inline(always)]
pub(crate) fn stops_a_device(facts: &FileFacts) -> bool {
    facts.dentry_magic == SYSFS_MAGIC && warrant_stops_a_device(as_number(facts.dentry)) != 0
}

/// [`stops_a_device`]'s check of the sysfs dentry at `dentry`. A global
/// function: the verifier checks it once, on its own, rather than again on
/// each of the many paths of `file_open` and the write hooks that reach it
/// (inlined, or a static function, the name's comparisons cost file_open
/// 27k of its instructions on 6.1).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn warrant_stops_a_device(dentry: u64) -> u32 {
    let name = read_kernel::<u64>(dentry as *const u8, offset!(dentry_d_name_name)).unwrap_or(0);
    let mut words: NameWords = [0; NAME_BYTES / 8];
    let read = unsafe { bpf_probe_read_kernel_str(words.as_mut_ptr().cast(), NAME_BYTES as u32, name as *const _) };
    if read < 0 {
        return 1;
    }
    // A network device's uevent is its link's: `is_network_device_attribute`
    // has it decided. Only that name: any other listed one is refused there too.
    let network_uevent = words == UEVENT_WORDS && under_a_net_directory(dentry as *const u8, false);
    u32::from(stops_a_device_named(&words) && !network_uevent)
}
