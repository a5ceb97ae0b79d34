//! Guarded surfaces: where root picks up code or commands later
//! (persistence: cron, systemd units, the dynamic linker's preload and
//! search path, shell profiles, udev rules, module configuration, sudoers,
//! PAM) and the kernel's usermode helpers (core_pattern, modprobe,
//! hotplug and uevent_helper) and binfmt_misc. Every policy protects them for every profile, with no line
//! needed: a subject's change there is denied unless a rule of its profile
//! names the tree. A policy may move one to `approve` (an RI approves a
//! service install); moving one to `allow` makes `policy verify` warn.

use std::path::Path;

use crate::policy::{CompiledPolicy, IndexedRule, Tier, tree_of};

/// The guarded trees, compiled in. A path this host lacks is guarded by
/// its name: a subject may not make it, and what root makes there joins
/// the tree.
pub const GUARDED: &[&str] = &[
    "/etc/crontab",
    "/etc/cron.d",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/var/spool/cron",
    "/etc/anacrontab",
    "/var/spool/at",
    "/etc/systemd/system",
    "/etc/systemd/user",
    "/usr/lib/systemd/system",
    "/usr/lib/systemd/user",
    // Every other directory systemd reads units, drop-ins or generators
    // from: a drop-in for warrant.service runs at its next restart.
    "/usr/local/lib/systemd/system",
    "/etc/systemd/system.control",
    "/run/systemd/system",
    "/etc/systemd/system-generators",
    "/usr/local/lib/systemd/system-generators",
    "/usr/lib/systemd/system-generators",
    "/etc/tmpfiles.d",
    // What root's next apt or dpkg run executes (DPkg::Pre-Invoke,
    // pre-invoke=) or installs from (a trusted=yes source).
    "/etc/apt/apt.conf.d",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d",
    "/etc/dpkg/dpkg.cfg.d",
    // The next boot's command line and mounts (systemd.mask=warrant.service).
    "/etc/default/grub",
    "/etc/default/grub.d",
    "/boot/grub/grub.cfg",
    "/etc/kernel/cmdline",
    "/etc/fstab",
    // The packaged daemon: replaced or unlinked, the next restart (an
    // upgrade's, a reboot's) would bring no daemon back. Not one of
    // Warrant's own files, which subjects may not even read: agents run it
    // (`warrant why`, `warrant wait`).
    "/usr/sbin/warrant",
    "/etc/init.d",
    "/etc/rc.local",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/profile",
    "/etc/profile.d",
    "/etc/bash.bashrc",
    "/etc/environment",
    "/root/.bashrc",
    "/root/.profile",
    // A login bash reads the first of these it finds, before .profile (a
    // missing one is guarded by its name).
    "/root/.bash_profile",
    "/root/.bash_login",
    "/root/.bash_logout",
    "/root/.ssh",
    "/etc/udev/rules.d",
    "/run/udev/rules.d",
    "/usr/local/lib/udev/rules.d",
    "/usr/lib/udev/rules.d",
    // Every directory kmod reads: an `install` or `remove` line runs a
    // command as root at the next load or unload (an autoload included).
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
    "/etc/modules-load.d",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/pam.d",
    "/etc/security",
    // What systemd-sysctl and systemd-binfmt apply at the next boot (or
    // root's `sysctl --system`): a core_pattern or an interpreter set there
    // is a usermode helper too.
    "/etc/sysctl.conf",
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/etc/binfmt.d",
    "/run/binfmt.d",
    "/usr/local/lib/binfmt.d",
    "/usr/lib/binfmt.d",
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/kernel/hotplug",
    // The pid the next process gets: with it a subject would put a root
    // process on a pid of its choosing.
    "/proc/sys/kernel/ns_last_pid",
    // The kernel's own keys: `i` kills every process but init (the daemon
    // too, by no `kill`), `f` has the OOM killer pick one, `b` reboots.
    "/proc/sysrq-trigger",
    "/proc/sys/kernel/sysrq",
    // The same helper as hotplug, by sysfs.
    "/sys/kernel/uevent_helper",
    // PCI devices' configuration space, as sysfs's `config` (refused to
    // subjects by name: `self.device`): bus mastering turned off, or a bus
    // reset, under the disk's controller.
    "/proc/bus/pci",
    // An interpreter registered here runs as whoever execs a matching file
    // (with its credentials, for the `C` flag). The kernel knows every
    // binfmt_misc file by its file system, mounted here or elsewhere,
    // before or after the apply.
    "/proc/sys/fs/binfmt_misc",
];

/// Guarded surfaces the daemon makes (empty) when the host lacks them.
/// A missing one is guarded by its name anyway (see `protect::inodes`);
/// made, it is a tree like any other from the first apply. Each is read by
/// root's tools only when present, and empty means nothing to them.
/// Directories end with `/`.
pub const MADE_IF_MISSING: &[&str] = &[
    "/etc/ld.so.preload",
    "/etc/modprobe.d/",
    "/run/modprobe.d/",
    "/usr/local/lib/modprobe.d/",
    "/run/udev/rules.d/",
    "/usr/local/lib/udev/rules.d/",
    "/run/sysctl.d/",
    "/usr/local/lib/sysctl.d/",
    "/etc/binfmt.d/",
    "/run/binfmt.d/",
    "/usr/local/lib/binfmt.d/",
];

