//! The ioctls that change a disk or what sits on it, which a subject may
//! never make (`self.blockdev`), whatever the policy says: a subject opens
//! no block device for writing, but these go under that refusal, and most
//! ask only for CAP_SYS_ADMIN (or CAP_SYS_RAWIO, refused to subjects too).
//! By number, as the kernel program compares them; the plain tests check
//! that reads stay.

/// `SG_IO`: SCSI commands, writes among them, under every file check.
pub const SG_IO: u32 = 0x2285;
/// The NVMe ioctl type (`'N'`): passthrough commands, writes among them.
pub const NVME_IOCTL_TYPE: u32 = b'N' as u32;
/// `EXT4_IOC_MOVE_EXT` (`'f'` 15), `XFS_IOC_SWAPEXT` (`'X'` 109) and
/// `F2FS_IOC_MOVE_RANGE` (0xf5 9), by type and number: they move blocks
/// between files and pass no `file_permission`, so a write fd held from
/// before confinement (or handed over) would rewrite a protected file past
/// every file check, as a block device write would. (`EXT4_IOC_SWAP_BOOT`
/// is refused with the generation ioctls.)
pub const SWAP_EXTENTS: [(u32, u32); 3] = [(b'f' as u32, 15), (b'X' as u32, 109), (0xf5, 9)];
/// Device-mapper's ioctl type, on /dev/mapper/control.
pub const DM_IOCTL_TYPE: u32 = 0xfd;
/// The device-mapper commands that change a mapping, by number: remove
/// all (1), create (3), remove (4), rename (5), suspend (6, which freezes
/// the file system on it), load a table (9, an `error` target fails every
/// write), clear it (10), a target message (14), geometry (15). The reads
/// (version, list, status, table, wait) stay a subject's.
pub const DM_CHANGES: u32 = 1 << 1 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 9 | 1 << 10 | 1 << 14 | 1 << 15;

/// The loop device commands that change a device, plain numbers of type
/// `'L'` (0x4c): set or clear its file (0, 1, and configure 10), its
/// offset, size limit or flags (2, 4), swap the file of a read-only one
/// under its mount (6: another image under a mounted file system), capacity
/// (7), direct I/O (8), block size (9); and loop-control's remove
/// (0x4c81). The reads (3, 5) and loop-control's add and get-free stay.
pub const LOOP_CHANGES: u32 = 1 << 0 | 1 << 1 | 1 << 2 | 1 << 4 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10;
/// The loop ioctls' type, `'L'`.
pub const LOOP_IOCTL_TYPE: u32 = 0x4c;
/// `LOOP_CTL_REMOVE`, on /dev/loop-control.
pub const LOOP_CTL_REMOVE: u32 = 0x4c81;
/// `BLKROSET`, `BLKRRPART` and `BLKPG` (a block device made read-only,
/// its partitions read again, added, resized or deleted): a subject opens
/// no block device for writing, but these ask only for CAP_SYS_ADMIN.
pub const BLOCK_CHANGES: [u32; 3] = [0x125d, 0x125f, 0x1269];
/// Type 0x12 numbers that write a block device without a `write()`:
/// `BLKDISCARD` (119), `BLKSECDISCARD` (125), `BLKZEROOUT` (127) and the
/// zone resets, opens, closes and finishes (131, 134-136), through a write
/// fd held from before confinement or handed over (an ioctl passes no
/// `file_permission`; a mounted disk's data goes).
pub const BLOCK_WRITES: [u32; 7] = [119, 125, 127, 131, 134, 135, 136];
/// The block layer's ioctl type.
pub const BLOCK_IOCTL_TYPE: u32 = 0x12;
/// Persistent reservations (`IOC_PR_REGISTER` .. `IOC_PR_CLEAR`, type
/// `'p'` 200-205): registering, reserving or preempting a disk, which
/// another host (or this one) shares, asks only for CAP_SYS_ADMIN. Type
/// `'p'` from 220 is the SED-OPAL ioctls: a self-encrypting drive taken
/// over and locked. (Below 200, `'p'` is the RTC's, and parport's.)
pub const PERSISTENT_RESERVATION_TYPE: u32 = b'p' as u32;
/// The reservation numbers that change one (206 and 207 read).
pub const PERSISTENT_RESERVATION_CHANGES: core::ops::RangeInclusive<u32> = 200..=205;
/// The first SED-OPAL number of type `'p'`.
pub const OPAL_FIRST: u32 = 220;
/// md's ioctls (type 9): from 0x20 on they change an array (add, remove,
/// fail a disk, stop, run, set read-only or read-write); below, reads.
/// `SET_DISK_FAULTY` on a read-only fd fails the last disk of a mirror.
pub const MD_IOCTL_TYPE: u32 = 0x09;
/// The first md number that changes an array.
pub const MD_FIRST_CHANGE: u32 = 0x20;
/// SCSI's own numbers on a whole disk's fd, read-only or not:
/// `SCSI_IOCTL_SEND_COMMAND` (1, a command as SG_IO sends one),
/// `SCSI_IOCTL_STOP_UNIT` (6), `CDROMEJECT` (0x5309), `CDROM_SEND_PACKET`
/// (0x5393, SG_IO by another number). Matched on any file: a bare 1 is
/// also FIBMAP (refused anyway: it needs CAP_SYS_RAWIO), and another
/// driver's bare 1 or 6 is refused with them, more refused, never less.
pub const SCSI_COMMANDS: [u32; 4] = [1, 6, 0x5309, 0x5393];
/// nbd's ioctls (type 0xab): every one sets up, clears or disconnects a
/// device.
pub const NBD_IOCTL_TYPE: u32 = 0xab;

