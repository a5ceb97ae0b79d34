//! The offsets agent-ebpf's programs read kernel structs at, resolved
//! from the running kernel's BTF by name (members renamed between versions
//! are listed by every name they have had).

use super::{BtfError, KernelBtf};

/// The offsets agent-ebpf needs, from the running kernel.
pub fn kernel_offsets(btf: &KernelBtf) -> Result<warrant_common::KernelOffsets, BtfError> {
    Ok(warrant_common::KernelOffsets {
        sk_buff_data: btf.member_offset("sk_buff", "data")?,
        sk_buff_len: btf.member_offset("sk_buff", "len")?,
        sock_sk_protocol: btf.member_offset("sock", "sk_protocol")?,
        task_struct_tgid: btf.member_offset("task_struct", "tgid")?,
        inode_i_sb: btf.member_offset("inode", "i_sb")?,
        super_block_s_magic: btf.member_offset("super_block", "s_magic")?,
        ns_common_inum: btf.member_offset("ns_common", "inum")?,
        path_dentry: btf.member_offset("path", "dentry")?,
        dentry_d_parent: btf.member_offset("dentry", "d_parent")?,
        dentry_d_name_name: btf.member_offset("dentry", "d_name")? + btf.member_offset("qstr", "name")?,
        dentry_d_sb: btf.member_offset("dentry", "d_sb")?,
        dentry_d_inode: btf.member_offset("dentry", "d_inode")?,
        inode_i_ino: btf.member_offset("inode", "i_ino")?,
        super_block_s_dev: btf.member_offset("super_block", "s_dev")?,
        file_f_inode: btf.member_offset("file", "f_inode")?,
        file_f_mode: btf.member_offset("file", "f_mode")?,
        iattr_ia_valid: btf.member_offset("iattr", "ia_valid")?,
        iattr_ia_file: btf.member_offset("iattr", "ia_file")?,
        linux_binprm_file: btf.member_offset("linux_binprm", "file")?,
        linux_binprm_cred: btf.member_offset("linux_binprm", "cred")?,
        cred_uid: btf.member_offset("cred", "uid")?,
        cgroup_kn: btf.member_offset("cgroup", "kn")?,
        kernfs_node_id: btf.member_offset("kernfs_node", "id")?,
        kernfs_node_parent: btf.member_offset_any("kernfs_node", &["parent", "__parent"])?,
        file_f_path_dentry: btf.member_offset("file", "f_path")? + btf.member_offset("path", "dentry")?,
        inode_i_mode: btf.member_offset("inode", "i_mode")?,
        vm_area_struct_vm_file: btf.member_offset("vm_area_struct", "vm_file")?,
        vm_area_struct_vm_flags: btf.member_offset("vm_area_struct", "vm_flags")?,
        socket_sk: btf.member_offset("socket", "sk")?,
        unix_sock_addr: btf.member_offset("unix_sock", "addr")?,
        unix_address_len: btf.member_offset("unix_address", "len")?,
        unix_address_name: btf.member_offset("unix_address", "name")?,
        inode_setattr_dentry_arg: hook_argument(btf, "inode_setattr", "dentry")?,
        harmless_read_ids: enumerator_bits(btf, "kernel_read_file_id", &["READING_FIRMWARE"])?,
        harmless_load_ids: enumerator_bits(btf, "kernel_load_data_id", &["LOADING_FIRMWARE"])?,
        task_struct_pid: btf.member_offset("task_struct", "pid")?,
        unix_sock_path_dentry: btf.member_offset("unix_sock", "path")? + btf.member_offset("path", "dentry")?,
        inode_i_generation: btf.member_offset("inode", "i_generation")?,
        inode_i_nlink: btf.member_offset_any("inode", &["i_nlink", "__i_nlink"])?,
        msghdr_msg_name: btf.member_offset("msghdr", "msg_name")?,
        msghdr_msg_namelen: btf.member_offset("msghdr", "msg_namelen")?,
        sock_net: btf.member_offset("sock", "__sk_common")? + btf.member_offset("sock_common", "skc_net")?,
        net_ns_inum: btf.member_offset("net", "ns")? + btf.member_offset("ns_common", "inum")?,
        net_dev_index_head: btf.member_offset("net", "dev_index_head")?,
        net_device_index_hlist: btf.member_offset("net_device", "index_hlist")?,
        net_device_ifindex: btf.member_offset("net_device", "ifindex")?,
        net_device_name: btf.member_offset("net_device", "name")?,
        task_struct_files: btf.member_offset("task_struct", "files")?,
        files_struct_fdt: btf.member_offset("files_struct", "fdt")?,
        fdtable_max_fds: btf.member_offset("fdtable", "max_fds")?,
        fdtable_fd: btf.member_offset("fdtable", "fd")?,
        socket_type: btf.member_offset("socket", "type")?,
        sock_family: btf.member_offset("sock", "__sk_common")? + btf.member_offset("sock_common", "skc_family")?,
        sock_sk_socket: btf.member_offset("sock", "sk_socket")?,
        unix_sock_peer: btf.member_offset("unix_sock", "peer")?,
        socket_alloc_vfs_inode: btf.member_offset("socket_alloc", "vfs_inode")?,
        fdtable_close_on_exec: btf.member_offset("fdtable", "close_on_exec")?,
        files_struct_count: btf.member_offset("files_struct", "count")?,
        task_struct_real_parent: btf.member_offset("task_struct", "real_parent")?,
        task_struct_self_exec_id: btf.member_offset("task_struct", "self_exec_id")?,
        task_struct_parent_exec_id: btf.member_offset("task_struct", "parent_exec_id")?,
        task_struct_start_time: btf.member_offset("task_struct", "start_time")?,
        cgroup_root: btf.member_offset("cgroup", "root")?,
        cgroup_root_hierarchy_id: btf.member_offset("cgroup_root", "hierarchy_id")?,
        task_struct_group_leader: btf.member_offset("task_struct", "group_leader")?,
        task_struct_start_boottime: btf.member_offset("task_struct", "start_boottime")?,
        inode_i_writecount: btf.member_offset("inode", "i_writecount")?,
        task_struct_ptrace: btf.member_offset("task_struct", "ptrace")?,
        task_struct_parent: btf.member_offset("task_struct", "parent")?,
        task_struct_ptraced: btf.member_offset("task_struct", "ptraced")?,
        sock_daddr: btf.member_offset("sock", "__sk_common")? + btf.member_offset("sock_common", "skc_daddr")?,
        sock_dport: btf.member_offset("sock", "__sk_common")? + btf.member_offset("sock_common", "skc_dport")?,
        sock_v6_daddr: btf.member_offset("sock", "__sk_common")? + btf.member_offset("sock_common", "skc_v6_daddr")?,
        sock_bound_dev_if: btf.member_offset("sock", "__sk_common")?
            + btf.member_offset("sock_common", "skc_bound_dev_if")?,
        inet_sock_uc_index: btf.member_offset("inet_sock", "uc_index")?,
        msghdr_msg_control: btf.member_offset("msghdr", "msg_control")?,
        msghdr_msg_controllen: btf.member_offset("msghdr", "msg_controllen")?,
        inode_i_rdev: btf.member_offset("inode", "i_rdev")?,
        // Without io_uring there is no such struct, and no uring_cmd hook to read it.
        io_uring_cmd_file: btf.member_offset("io_uring_cmd", "file").unwrap_or(0),
        proc_inode_vfs_inode: btf.member_offset("proc_inode", "vfs_inode")?,
        proc_inode_pid: btf.member_offset("proc_inode", "pid")?,
        pid_tasks: btf.member_offset("pid", "tasks")?,
        task_struct_pid_links: btf.member_offset("task_struct", "pid_links")?,
        sock_sk_dst_cache: btf.member_offset("sock", "sk_dst_cache")?,
        dst_entry_dev: btf.member_offset("dst_entry", "dev")?,
        task_struct_mm: btf.member_offset("task_struct", "mm")?,
        mm_struct_exe_file: btf.member_offset("mm_struct", "exe_file")?,
        pt_regs_orig_ax: btf.member_offset("pt_regs", SYSCALL_NUMBER_FIELD)?,
        task_struct_bpf_storage: btf.member_offset("task_struct", "bpf_storage")?,
        socket_file: btf.member_offset("socket", "file")?,
        super_block_s_root: btf.member_offset("super_block", "s_root")?,
    })
}

