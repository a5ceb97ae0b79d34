//! Just enough of a BTF reader to find struct member offsets in the running
//! kernel (/sys/kernel/btf/vmlinux). Rust BPF programs have no CO-RE, so the
//! daemon resolves the few offsets they need and hands them over as a global.

use std::collections::HashMap;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF at {path}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF)")]
    Read { path: String, source: std::io::Error },
    #[error("kernel BTF is malformed: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {0} has no member {1}")]
    NoMember(String, String),
    #[error("kernel BTF has no function {0}")]
    NoFunction(String),
    #[error("kernel BTF: {0} has no argument {1} (its arguments: {2})")]
    NoParameter(String, String, String),
    #[error("kernel BTF has no enum {0}")]
    NoEnum(String),
    #[error("kernel BTF: {0}.{1} is a bitfield")]
    Bitfield(String, String),
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_ENUM64: u32 = 19;

/// A struct or union member, a function parameter (bit_offset 0) or an
/// enumerator (type_id 0, value in `value`).
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    value: i64,
}

struct Type {
    name_off: u32,
    kind: u32,
    /// The referenced type (functions: their prototype).
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed kernel BTF: types (id 1 is index 0) and the string section.
pub struct KernelBtf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
    functions_by_name: HashMap<String, u32>,
    enums_by_name: HashMap<String, u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(BtfError::Malformed("truncated"))
}

