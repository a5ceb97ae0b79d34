//! How each kind of target sits in a [`TargetKey`] ([`TargetKind`] says
//! which action has which), written and read by the kernel side's
//! classifiers, the daemon's policy compiler and renderer, and the tests
//! alike. Some writers on the kernel side write straight into a field, for
//! the verifier, in the layouts set here: `decide_action` in agent-ebpf (a
//! file's and a namespace's words), ipc.rs (a socket name, read from the
//! kernel), and the classifiers that read a name or byte from the message
//! into its place (nftables and ipset names and the by-reference marker,
//! an interface name, a generic netlink command). Everything a
//! kind does not use stays zero; an all-zero target is what a rule's `*`
//! is, so a message that names nothing is covered by `*` rules only. An object the kernel takes by handle carries
//! [`crate::netlink::BY_REFERENCE`] instead of a name (see there).
//!
//! [`TargetKind`]: crate::action::TargetKind

use crate::{NAME_LEN, TargetKey, netlink_protocols::GENL_COMMAND_PRESENT};

/// Where a `File` key for a new name (its "inode" the directory's, with
/// [`crate::NAME_KEY`] in the device) holds the name: a subject's create,
/// link or rename into a protected directory is decided on the name it
/// makes, so that a warrant can name one file that is not there yet.
pub const FILE_NAME_AT: usize = 16;
/// Room for a new name, its NUL included: a longer name is left out (the
/// key names the directory only, which no warrant does).
pub const FILE_NAME_LEN: usize = NAME_LEN - FILE_NAME_AT;

/// The last byte of a `Socket` key's name when the socket's name was longer
/// than the field: no policy name has it, so only `*` covers such a socket.
pub const SOCKET_NAME_CUT: u8 = 0xff;

#[inline(always)]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[inline(always)]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Copies `name` into a name field, cut to leave its NUL.
#[inline(always)]
fn put_name(field: &mut [u8; NAME_LEN], name: &[u8]) {
    debug_assert!(name.len() < NAME_LEN, "a name policy parsing should have refused");
    let len = name.len().min(NAME_LEN - 1);
    field[..len].copy_from_slice(&name[..len]);
}

impl TargetKey {
    /// The key of `action` for `profile_id`, its target still empty.
    pub const fn new(profile_id: u32, action: u32) -> Self {
        let mut key = Self::zeroed();
        key.profile_id = profile_id;
        key.action = action;
        key
    }

    /// `Firewall`: an nfproto family and the table and object names (empty: none).
    pub fn firewall(profile_id: u32, action: u32, family: u8, table: &[u8], object: &[u8]) -> Self {
        let mut key = Self::new(profile_id, action);
        key.family = family;
        put_name(&mut key.table, table);
        put_name(&mut key.object, object);
        key
    }

    /// `IpSet`: the set's name, and the other set's for rename and swap.
    pub fn ipset(profile_id: u32, action: u32, set: &[u8], other: &[u8]) -> Self {
        Self::firewall(profile_id, action, 0, set, other)
    }

    /// `File`: the tree's 1-based index, and the inode and its device
    /// (kernel encoding); `None` for the whole tree.
    #[inline(always)]
    pub fn set_file(&mut self, tree: u32, inode: Option<(u64, u64)>) {
        self.table[..4].copy_from_slice(&tree.to_le_bytes());
        if let Some((ino, dev)) = inode {
            self.set_inode(ino, dev);
        }
    }

    /// A `File` key's new name (see [`FILE_NAME_AT`]), cut at its NUL.
    pub fn set_file_name(&mut self, name: &[u8]) {
        let len = name.len().min(FILE_NAME_LEN - 1);
        self.object[FILE_NAME_AT..FILE_NAME_AT + len].copy_from_slice(&name[..len]);
    }

    /// A `File` key's new name (empty: none, or one of [`FILE_NAME_LEN`]
    /// bytes or more).
    pub fn file_name(&self) -> &[u8] {
        let field = &self.object[FILE_NAME_AT..];
        &field[..field.iter().position(|&byte| byte == 0).unwrap_or(field.len())]
    }