/// The `pt_regs` field that holds the system call number a task entered with.
#[cfg(not(target_arch = "aarch64"))]
const SYSCALL_NUMBER_FIELD: &str = "orig_ax";
#[cfg(target_arch = "aarch64")]
const SYSCALL_NUMBER_FIELD: &str = "syscallno";

/// The position of argument `name` of LSM hook `hook`, from the prototype
/// of the kernel's `bpf_lsm_<hook>` (hooks gain and lose arguments between
/// versions; the programs branch on the position).
pub(super) fn hook_argument(btf: &KernelBtf, hook: &str, name: &str) -> Result<u32, BtfError> {
    let function = format!("bpf_lsm_{hook}");
    let parameters = btf.parameters(&function).ok_or_else(|| BtfError::NoFunction(function.clone()))?;
    parameters
        .iter()
        .position(|p| *p == name)
        .map(|at| at as u32)
        .ok_or_else(|| BtfError::NoParameter(function, name.into(), parameters.join(", ")))
}

/// A bit per enumerator of `enum name` listed in `names` (each a value
/// below 32); names this kernel lacks are simply left out.
pub(super) fn enumerator_bits(btf: &KernelBtf, name: &str, names: &[&str]) -> Result<u32, BtfError> {
    let enumerators = btf.enumerators(name).ok_or_else(|| BtfError::NoEnum(name.into()))?;
    Ok(enumerators
        .iter()
        .filter(|(enumerator, value)| names.contains(enumerator) && (0..32).contains(value))
        .fold(0, |bits, (_, value)| bits | 1 << value))
}