impl KernelBtf {
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Read { path: path.into(), source })?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::Malformed("bad magic (only little-endian BTF is read)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of range"))?
            .to_vec();
        let mut types = Vec::new();
        let mut at = types_start;
        while at < types_end {
            let name_off = u32_at(data, at)?;
            let info = u32_at(data, at + 4)?;
            let size_or_type = u32_at(data, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let trailing = match kind {
                1 | 14 | 17 => 4, // int, var, decl_tag
                3 => 12,          // array
                15 => vlen * 12,  // datasec
                KIND_ENUM => {
                    for i in 0..vlen {
                        let value = i64::from(u32_at(data, at + i * 8 + 4)? as i32);
                        members.push(Member { name_off: u32_at(data, at + i * 8)?, type_id: 0, bit_offset: 0, value });
                    }
                    vlen * 8
                }
                KIND_ENUM64 => {
                    for i in 0..vlen {
                        let e = at + i * 12;
                        let value = (u64::from(u32_at(data, e + 8)?) << 32 | u64::from(u32_at(data, e + 4)?)) as i64;
                        members.push(Member { name_off: u32_at(data, e)?, type_id: 0, bit_offset: 0, value });
                    }
                    vlen * 12
                }
                KIND_FUNC_PROTO => {
                    for i in 0..vlen {
                        let p = at + i * 8;
                        members.push(Member {
                            name_off: u32_at(data, p)?,
                            type_id: u32_at(data, p + 4)?,
                            bit_offset: 0,
                            value: 0,
                        });
                    }
                    vlen * 8
                }
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let raw_offset = u32_at(data, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(data, m)?,
                            type_id: u32_at(data, m + 4)?,
                            bit_offset: if kind_flag { raw_offset & 0xff_ffff } else { raw_offset },
                            value: 0,
                        });
                    }
                    vlen * 12
                }
                2 | 7..=12 | 16 | 18 => 0,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            at += trailing;
            types.push(Type { name_off, kind, size_or_type, members });
        }
        let mut btf = KernelBtf {
            types,
            strings,
            structs_by_name: HashMap::new(),
            functions_by_name: HashMap::new(),
            enums_by_name: HashMap::new(),
        };
        for (index, ty) in btf.types.iter().enumerate() {
            if ty.name_off == 0 {
                continue;
            }
            if !matches!(ty.kind, KIND_STRUCT | KIND_FUNC | KIND_ENUM | KIND_ENUM64) {
                continue;
            }
            let name = btf.string(ty.name_off).to_owned();
            let by_name = match ty.kind {
                KIND_STRUCT => &mut btf.structs_by_name,
                KIND_FUNC => &mut btf.functions_by_name,
                _ => &mut btf.enums_by_name,
            };
            // Keep the first complete definition of a name.
            by_name.entry(name).or_insert(index as u32 + 1);
        }
        Ok(btf)
    }

    fn string(&self, offset: u32) -> &str {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }

    /// Byte offset of `member` in `struct name`, looking through anonymous
    /// struct and union members as C does.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self.structs_by_name.get(name).ok_or_else(|| BtfError::NoStruct(name.into()))?;
        let bits = self.find_member(id, member).ok_or_else(|| BtfError::NoMember(name.into(), member.into()))?;
        if bits % 8 != 0 {
            return Err(BtfError::Bitfield(name.into(), member.into()));
        }
        Ok(bits / 8)
    }

    /// Byte offset of the first of `members` that `struct name` has: the
    /// kernel renames members between versions (`kernfs_node.parent` became
    /// `__parent` in 6.15), so each read lists every name it has had.
    pub fn member_offset_any(&self, name: &str, members: &[&str]) -> Result<u32, BtfError> {
        for member in members {
            match self.member_offset(name, member) {
                Err(BtfError::NoMember(..)) => continue,
                other => return other,
            }
        }
        Err(BtfError::NoMember(name.into(), members.join(" or ")))
    }

    /// Whether the kernel has function `name` (LSM hooks are there as
    /// `bpf_lsm_<hook>`).
    pub fn has_function(&self, name: &str) -> bool {
        self.functions_by_name.contains_key(name)
    }

    /// The parameter names of function `name`, in order.
    pub fn parameters(&self, name: &str) -> Option<Vec<&str>> {
        let function = self.ty(*self.functions_by_name.get(name)?)?;
        let prototype = self.ty(function.size_or_type).filter(|t| t.kind == KIND_FUNC_PROTO)?;
        Some(prototype.members.iter().map(|p| self.string(p.name_off)).collect())
    }

    /// Every enumerator of `enum name` with its value.
    pub fn enumerators(&self, name: &str) -> Option<Vec<(&str, i64)>> {
        let ty = self.ty(*self.enums_by_name.get(name)?)?;
        Some(ty.members.iter().map(|e| (self.string(e.name_off), e.value)).collect())
    }

    fn find_member(&self, id: u32, member: &str) -> Option<u32> {
        let ty = self.ty(id)?;
        for m in &ty.members {
            if m.name_off == 0 {
                // Anonymous struct or union: its members are ours.
                if let Some(bits) = self.find_member(m.type_id, member) {
                    return Some(m.bit_offset + bits);
                }
            } else if self.string(m.name_off) == member {
                return Some(m.bit_offset);
            }
        }
        None
    }
}

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
fn hook_argument(btf: &KernelBtf, hook: &str, name: &str) -> Result<u32, BtfError> {
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
fn enumerator_bits(btf: &KernelBtf, name: &str, names: &[&str]) -> Result<u32, BtfError> {
    let enumerators = btf.enumerators(name).ok_or_else(|| BtfError::NoEnum(name.into()))?;
    Ok(enumerators
        .iter()
        .filter(|(enumerator, value)| names.contains(enumerator) && (0..32).contains(value))
        .fold(0, |bits, (_, value)| bits | 1 << value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: `types` are (name, info, size_or_type, trailing words).
    fn blob(types: &[(&str, u32, u32, Vec<u32>)], extra_names: &[&str]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name_off = std::collections::HashMap::new();
        for name in types.iter().map(|t| t.0).chain(extra_names.iter().copied()) {
            if !name.is_empty() && !name_off.contains_key(name) {
                name_off.insert(name, strings.len() as u32);
                strings.extend_from_slice(name.as_bytes());
                strings.push(0);
            }
        }
        let mut section = Vec::new();
        for (name, info, size_or_type, trailing) in types {
            let words = [name_off.get(name).copied().unwrap_or(0), *info, *size_or_type];
            for word in words.iter().chain(trailing) {
                section.extend_from_slice(&word.to_le_bytes());
            }
        }
        let mut data = vec![0x9f, 0xeb, 1, 0];
        for word in [24, 0, section.len() as u32, section.len() as u32, strings.len() as u32] {
            data.extend_from_slice(&u32::to_le_bytes(word));
        }
        data.extend(section);
        data.extend(strings);
        data
    }

    fn kernel_like() -> KernelBtf {
        let names = ["__parent", "id", "idmap", "dentry", "attr", "READING_UNKNOWN", "READING_FIRMWARE", "X"];
        let off = |name: &str| {
            // Offsets in the string section as `blob` lays it out.
            let mut at = 1;
            for n in ["int", "kernfs_node", "bpf_lsm_inode_setattr", "kernel_read_file_id"].iter().chain(&names) {
                if *n == name {
                    return at;
                }
                at += n.len() as u32 + 1;
            }
            panic!("{name}")
        };
        let types = vec![
            ("int", 1 << 24, 4, vec![32]),
            ("kernfs_node", 4 << 24 | 2, 16, vec![off("__parent"), 1, 0, off("id"), 1, 64]),
            ("", 13 << 24 | 3, 1, vec![off("idmap"), 1, off("dentry"), 1, off("attr"), 1]),
            ("bpf_lsm_inode_setattr", 12 << 24, 3, vec![]),
            (
                "kernel_read_file_id",
                6 << 24 | 3,
                4,
                vec![off("READING_UNKNOWN"), 0, off("READING_FIRMWARE"), 1, off("X"), 7],
            ),
        ];
        KernelBtf::parse(&blob(&types, &names)).expect("parses")
    }

    #[test]
    fn renamed_members_resolve_by_any_of_their_names() {
        let btf = kernel_like();
        assert_eq!(btf.member_offset_any("kernfs_node", &["parent", "__parent"]).unwrap(), 0);
        assert_eq!(btf.member_offset("kernfs_node", "id").unwrap(), 8);
        let missing = btf.member_offset_any("kernfs_node", &["parent", "up"]).unwrap_err().to_string();
        assert_eq!(missing, "kernel BTF: struct kernfs_node has no member parent or up");
    }

    #[test]
    fn hook_arguments_and_enumerators_come_from_btf() {
        let btf = kernel_like();
        assert!(btf.has_function("bpf_lsm_inode_setattr"));
        assert!(!btf.has_function("bpf_lsm_inode_set_acl"));
        assert_eq!(hook_argument(&btf, "inode_setattr", "dentry").unwrap(), 1);
        let err = hook_argument(&btf, "inode_setattr", "inode").unwrap_err().to_string();
        assert!(err.contains("(its arguments: idmap, dentry, attr)"), "{err}");
        assert!(matches!(hook_argument(&btf, "inode_set_acl", "dentry"), Err(BtfError::NoFunction(_))));
        assert_eq!(enumerator_bits(&btf, "kernel_read_file_id", &["READING_FIRMWARE", "READING_GONE"]).unwrap(), 0b10);
        assert!(matches!(enumerator_bits(&btf, "kernel_load_data_id", &[]), Err(BtfError::NoEnum(_))));
    }
}
