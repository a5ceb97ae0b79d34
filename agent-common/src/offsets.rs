//! Kernel structure offsets, resolved by the daemon from BTF.

/// Kernel structure offsets the daemon resolves from the running kernel's BTF
/// and hands to the programs as a global, since Rust BPF code has no CO-RE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct sk_buff, data` (pointer).
    pub sk_buff_data: u32,
    /// `struct sk_buff, len` (u32).
    pub sk_buff_len: u32,
    /// `struct sock, sk_protocol` (u16).
    pub sock_sk_protocol: u32,
    /// `struct task_struct, tgid` (pid_t).
    pub task_struct_tgid: u32,
    /// `struct inode, i_sb` (pointer).
    pub inode_i_sb: u32,
    /// `struct super_block, s_magic` (unsigned long).
    pub super_block_s_magic: u32,
    /// `struct ns_common, inum` (unsigned int): a namespace's nsfs inode.
    pub ns_common_inum: u32,
    /// `struct path, dentry` (pointer).
    pub path_dentry: u32,
    /// `struct dentry, d_parent` (pointer).
    pub dentry_d_parent: u32,
    /// `struct dentry, d_name` plus `struct qstr, name`: the name pointer.
    pub dentry_d_name_name: u32,
    /// `struct dentry, d_sb` (pointer).
    pub dentry_d_sb: u32,
    /// `struct dentry, d_inode` (pointer).
    pub dentry_d_inode: u32,
    /// `struct inode, i_ino` (unsigned long).
    pub inode_i_ino: u32,
    /// `struct super_block, s_dev` (dev_t, kernel encoding).
    pub super_block_s_dev: u32,
    /// `struct file, f_inode` (pointer).
    pub file_f_inode: u32,
    /// `struct file, f_mode` (fmode_t).
    pub file_f_mode: u32,
    /// `struct iattr, ia_valid` (unsigned int).
    pub iattr_ia_valid: u32,
    /// `struct iattr, ia_file` (pointer).
    pub iattr_ia_file: u32,
    /// `struct linux_binprm, file` (pointer).
    pub linux_binprm_file: u32,
    /// `struct linux_binprm, cred` (pointer).
    pub linux_binprm_cred: u32,
    /// `struct cred, uid` (kuid_t).
    pub cred_uid: u32,
    /// `struct cgroup, kn` (pointer).
    pub cgroup_kn: u32,
    /// `struct kernfs_node, id` (u64): the cgroup id.
    pub kernfs_node_id: u32,
    /// `struct kernfs_node, parent` (pointer).
    pub kernfs_node_parent: u32,
    /// `struct file, f_path` plus `struct path, dentry`: the file's dentry.
    pub file_f_path_dentry: u32,
    /// `struct inode, i_mode` (umode_t).
    pub inode_i_mode: u32,
    /// `struct vm_area_struct, vm_file` (pointer).
    pub vm_area_struct_vm_file: u32,
    /// `struct vm_area_struct, vm_flags` (unsigned long).
    pub vm_area_struct_vm_flags: u32,
    /// `struct socket, sk` (pointer).
    pub socket_sk: u32,
    /// `struct unix_sock, addr` (pointer; NULL for an unnamed socket).
    pub unix_sock_addr: u32,
    /// `struct unix_address, len` (int): bytes of `name` in use.
    pub unix_address_len: u32,
    /// `struct unix_address, name` (struct sockaddr_un[]).
    pub unix_address_name: u32,
    // Not offsets, but kernel facts resolved from BTF the same way.
    /// Position of `dentry` among `inode_setattr`'s arguments: 0 before 6.3
    /// (`dentry, attr`), 1 since (`idmap, dentry, attr`). `attr` follows it.
    pub inode_setattr_dentry_arg: u32,
    /// Bit N set: `kernel_read_file` id N reads something other than kernel
    /// code (firmware), looked up by name. Every other id, including ids
    /// newer than this daemon, is refused to subjects as module loading.
    pub harmless_read_ids: u32,
    /// The same for `kernel_load_data` ids.
    pub harmless_load_ids: u32,
    /// `struct task_struct, pid` (pid_t): a thread's id.
    pub task_struct_pid: u32,
    /// `struct unix_sock, path` plus `struct path, dentry`: the socket
    /// file a named socket was bound to (NULL for abstract and unnamed).
    pub unix_sock_path_dentry: u32,
    /// `struct inode, i_generation` (u32): tells a file from a later one
    /// that reuses its inode number.
    pub inode_i_generation: u32,
    /// `struct inode, i_nlink` (unsigned int, in an anonymous union).
    pub inode_i_nlink: u32,
    /// `struct msghdr, msg_name` (pointer; the kernel's copy of the address).
    pub msghdr_msg_name: u32,
    /// `struct msghdr, msg_namelen` (int).
    pub msghdr_msg_namelen: u32,
    /// `struct sock, __sk_common` plus `struct sock_common, skc_net`: the
    /// socket's namespace (`possible_net_t`, whose one member is the pointer).
    pub sock_net: u32,
    /// `struct net, ns` plus `struct ns_common, inum`.
    pub net_ns_inum: u32,
    /// `struct net, dev_index_head` (pointer to NETDEV_HASHENTRIES hlist heads).
    pub net_dev_index_head: u32,
    /// `struct net_device, index_hlist` (hlist_node).
    pub net_device_index_hlist: u32,
    /// `struct net_device, ifindex` (int).
    pub net_device_ifindex: u32,
    /// `struct net_device, name` (char[IFNAMSIZ]).
    pub net_device_name: u32,
    /// `struct task_struct, files` (pointer).
    pub task_struct_files: u32,
    /// `struct files_struct, fdt` (pointer).
    pub files_struct_fdt: u32,
    /// `struct fdtable, max_fds` (unsigned int).
    pub fdtable_max_fds: u32,
    /// `struct fdtable, fd` (pointer to the file pointers).
    pub fdtable_fd: u32,
    /// `struct socket, type` (short): SOCK_STREAM, SOCK_SEQPACKET, ...
    pub socket_type: u32,
    /// `struct sock, __sk_common` plus `struct sock_common, skc_family` (unsigned short).
    pub sock_family: u32,
    /// `struct sock, sk_socket` (pointer).
    pub sock_sk_socket: u32,
    /// `struct unix_sock, peer` (pointer; NULL until connected).
    pub unix_sock_peer: u32,
    /// `struct socket_alloc, vfs_inode`: a socket's inode follows it.
    pub socket_alloc_vfs_inode: u32,
    /// `struct fdtable, close_on_exec` (pointer to a bitmap of fds).
    pub fdtable_close_on_exec: u32,
    /// `struct files_struct, count` (atomic_t): tasks sharing the fd table.
    pub files_struct_count: u32,
    /// `struct task_struct, real_parent` (pointer): the process that forked it.
    pub task_struct_real_parent: u32,
    /// `struct task_struct, self_exec_id` (u64): bumped by each exec.
    pub task_struct_self_exec_id: u32,
    /// `struct task_struct, parent_exec_id` (u64): the forker's
    /// `self_exec_id` at the fork, so equal to the task's own until it execs.
    pub task_struct_parent_exec_id: u32,
    /// `struct task_struct, start_time` (u64, CLOCK_MONOTONIC ns at fork).
    pub task_struct_start_time: u32,
    /// `struct cgroup, root` (pointer to its hierarchy's `cgroup_root`).
    pub cgroup_root: u32,
    /// `struct cgroup_root, hierarchy_id` (int; 0 for cgroup v2).
    pub cgroup_root_hierarchy_id: u32,
    /// `struct task_struct, group_leader` (pointer).
    pub task_struct_group_leader: u32,
    /// `struct task_struct, start_boottime` (u64, CLOCK_BOOTTIME ns at
    /// fork): what /proc/PID/stat shows as the start time.
    pub task_struct_start_boottime: u32,
    /// `struct inode, i_writecount` (atomic_t): fds open for writing and
    /// shared writable mappings, when positive.
    pub inode_i_writecount: u32,
    /// `struct task_struct, ptrace` (unsigned int): non-zero while traced.
    pub task_struct_ptrace: u32,
    /// `struct task_struct, parent` (pointer): the tracer, while traced.
    pub task_struct_parent: u32,
    /// `struct task_struct, ptraced` (list_head): the tasks it traces.
    pub task_struct_ptraced: u32,
    /// `struct sock, __sk_common` plus `struct sock_common, skc_daddr`
    /// (__be32): an IPv4 socket's peer.
    pub sock_daddr: u32,
    /// `struct sock, __sk_common` plus `struct sock_common, skc_dport`
    /// (__be16): the peer's port, 0 while there is none.
    pub sock_dport: u32,
    /// `struct sock, __sk_common` plus `struct sock_common, skc_v6_daddr`
    /// (in6_addr): an IPv6 socket's peer.
    pub sock_v6_daddr: u32,
    /// `struct sock, __sk_common` plus `struct sock_common, skc_bound_dev_if`
    /// (int): the device SO_BINDTODEVICE bound it to, 0 for none.
    pub sock_bound_dev_if: u32,
    /// `struct inet_sock, uc_index` (int): IP_UNICAST_IF's device, 0 for none.
    pub inet_sock_uc_index: u32,
    /// `struct msghdr, msg_control` (pointer, in an anonymous union; the
    /// kernel's copy of the control messages by the time LSM sees a send).
    pub msghdr_msg_control: u32,
    /// `struct msghdr, msg_controllen` (size_t).
    pub msghdr_msg_controllen: u32,
    /// `struct inode, i_rdev` (dev_t: major in the bits from 20).
    pub inode_i_rdev: u32,
    /// `struct io_uring_cmd, file` (pointer): what a ring's URING_CMD is for.
    pub io_uring_cmd_file: u32,
    /// `struct proc_inode, vfs_inode`: a procfs inode is this far into its
    /// `proc_inode`.
    pub proc_inode_vfs_inode: u32,
    /// `struct proc_inode, pid` (pointer; NULL for files of no process).
    pub proc_inode_pid: u32,
    /// `struct pid, tasks` (hlist_head per pid type; PIDTYPE_PID's first).
    pub pid_tasks: u32,
    /// `struct task_struct, pid_links` (hlist_node per pid type).
    pub task_struct_pid_links: u32,
    /// `struct sock, sk_dst_cache` (pointer): a connected socket's route.
    pub sock_sk_dst_cache: u32,
    /// `struct dst_entry, dev` (pointer; in an anonymous union from 6.13).
    pub dst_entry_dev: u32,
    /// `struct task_struct, mm` (pointer; NULL for kernel threads).
    pub task_struct_mm: u32,
    /// `struct mm_struct, exe_file` (pointer): the executable the process runs.
    pub mm_struct_exe_file: u32,
    /// `struct pt_regs, orig_ax` (`syscallno` on arm64): the system call
    /// number the task entered the kernel with.
    pub pt_regs_orig_ax: u32,
    /// `struct task_struct, bpf_storage` (pointer; NULL until a BPF program
    /// or the daemon gives the task local storage, as marking a subject does).
    pub task_struct_bpf_storage: u32,
    /// `struct socket, file` (pointer; NULL for a kernel socket): its inode
    /// is the socket's (`SOCK_INODE`), reached by BTF loads.
    pub socket_file: u32,
    /// `struct super_block, s_root` (pointer): the file system's root
    /// dentry, until its shutdown lets it go.
    pub super_block_s_root: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 364);
