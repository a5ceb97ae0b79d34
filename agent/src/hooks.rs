//! Which kernel hooks Warrant's programs attach to, and what it costs when a
//! kernel lacks one. Each hook is required (the daemon refuses to start
//! without it) or optional with a named cost that doctor, `status` and the
//! audit log report: nothing is skipped silently.

use crate::btf::KernelBtf;

/// What a kernel without the hook loses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absence {
    /// Warrant cannot enforce without it: the daemon refuses to start.
    Required,
    /// The kernel still runs the same check through another hook Warrant
    /// decides on (the hook was split out of it in a later version).
    CoveredBy(&'static str),
    /// What the hook decides is not built into this kernel (the reason).
    NotBuilt(&'static str),
}

/// An LSM program and the hook it attaches to.
pub struct LsmProgram {
    pub name: &'static str,
    pub hook: &'static str,
    pub absence: Absence,
}

const fn required(name: &'static str) -> LsmProgram {
    LsmProgram { name, hook: name, absence: Absence::Required }
}

/// LSM programs, in attach order: subjects must be tracked before any hook
/// decides for them, and new inodes must join protected trees before any
/// file hook decides on them.
pub const LSM_PROGRAMS: &[LsmProgram] = &[
    required("task_alloc"),
    required("bprm_check_security"),
    required("netlink_send"),
    // A second program on netlink_send: rtnetlink and the other families.
    LsmProgram { name: "rtnetlink_send", hook: "netlink_send", absence: Absence::Required },
    required("socket_setsockopt"),
    required("unix_stream_connect"),
    required("unix_may_send"),
    required("socket_connect"),
    required("socket_sendmsg"),
    required("bpf"),
    required("sb_mount"),
    required("sb_umount"),
    required("move_mount"),
    required("sb_kern_mount"),
    required("sb_remount"),
    required("sb_pivotroot"),
    required("path_chroot"),
    required("task_kill"),
    required("task_setrlimit"),
    required("task_setnice"),
    required("task_setscheduler"),
    required("task_setioprio"),
    // A kernel built without io_uring has neither the hook nor rings.
    LsmProgram { name: "uring_cmd", hook: "uring_cmd", absence: Absence::NotBuilt("io_uring") },
    required("ptrace_access_check"),
    required("ptrace_traceme"),
    required("file_send_sigiotask"),
    required("file_receive"),
    required("file_ioctl"),
    // 6.8 (and stable 6.1.x / 6.6.x) split 32-bit ioctls out of file_ioctl.
    LsmProgram { name: "file_ioctl_compat", hook: "file_ioctl_compat", absence: Absence::CoveredBy("file_ioctl") },
    required("kernel_read_file"),
    required("kernel_load_data"),
    required("inode_unlink"),
    required("inode_rmdir"),
    required("inode_rename"),
    required("capable"),
    required("d_instantiate"),
    required("file_open"),
    required("file_permission"),
    required("mmap_file"),
    required("file_mprotect"),
    required("file_free_security"),
    required("inode_create"),
    required("inode_mkdir"),
    required("inode_mknod"),
    required("inode_symlink"),
    required("inode_link"),
    required("inode_setattr"),
    required("inode_setxattr"),
    required("inode_removexattr"),
    // Before 6.2, POSIX ACLs were set and removed as system.posix_acl_* xattrs.
    LsmProgram { name: "inode_set_acl", hook: "inode_set_acl", absence: Absence::CoveredBy("inode_setxattr") },
    LsmProgram { name: "inode_remove_acl", hook: "inode_remove_acl", absence: Absence::CoveredBy("inode_removexattr") },
];

/// What a tracing program traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traces {
    /// A kernel function's entry (fentry).
    Entry(&'static str),
    /// A kernel function's return (fexit).
    Exit(&'static str),
    /// A BTF tracepoint.
    Tracepoint(&'static str),
}

impl Traces {
    /// What is traced, as a person reads it.
    pub fn target(&self) -> String {
        match self {
            Traces::Entry(function) | Traces::Exit(function) => format!("function {function}"),
            Traces::Tracepoint(point) => format!("tracepoint {point}"),
        }
    }
}

/// fentry/fexit and BTF tracepoint programs and what each traces. The
/// namespace ones only note requests for `capable` to decide (see
/// agent-ebpf's netns.rs), so they are attached before it; the link count
/// ones drop the protection of inodes left with no name (names.rs), and a
/// file system going that of its inodes (mounts.rs); the
/// tracepoints make subjects of tasks moved into matched cgroups.
pub const TRACING_PROGRAMS: &[(&str, Traces)] = &[
    ("cgroup_mkdir", Traces::Tracepoint("cgroup_mkdir")),
    ("cgroup_attach_task", Traces::Tracepoint("cgroup_attach_task")),
    ("cgroup_rmdir", Traces::Tracepoint("cgroup_rmdir")),
    ("note_unshare", Traces::Entry("unshare_nsproxy_namespaces")),
    ("forget_unshare", Traces::Exit("unshare_nsproxy_namespaces")),
    ("note_setns", Traces::Entry("netns_install")),
    ("forget_setns", Traces::Exit("netns_install")),
    ("forget_dropped", Traces::Exit("drop_nlink")),
    ("forget_cleared", Traces::Exit("clear_nlink")),
    ("forget_unmounted", Traces::Entry("generic_shutdown_super")),
];

/// Iterators over every task, run when the daemon asks (not attached).
pub const TASK_ITERATORS: &[&str] = &["mark_threads", "traced_tasks"];

/// An optional hook this kernel lacks, and what that means (also as
/// `warrant status` reports it: read back from the daemon's reply).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MissingHook {
    pub hook: std::borrow::Cow<'static, str>,
    /// One line for doctor, `status` and the audit log.
    pub effect: String,
}

impl LsmProgram {
    /// Whether this kernel has the hook (`bpf_lsm_<hook>` is in its BTF).
    pub fn present(&self, btf: &KernelBtf) -> bool {
        btf.has_function(&format!("bpf_lsm_{}", self.hook))
    }

    /// What the hook's absence costs, for an optional hook.
    pub fn missing(&self) -> Option<MissingHook> {
        match self.absence {
            Absence::Required => None,
            Absence::CoveredBy(other) => Some(MissingHook {
                hook: self.hook.into(),
                effect: format!(
                    "no {} hook on this kernel: the same changes reach {other}, which decides them",
                    self.hook
                ),
            }),
            Absence::NotBuilt(what) => Some(MissingHook {
                hook: self.hook.into(),
                effect: format!("no {} hook on this kernel, built without {what}: nothing to decide", self.hook),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_only_known_hooks_are_optional() {
        let mut names: Vec<&str> = LSM_PROGRAMS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), LSM_PROGRAMS.len());
        // A link is pinned at `<name>_new` before it takes its name: no
        // attached program may be called that.
        let attached = names.iter().copied().chain(TRACING_PROGRAMS.iter().map(|(name, _)| *name));
        for name in attached.clone() {
            assert!(!attached.clone().any(|other| other == format!("{name}_new")), "{name}_new");
        }
        let optional: Vec<&str> =
            LSM_PROGRAMS.iter().filter(|p| p.absence != Absence::Required).map(|p| p.hook).collect();
        assert_eq!(optional, ["uring_cmd", "file_ioctl_compat", "inode_set_acl", "inode_remove_acl"]);
        for program in LSM_PROGRAMS.iter().filter(|p| p.absence != Absence::Required) {
            let effect = program.missing().expect("optional").effect;
            assert!(effect.contains(program.hook), "{effect}");
        }
        // A hook another covers must itself be required, or coverage could vanish twice.
        for program in LSM_PROGRAMS {
            if let Absence::CoveredBy(other) = program.absence {
                let cover = LSM_PROGRAMS.iter().find(|p| p.hook == other).expect("covering hook is attached");
                assert_eq!(cover.absence, Absence::Required, "{other}");
            }
        }
    }
}
