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
pub const LOOP_IOCTL_TYPE: u32 = 0x4c;
pub const LOOP_CTL_REMOVE: u32 = 0x4c81;
/// `BLKROSET`, `BLKRRPART` and `BLKPG` (a block device made read-only,
/// its partitions read again, added, resized or deleted): a subject opens
/// no block device for writing, but these ask only for CAP_SYS_ADMIN.
pub const BLOCK_CHANGES: [u32; 3] = [0x125d, 0x125f, 0x1269];
/// Persistent reservations (`IOC_PR_REGISTER` .. `IOC_PR_CLEAR`, type
/// `'p'` 200-205): registering, reserving or preempting a disk, which
/// another host (or this one) shares, asks only for CAP_SYS_ADMIN.
pub const PERSISTENT_RESERVATION_TYPE: u32 = b'p' as u32;
pub const PERSISTENT_RESERVATION_CHANGES: core::ops::RangeInclusive<u32> = 200..=205;

/// Whether `cmd` changes a block device or what is under one.
#[inline(always)]
pub fn changes_a_disk(cmd: u32) -> bool {
    let (kind, number) = ((cmd >> 8) & 0xff, cmd & 0xff);
    let remaps = kind == DM_IOCTL_TYPE && number < 32 && DM_CHANGES & (1 << number) != 0;
    let loop_change = cmd >> 16 == 0
        && kind == LOOP_IOCTL_TYPE
        && ((number < 32 && LOOP_CHANGES & (1 << number) != 0) || cmd == LOOP_CTL_REMOVE);
    let reservation = kind == PERSISTENT_RESERVATION_TYPE && PERSISTENT_RESERVATION_CHANGES.contains(&number);
    cmd == SG_IO
        || kind == NVME_IOCTL_TYPE
        || SWAP_EXTENTS.contains(&(kind, number))
        || remaps
        || loop_change
        || BLOCK_CHANGES.contains(&cmd)
        || reservation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_known_and_reads_are_not() {
        // SG_IO, NVME_IOCTL_IO_CMD, EXT4_IOC_MOVE_EXT, DM_DEV_SUSPEND,
        // LOOP_CLR_FD, LOOP_CHANGE_FD, LOOP_CONFIGURE, LOOP_CTL_REMOVE,
        // BLKROSET, BLKPG, IOC_PR_PREEMPT_ABORT.
        for change in
            [0x2285, 0xc048_4e43, 0xc028_660f, 0xc138_fd06, 0x4c01, 0x4c06, 0x4c0a, 0x4c81, 0x125d, 0x1269, 0x4018_70cc]
        {
            assert!(changes_a_disk(change), "{change:#x}");
        }
        // DM_VERSION, DM_LIST_DEVICES, LOOP_GET_STATUS64, LOOP_CTL_ADD,
        // LOOP_CTL_GET_FREE, BLKGETSIZE64, BLKROGET, BLKSSZGET, FIONREAD,
        // an RTC read ('p' 9), an 'L' ioctl with a size (not loop's).
        for read in [
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
        ] {
            assert!(!changes_a_disk(read), "{read:#x}");
        }
    }
}
