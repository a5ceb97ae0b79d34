//! The mount checks behind network namespace pinning (`ip netns add`), the
//! one mount a subject may make.

use warrant_common::netns::{SOURCE_LEN, is_netns_dir_name, is_plain_bind, is_proc_netns_path, is_propagation_change};

fn source(text: &str) -> [u8; SOURCE_LEN] {
    let mut bytes = [0u8; SOURCE_LEN];
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    bytes
}

#[test]
fn only_a_process_network_namespace_file_is_a_pin_source() {
    for good in ["/proc/self/ns/net", "/proc/thread-self/ns/net", "/proc/42/ns/net", "/proc/42/task/43/ns/net"] {
        assert!(is_proc_netns_path(&source(good)), "{good} should qualify");
    }
    for bad in [
        "/proc/self/ns/mnt",
        "/proc/self/cwd/ns/net",
        "/proc/self/root/ns/net",
        "/proc/42/task//ns/net",
        "/proc//ns/net",
        "/proc/42/task/43/ns/netx",
        "/proc/../etc/ns/net",
        "/tmp/ns/net",
        "/proc/self/ns/net/",
        "",
    ] {
        assert!(!is_proc_netns_path(&source(bad)), "{bad} must not qualify");
    }
    // No NUL within the bytes read: too long to judge.
    assert!(!is_proc_netns_path(&[b'/'; SOURCE_LEN]));
}

#[test]
fn mount_flags_for_the_two_pinning_steps() {
    const MS_REC: u64 = 0x4000;
    const MS_SHARED: u64 = 1 << 20;
    const MS_BIND: u64 = 0x1000;
    const MS_REMOUNT: u64 = 32;
    assert!(is_propagation_change(MS_SHARED | MS_REC));
    assert!(!is_propagation_change(MS_SHARED | MS_BIND));
    assert!(!is_propagation_change(0));
    assert!(is_plain_bind(MS_BIND));
    assert!(!is_plain_bind(MS_BIND | MS_REC));
    assert!(!is_plain_bind(MS_BIND | MS_REMOUNT));
    assert!(is_netns_dir_name(b"netns\0\0\0"));
    assert!(is_netns_dir_name(b"netns\0xy"));
    assert!(!is_netns_dir_name(b"netnsx\0\0"));
    assert!(!is_netns_dir_name(b"run\0\0\0\0\0"));
}
