//! Just enough of a BTF reader for the running kernel
//! (/sys/kernel/btf/vmlinux): struct member offsets, functions (their ids
//! and parameter names) and enumerators, by name. Rust BPF programs have no
//! CO-RE, so the daemon resolves the offsets they need ([`kernel_offsets`])
//! and hands them over as a global.

use std::collections::HashMap;

use thiserror::Error;

mod offsets;
pub use offsets::kernel_offsets;

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
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_ENUM64: u32 = 19;

/// How deep anonymous structs and unions nest in a struct a lookup goes
/// through (the kernel's nest a few levels).
const ANONYMOUS_DEPTH: u32 = 16;

/// A struct or union member, a function parameter (bit_offset 0) or an
/// enumerator (type_id 0, value in `value`).
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    value: i64,
}

/// One type's record: its header and where its members start in the blob.
struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    vlen: usize,
    /// The referenced type (functions: their prototype).
    size_or_type: u32,
    members_at: usize,
}

/// Kernel BTF, kept as the blob it was read as with an index over it: where
/// each type's record starts (id 1 first) and the structs, functions,
/// enums and typedefs by a hash of their names. Members are read from the
/// blob when asked for. A parse into owned types took ~19 MB for a 5.5 MB
/// vmlinux: most of the daemon's peak.
pub struct KernelBtf {
    data: Vec<u8>,
    /// The string section's start and end in `data`.
    strings: (usize, usize),
    /// Where each type's record starts in `data`: id 1 is index 0.
    type_at: Vec<u32>,
    /// [`name_key`] of a struct's, function's, enum's or typedef's name -> the first
    /// type id of that kind class with a name of that hash.
    by_name: HashMap<u64, u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(BtfError::Malformed("truncated"))
}

/// What a name is looked up as: structs, functions, enums (either size)
/// and typedefs each have their own names.
#[derive(Clone, Copy, PartialEq)]
enum NameClass {
    Struct,
    Function,
    Enum,
    Typedef,
}

impl NameClass {
    fn of(kind: u32) -> Option<Self> {
        match kind {
            KIND_STRUCT => Some(Self::Struct),
            KIND_FUNC => Some(Self::Function),
            KIND_ENUM | KIND_ENUM64 => Some(Self::Enum),
            KIND_TYPEDEF => Some(Self::Typedef),
            _ => None,
        }
    }
}

/// The index key of `name` in `class`: a 64-bit hash. Two names may share
/// one; a lookup compares the name it finds and, when it differs, searches
/// every type ([`KernelBtf::find_by_scan`]).
fn name_key(class: NameClass, name: &[u8]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    (class as u8).hash(&mut hasher);
    name.hash(&mut hasher);
    hasher.finish()
}

