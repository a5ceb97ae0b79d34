//! ioctls a subject may never make, whatever the policy says (see
//! `selfprotect`), and the network ioctls decided as their rtnetlink
//! action: one LSM program for each of `file_ioctl` and, on 6.8 and newer,
//! `file_ioctl_compat` (32-bit processes).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use warrant_common::action;

use crate::{selfprotect::refuse_subjects, subjects};

/// `TIOCSTI` pushes a byte into a terminal's input; `TIOCLINUX` subcode 3
/// pastes the console's selection into it. Either types into whatever reads
/// that terminal, which may be the shell of the operator who started the
/// agent, once the agent is gone.
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;

/// `FS_IOC_SETVERSION`, `FS_IOC32_SETVERSION`, `EXT4_IOC_SETVERSION`,
/// `EXT4_IOC32_SETVERSION` and `EXT4_IOC_SWAP_BOOT`: they rewrite an
/// inode's generation, which a mark carries (see `marks`): a subject would
/// unmark what it wrote.
const SET_GENERATION: [u32; 5] = [0x4008_7602, 0x4004_7602, 0x4008_6604, 0x4004_6604, 0x6611];

#[inline(always)]
fn decide_ioctl(cmd: u32) -> i32 {
    if cmd == TIOCSTI || cmd == TIOCLINUX {
        return refuse_subjects(action::SELF_TTY);
    }
    // What a read-only remount would do to the audit log's file system, or worse.
    if warrant_common::disk_ioctl::changes_a_file_system(cmd) {
        return refuse_subjects(action::SELF_MOUNT);
    }
    if SET_GENERATION.contains(&cmd) {
        return refuse_subjects(action::SELF_MARKED_EXEC);
    }
    if warrant_common::disk_ioctl::changes_a_disk(cmd) {
        return refuse_subjects(action::SELF_BLOCKDEV);
    }
    // Routes, addresses and links by ioctl rather than rtnetlink: decided
    // as the rtnetlink action, on a target only `*` covers.
    if let Some(action_id) = warrant_common::ioctl::network_action(cmd)
        && let Some(subject) = subjects::current()
    {
        return crate::policy::decide_action(&subject, action_id, 0, 0, [0, 0]);
    }
    0
}

#[lsm(hook = "file_ioctl")]
pub fn file_ioctl(ctx: LsmContext) -> i32 {
    decide_ioctl(ctx.arg(1))
}

/// 32-bit processes' ioctls (6.8 and newer).
#[lsm(hook = "file_ioctl_compat")]
pub fn file_ioctl_compat(ctx: LsmContext) -> i32 {
    decide_ioctl(ctx.arg(1))
}