/// Whether `cmd` changes a block device or what is under one.
#[inline(always)]
pub fn changes_a_disk(cmd: u32) -> bool {
    let (kind, number) = ((cmd >> 8) & 0xff, cmd & 0xff);
    let remaps = kind == DM_IOCTL_TYPE && number < 32 && DM_CHANGES & (1 << number) != 0;
    let loop_change = cmd >> 16 == 0
        && kind == LOOP_IOCTL_TYPE
        && ((number < 32 && LOOP_CHANGES & (1 << number) != 0) || cmd == LOOP_CTL_REMOVE);
    let reservation = kind == PERSISTENT_RESERVATION_TYPE
        && (PERSISTENT_RESERVATION_CHANGES.contains(&number) || number >= OPAL_FIRST);
    cmd == SG_IO
        || kind == NVME_IOCTL_TYPE
        || SWAP_EXTENTS.contains(&(kind, number))
        || remaps
        || loop_change
        || BLOCK_CHANGES.contains(&cmd)
        || (kind == BLOCK_IOCTL_TYPE && BLOCK_WRITES.contains(&number))
        || reservation
        || (kind == MD_IOCTL_TYPE && number >= MD_FIRST_CHANGE)
        || SCSI_COMMANDS.contains(&cmd)
        || kind == NBD_IOCTL_TYPE
}

/// `FIFREEZE` (`_IOWR('X', 119, int)`) stalls every write to a file
/// system until thawed; `FS_IOC_SHUTDOWN` (`_IOR('X', 125, __u32)`, the
/// same number in ext4, xfs, f2fs and btrfs) stops it for good.
pub const FIFREEZE: u32 = 0xc004_5877;
pub const FS_IOC_SHUTDOWN: u32 = 0x8004_587d;
/// By type and number: `XFS_IOC_SET_RESBLKS` (`'X'` 114: the free space
/// moved to a reserve, every write ENOSPC), `XFS_IOC_FSGROWFSDATA` (`'X'`
/// 110, which shrinks too since 5.12), btrfs's `RESIZE` (0x94 3, a shrink),
/// `SUBVOL_SETFLAGS` (0x94 26, a subvolume made read-only) and
/// `F2FS_IOC_RESIZE_FS` (0xf5 16).
pub const FILE_SYSTEM_CHANGES: [(u32, u32); 5] =
    [(b'X' as u32, 114), (b'X' as u32, 110), (0x94, 3), (0x94, 26), (0xf5, 16)];

