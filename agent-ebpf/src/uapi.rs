//! The kernel's user-visible numbers several hook families read: file
//! types, socket families and types, device numbers.

/// A file's type, its mode's `S_IFMT` bits.
pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFBLK: u16 = 0o060000;

pub const AF_UNSPEC: u16 = 0;
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
/// `AF_KEY` (PF_KEY v2).
pub const AF_KEY: u16 = 15;
pub const AF_PACKET: u16 = 17;
/// SMC, which connects and sends over a TCP socket of its own.
pub const AF_SMC: u16 = 43;
pub const AF_XDP: u16 = 44;

pub const SOCK_STREAM: u16 = 1;
pub const SOCK_RAW: u16 = 3;
pub const SOCK_SEQPACKET: u16 = 5;

/// The kernel's own `dev_t` (not userspace's): the major number from bit 20.
pub const fn device(major: u32, minor: u32) -> u32 {
    major << 20 | minor
}

/// `rdev`'s major number.
pub const fn major(rdev: u32) -> u32 {
    rdev >> 20
}

/// `/dev/sg*`'s major number, fixed.
pub const SCSI_GENERIC_MAJOR: u32 = 21;
/// `/dev/input/*`'s major number.
pub const INPUT_MAJOR: u32 = 13;
pub const UINPUT_DEVICE: u32 = device(10, 223);
pub const FUSE_DEVICE: u32 = device(10, 229);