impl KernelBtf {
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Read { path: path.into(), source })?;
        Self::parse(data)
    }

    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::Malformed("bad magic (only little-endian BTF is read)"));
        }
        let hdr_len = u32_at(&data, 4)? as usize;
        let type_off = u32_at(&data, 8)? as usize;
        let type_len = u32_at(&data, 12)? as usize;
        let str_off = u32_at(&data, 16)? as usize;
        let str_len = u32_at(&data, 20)? as usize;
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings = (hdr_len + str_off, hdr_len + str_off + str_len);
        if strings.1 > data.len() || types_end > data.len() {
            return Err(BtfError::Malformed("a section is out of range"));
        }
        let mut btf = KernelBtf { data, strings, type_at: Vec::new(), by_name: HashMap::new() };
        let mut at = types_start;
        while at < types_end {
            let info = u32_at(&btf.data, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let trailing = match kind {
                1 | 14 | 17 => 4, // int, var, decl_tag
                3 => 12,          // array
                15 | KIND_STRUCT | KIND_UNION | KIND_ENUM64 => vlen * 12,
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                2 | 7..=12 | 16 | 18 => 0,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            if at + 12 + trailing > types_end {
                return Err(BtfError::Malformed("truncated"));
            }
            btf.type_at.push(at as u32);
            let id = btf.type_at.len() as u32;
            let name_off = u32_at(&btf.data, at)?;
            if let Some(class) = NameClass::of(kind).filter(|_| name_off != 0) {
                // Keep the first complete definition of a name.
                btf.by_name.entry(name_key(class, btf.string_bytes(name_off))).or_insert(id);
            }
            at += 12 + trailing;
        }
        Ok(btf)
    }

    fn string_bytes(&self, offset: u32) -> &[u8] {
        let (start, end) = self.strings;
        let rest = self.data.get(start + offset as usize..end).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    fn string(&self, offset: u32) -> &str {
        std::str::from_utf8(self.string_bytes(offset)).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<Type> {
        let at = *self.type_at.get(id.checked_sub(1)? as usize)? as usize;
        // Every record was checked to be in the blob when indexed.
        let word = |n: usize| u32_at(&self.data, at + n * 4).unwrap_or(0);
        let info = word(1);
        Some(Type {
            name_off: word(0),
            kind: (info >> 24) & 0x1f,
            kind_flag: info >> 31 == 1,
            vlen: (info & 0xffff) as usize,
            size_or_type: word(2),
            members_at: at + 12,
        })
    }

    /// The members, parameters or enumerators of `ty` (none for other kinds).
    fn members(&self, ty: &Type) -> impl Iterator<Item = Member> + '_ {
        let stride = match ty.kind {
            KIND_STRUCT | KIND_UNION | KIND_ENUM64 => 12,
            KIND_ENUM | KIND_FUNC_PROTO => 8,
            _ => 0,
        };
        let count = if stride == 0 { 0 } else { ty.vlen };
        let (kind, kind_flag, at) = (ty.kind, ty.kind_flag, ty.members_at);
        (0..count).map(move |i| {
            let m = at + i * stride;
            let word = |n: usize| u32_at(&self.data, m + n * 4).unwrap_or(0);
            match kind {
                KIND_STRUCT | KIND_UNION => Member {
                    name_off: word(0),
                    type_id: word(1),
                    bit_offset: if kind_flag { word(2) & 0xff_ffff } else { word(2) },
                    value: 0,
                },
                KIND_FUNC_PROTO => Member { name_off: word(0), type_id: word(1), bit_offset: 0, value: 0 },
                KIND_ENUM => Member { name_off: word(0), type_id: 0, bit_offset: 0, value: i64::from(word(1) as i32) },
                _ => Member {
                    name_off: word(0),
                    type_id: 0,
                    bit_offset: 0,
                    value: (u64::from(word(2)) << 32 | u64::from(word(1))) as i64,
                },
            }
        })
    }

    /// The first type of `class` named `name`.
    fn find(&self, class: NameClass, name: &str) -> Option<u32> {
        let id = *self.by_name.get(&name_key(class, name.as_bytes()))?;
        let found = self.ty(id)?;
        if self.string_bytes(found.name_off) == name.as_bytes() {
            return Some(id);
        }
        // Another name with the same hash took the key.
        self.find_by_scan(class, name)
    }

    fn find_by_scan(&self, class: NameClass, name: &str) -> Option<u32> {
        (1..=self.type_at.len() as u32).find(|&id| {
            self.ty(id).is_some_and(|ty| {
                NameClass::of(ty.kind) == Some(class) && self.string_bytes(ty.name_off) == name.as_bytes()
            })
        })
    }

    /// Byte offset of `member` in `struct name`, looking through anonymous
    /// struct and union members as C does.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let id = self.find(NameClass::Struct, name).ok_or_else(|| BtfError::NoStruct(name.into()))?;
        let bits = self.find_member(id, member, 0).ok_or_else(|| BtfError::NoMember(name.into(), member.into()))?;
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
        self.function_id(name).is_some()
    }

    /// The type id of function `name`: what a tracing program attaches to.
    pub fn function_id(&self, name: &str) -> Option<u32> {
        self.find(NameClass::Function, name)
    }

    /// The type id of typedef `name` (a BTF tracepoint attaches to its
    /// `btf_trace_<tracepoint>` typedef).
    pub fn typedef_id(&self, name: &str) -> Option<u32> {
        self.find(NameClass::Typedef, name)
    }

    /// The parameter names of function `name`, in order.
    pub fn parameters(&self, name: &str) -> Option<Vec<&str>> {
        let function = self.ty(self.find(NameClass::Function, name)?)?;
        let prototype = self.ty(function.size_or_type).filter(|t| t.kind == KIND_FUNC_PROTO)?;
        Some(self.members(&prototype).map(|p| self.string(p.name_off)).collect())
    }

    /// Every enumerator of `enum name` with its value.
    pub fn enumerators(&self, name: &str) -> Option<Vec<(&str, i64)>> {
        let ty = self.ty(self.find(NameClass::Enum, name)?)?;
        Some(self.members(&ty).map(|e| (self.string(e.name_off), e.value)).collect())
    }

    /// The bit offset of `member` in struct or union `id`, through at most
    /// [`ANONYMOUS_DEPTH`] anonymous members (a malformed blob could make
    /// one contain itself).
    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<u32> {
        let ty = self.ty(id).filter(|ty| matches!(ty.kind, KIND_STRUCT | KIND_UNION))?;
        for m in self.members(&ty) {
            if m.name_off == 0 {
                // Anonymous struct or union: its members are ours.
                if depth < ANONYMOUS_DEPTH
                    && let Some(bits) = self.find_member(m.type_id, member, depth + 1)
                {
                    return m.bit_offset.checked_add(bits);
                }
            } else if self.string_bytes(m.name_off) == member.as_bytes() {
                return Some(m.bit_offset);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::offsets::{enumerator_bits, hook_argument};
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
        KernelBtf::parse(blob(&types, &names)).expect("parses")
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
    fn a_name_is_found_by_its_hash_or_by_a_scan_and_the_first_definition_wins() {
        let types = vec![
            ("int", 1 << 24, 4, vec![32]),
            ("dup", 4 << 24, 8, vec![]),
            ("dup", 4 << 24, 16, vec![]),
            ("dup", 12 << 24, 0, vec![]),
            ("dup", 8 << 24, 2, vec![]),
        ];
        let btf = KernelBtf::parse(blob(&types, &[])).expect("parses");
        assert_eq!(btf.find(NameClass::Struct, "dup"), Some(2));
        assert_eq!(btf.find(NameClass::Function, "dup"), Some(4));
        assert_eq!(btf.typedef_id("dup"), Some(5));
        // What a lookup falls back to when another name took the hash.
        assert_eq!(btf.find_by_scan(NameClass::Struct, "dup"), Some(2));
        assert_eq!(btf.find_by_scan(NameClass::Enum, "dup"), None);
        assert_eq!(btf.find(NameClass::Struct, "int"), None);
    }

    #[test]
    fn an_anonymous_member_that_contains_itself_ends_the_search() {
        // Struct 2 has one anonymous member of type 2: itself.
        let types = vec![("int", 1 << 24, 4, vec![32]), ("looped", 4 << 24 | 1, 8, vec![0, 2, 0])];
        let btf = KernelBtf::parse(blob(&types, &[])).expect("parses");
        assert!(matches!(btf.member_offset("looped", "x"), Err(BtfError::NoMember(..))));
    }

    #[test]
    fn a_record_past_the_type_section_is_malformed() {
        let mut data = blob(&[("s", 4 << 24 | 2, 8, vec![0, 0, 0])], &[]);
        // The struct claims two members and carries one.
        assert!(matches!(KernelBtf::parse(data.clone()), Err(BtfError::Malformed(_))));
        data.truncate(10);
        assert!(matches!(KernelBtf::parse(data), Err(BtfError::Malformed(_))));
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