/// Whether `cmd` stops a file system, or takes its room or its writes.
#[inline(always)]
pub fn changes_a_file_system(cmd: u32) -> bool {
    cmd == FIFREEZE || cmd == FS_IOC_SHUTDOWN || FILE_SYSTEM_CHANGES.contains(&((cmd >> 8) & 0xff, cmd & 0xff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_known_and_reads_are_not() {
        // SG_IO, NVME_IOCTL_IO_CMD, EXT4_IOC_MOVE_EXT, DM_DEV_SUSPEND,
        // LOOP_CLR_FD, LOOP_CHANGE_FD, LOOP_CONFIGURE, LOOP_CTL_REMOVE,
        // BLKROSET, BLKPG, IOC_PR_PREEMPT_ABORT, an OPAL lock
        // (IOC_OPAL_LOCK_UNLOCK, 'p' 221), BLKZEROOUT, BLKDISCARD,
        // BLKRESETZONE, SET_DISK_FAULTY, STOP_ARRAY, SCSI_IOCTL_SEND_COMMAND,
        // SCSI_IOCTL_STOP_UNIT, CDROM_SEND_PACKET, NBD_DISCONNECT.
        let changes = [
            0x2285,
            0xc048_4e43,
            0xc028_660f,
            0xc138_fd06,
            0x4c01,
            0x4c06,
            0x4c0a,
            0x4c81,
            0x125d,
            0x1269,
            0x4018_70cc,
            0x4118_70dd,
            0x127f,
            0x1277,
            0x4010_1283,
            0x0929,
            0x0932,
            1,
            6,
            0x5393,
            0xab08,
        ];
        for change in changes {
            assert!(changes_a_disk(change), "{change:#x}");
        }
        // DM_VERSION, DM_LIST_DEVICES, LOOP_GET_STATUS64, LOOP_CTL_ADD,
        // LOOP_CTL_GET_FREE, BLKGETSIZE64, BLKROGET, BLKSSZGET, FIONREAD,
        // an RTC read ('p' 9), an 'L' ioctl with a size (not loop's),
        // GET_ARRAY_INFO, RAID_VERSION, FIGETBSZ, TIOCGWINSZ.
        let reads = [
            0xc138_fd00,
            0xc138_fd02,
            0x4c05,
            0x4c80,
            0x4c82,
            0x8008_1272,
            0x125e,
            0x1268,
            0x541b,
            0x8024_7009,
            0x4004_4c01,
            0x8048_0911,
            0x800c_0910,
            2,
            0x5413,
        ];
        for read in reads {
            assert!(!changes_a_disk(read), "{read:#x}");
        }
    }

    #[test]
    fn file_system_changes_are_known_and_their_neighbours_are_not() {
        // FIFREEZE, FS_IOC_SHUTDOWN, XFS_IOC_SET_RESBLKS,
        // BTRFS_IOC_RESIZE, BTRFS_IOC_SUBVOL_SETFLAGS.
        // XFS_IOC_FSGROWFSDATA, F2FS_IOC_RESIZE_FS.
        for change in [FIFREEZE, FS_IOC_SHUTDOWN, 0xc010_5872, 0x5000_9403, 0x4008_941a, 0x4010_586e, 0x4008_f510] {
            assert!(changes_a_file_system(change), "{change:#x}");
        }
        // FITHAW, XFS_IOC_GET_RESBLKS, BTRFS_IOC_SUBVOL_GETFLAGS, FS_IOC_GETFLAGS.
        for read in [0xc004_5878, 0x8010_5873, 0x8008_9419, 0x8008_6601] {
            assert!(!changes_a_file_system(read), "{read:#x}");
        }
    }
}