    /// The tree of a `File` key (0: none).
    pub fn file_tree(&self) -> u32 {
        u32_at(&self.table, 0)
    }

    /// `Inode` (and a `File` key's file): inode number and device.
    #[inline(always)]
    pub fn set_inode(&mut self, ino: u64, dev: u64) {
        self.object[..8].copy_from_slice(&ino.to_le_bytes());
        self.object[8..16].copy_from_slice(&dev.to_le_bytes());
    }

    /// The (inode number, device) of an `Inode` or `File` key.
    pub fn inode(&self) -> (u64, u64) {
        (u64_at(&self.object, 0), u64_at(&self.object, 8))
    }

    /// `Namespace`: the nsfs inode number (0: no namespace named).
    #[inline(always)]
    pub fn set_netns(&mut self, inode: u64) {
        self.object[..8].copy_from_slice(&inode.to_le_bytes());
    }

    /// The namespace a `Namespace` key names (0: none).
    pub fn netns(&self) -> u64 {
        u64_at(&self.object, 0)
    }

    /// `Port`: a port number (0: none).
    #[inline(always)]
    pub fn set_port(&mut self, port: u16) {
        self.object[..2].copy_from_slice(&port.to_le_bytes());
    }

    /// The port of a `Port` key.
    pub fn port(&self) -> u16 {
        u16::from_le_bytes([self.object[0], self.object[1]])
    }

    /// `Interface`: the namespace the message acts in. The name goes in
    /// `table` (where the kernel side reads it straight in).
    #[inline(always)]
    pub fn set_interface_netns(&mut self, netns: u64) {
        self.object[8..16].copy_from_slice(&netns.to_le_bytes());
    }

    /// The namespace an `Interface` key acts in (nsfs inode).
    pub fn interface_netns(&self) -> u64 {
        u64_at(&self.object, 8)
    }

    /// `Interface` that cannot be named: its index (the name stays empty,
    /// so only `*` covers it).
    #[inline(always)]
    pub fn set_unnamed_interface(&mut self, index: u32) {
        self.object[..4].copy_from_slice(&index.to_le_bytes());
    }

    /// The index of an `Interface` key that could not be named.
    pub fn interface_index(&self) -> u32 {
        u32_at(&self.object, 0)
    }

    /// `Protocol`: a netlink protocol and message type (0: every type).
    #[inline(always)]
    pub fn set_protocol(&mut self, protocol: u8, msg_type: u16) {
        self.family = protocol;
        self.table[..2].copy_from_slice(&msg_type.to_le_bytes());
    }

    /// A generic netlink `Protocol` key's command (the kernel side reads the
    /// byte into `object[0]` itself and then marks it present).
    #[inline(always)]
    pub fn set_generic_command(&mut self, command: u8) {
        self.object[0] = command;
        self.object[1] = GENL_COMMAND_PRESENT;
    }

    /// A `Protocol` key's (protocol, message type, generic command).
    pub fn protocol(&self) -> (u8, u16, Option<u8>) {
        let command = (self.object[1] == GENL_COMMAND_PRESENT).then_some(self.object[0]);
        (self.family, u16::from_le_bytes([self.table[0], self.table[1]]), command)
    }

    /// `Socket`: a unix socket's name (an abstract one as `@name`).
    pub fn set_socket(&mut self, name: &[u8]) {
        put_name(&mut self.table, name);
    }

    /// A `Socket` key's name (empty: none), and whether it was cut
    /// ([`SOCKET_NAME_CUT`]).
    pub fn socket(&self) -> (&[u8], bool) {
        let kept = &self.table[..NAME_LEN - 1];
        let end = kept.iter().position(|b| *b == 0).unwrap_or(kept.len());
        (&kept[..end], self.table[NAME_LEN - 1] == SOCKET_NAME_CUT)
    }