/// Makes the [`MADE_IF_MISSING`] surfaces this host lacks (mode 0644 or
/// 0755; the packaged unit makes them before the daemon starts, outside
/// its read-only /usr). Best effort: one that cannot be made (a read-only
/// file system), or that is there as something else than made (a symlink,
/// which a guard would follow), is named in the returned list.
pub fn make_missing() -> Vec<String> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut not_made = Vec::new();
    for surface in MADE_IF_MISSING {
        let directory = surface.ends_with('/');
        let path = Path::new(surface.trim_end_matches('/'));
        let made = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() == directory && !meta.file_type().is_symlink() => continue,
            Ok(_) => Err(std::io::Error::other("it is there, but not as a plain file or directory")),
            // Only the last component: a missing parent (or a symlink
            // planted in its place) is not followed into being.
            Err(_) if directory => std::fs::create_dir(path),
            Err(_) => std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map(drop),
        }
        .and_then(|()| {
            let mode = if directory { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        });
        if let Err(e) = made {
            not_made.push(format!("{}: {e}", path.display()));
        }
    }
    not_made
}

/// Loopback ports every subject may connect to unless its profile's rules
/// name them: a local DNS resolver's (systemd-resolved, dnsmasq). Any other
/// loopback port is `ipc.loopback`, denied unless a rule allows it.
pub const LOOPBACK_PORTS_ALLOWED: &[u16] = &[53];

/// Unix sockets every subject may reach unless its profile's rules name
/// them: the journal's and nscd's. Any other named socket is `ipc.connect`,
/// denied unless a rule allows it.
pub const SOCKETS_ALLOWED: &[&str] = &[
    "/dev/log",
    "/run/systemd/journal/socket",
    "/run/systemd/journal/stdout",
    "/run/systemd/journal/dev-log",
    "/run/nscd/socket",
    "/var/run/nscd/socket",
];

/// Sockets whose listener runs what it is told, as root: a subject that may
/// reach one has root's power (`policy verify` warns).
pub const DEPUTIES: &[&str] = &[
    "/run/systemd/private",
    "/run/dbus/system_bus_socket",
    "/var/run/dbus/system_bus_socket",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/crio/crio.sock",
    "/run/snapd.socket",
];

/// Where `path` leads: itself with every symlink resolved, or for a path
/// this host lacks, its resolved directory and its name.
pub fn place_of(path: &str) -> Option<std::path::PathBuf> {
    let path = Path::new(path);
    std::fs::canonicalize(path)
        .ok()
        .or_else(|| Some(std::fs::canonicalize(path.parent()?).ok()?.join(path.file_name()?)))
}

/// Whether `tree` is a guarded surface.
pub fn is_guarded(tree: &str) -> bool {
    GUARDED.contains(&tree)
}

/// The guarded trees that `protect` does not list already, one per place
/// they lead to (/lib is /usr/lib on merged-/usr hosts). A tree this host
/// lacks is listed too: its name is guarded (see `protect::inodes`).
pub fn to_protect(protect: &[String]) -> Vec<String> {
    let mut seen: Vec<std::path::PathBuf> = protect.iter().filter_map(|p| place_of(p)).collect();
    let mut trees = Vec::new();
    for tree in GUARDED {
        if protect.iter().any(|p| p == tree) {
            continue;
        }
        match place_of(tree) {
            Some(place) if seen.contains(&place) => {}
            place => {
                seen.extend(place);
                trees.push((*tree).to_owned());
            }
        }
    }
    trees
}

/// Warnings for `policy verify`: rules that let a subject, without a
/// warrant, change a guarded surface (root runs what is there) or reach a
/// service manager or container runtime (which runs what it is sent).
pub fn allowed(compiled: &CompiledPolicy) -> Vec<String> {
    let allow = compiled.rules_by_index.iter().filter(|named| named.rule.tier == Tier::Allow);
    allow
        .filter_map(|IndexedRule { profile, rule, .. }| {
            let surface = rule.action.starts_with("file.")
                && tree_of(&compiled.policy.protect, &rule.target).is_some_and(is_guarded);
            let deputy = (rule.action == "ipc.connect" || rule.action == "ipc.*")
                && (rule.target == "*" || DEPUTIES.contains(&rule.target.as_str()));
            let why = if surface {
                "root runs what is there"
            } else if deputy {
                "a service manager or container runtime there runs what it is sent, as root"
            } else {
                return None;
            };
            Some(format!("warning: profile {profile:?} may {} {} without a warrant: {why}", rule.action, rule.target))
        })
        .collect()
}