    /// `Interface`: its name (the kernel side reads it into `table` itself).
    pub fn set_interface_name(&mut self, name: &[u8]) {
        put_name(&mut self.table, name);
    }

    /// An `Interface` key's name (empty: it could not be named).
    pub fn interface_name(&self) -> &[u8] {
        crate::name_bytes(&self.table)
    }

    /// `Route`: its table and namespace; the prefix by [`Self::set_route_prefix`].
    #[inline(always)]
    pub fn set_route(&mut self, table: u32, netns: u64) {
        self.table[..4].copy_from_slice(&table.to_le_bytes());
        self.table[8..16].copy_from_slice(&netns.to_le_bytes());
    }

    /// A `Route`'s destination: the address family, the prefix length and
    /// the address, bits past the length cleared (an IPv4 one in the
    /// first four bytes).
    #[inline(always)]
    pub fn set_route_prefix(&mut self, family: u8, len: u8, address: &[u8; 16]) {
        self.object[0] = family;
        self.object[1] = len;
        self.object[4..20].copy_from_slice(address);
    }

    /// A `Route` key's (table, namespace).
    pub fn route(&self) -> (u32, u64) {
        (u32_at(&self.table, 0), u64_at(&self.table, 8))
    }

    /// A `Route` key's (family, prefix length, address).
    pub fn route_prefix(&self) -> (u8, u8, [u8; 16]) {
        let mut address = [0u8; 16];
        address.copy_from_slice(&self.object[4..20]);
        (self.object[0], self.object[1], address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_reads_back_what_was_written() {
        let mut key = TargetKey::new(3, 7);
        key.set_file(2, Some((41, 0x800001)));
        assert_eq!((key.file_tree(), key.inode()), (2, (41, 0x800001)));
        let mut key = TargetKey::new(3, 7);
        key.set_netns(4026531840);
        assert_eq!(key.netns(), 4026531840);
        let mut key = TargetKey::new(3, 7);
        key.set_port(8443);
        assert_eq!(key.port(), 8443);
        let mut key = TargetKey::new(3, 7);
        key.set_interface_netns(4026531840);
        key.set_unnamed_interface(12);
        assert_eq!((key.interface_netns(), key.interface_index()), (4026531840, 12));
        let mut key = TargetKey::new(3, 7);
        key.set_route(254, 4026531840);
        let mut address = [0u8; 16];
        address[..4].copy_from_slice(&[10, 1, 0, 0]);
        key.set_route_prefix(2, 16, &address);
        assert_eq!((key.route(), key.route_prefix()), ((254, 4026531840), (2, 16, address)));
        let mut key = TargetKey::new(3, 7);
        key.set_protocol(16, 0x1c);
        key.set_generic_command(5);
        assert_eq!(key.protocol(), (16, 0x1c, Some(5)));
        let mut key = TargetKey::new(3, 7);
        key.set_protocol(9, 1100);
        assert_eq!(key.protocol(), (9, 1100, None));
        let mut key = TargetKey::new(3, 7);
        key.set_socket(b"@ctl");
        assert_eq!(key.socket(), (&b"@ctl"[..], false));
        key.table[NAME_LEN - 1] = SOCKET_NAME_CUT;
        assert_eq!(key.socket(), (&b"@ctl"[..], true));
        let mut key = TargetKey::new(3, 7);
        key.set_interface_name(b"eth0");
        key.set_interface_netns(4026531840);
        assert_eq!((key.interface_name(), key.interface_netns()), (&b"eth0"[..], 4026531840));
        assert_eq!((key.profile_id, key.action, key.family), (3, 7, 0));
    }

    #[test]
    fn names_keep_their_nul() {
        let longest = [b'a'; NAME_LEN - 1];
        let key = TargetKey::firewall(1, 2, 1, &longest, b"input");
        assert_eq!(key.table[NAME_LEN - 1], 0);
        assert_eq!(&key.object[..6], b"input\0");
        assert_eq!(TargetKey::firewall(1, 2, 1, b"", b""), TargetKey { family: 1, ..TargetKey::new(1, 2) });
    }
}
