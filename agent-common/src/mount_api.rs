//! The new mount API's system calls, which a subject may not make: some
//! have no LSM hook at all (mount_setattr, open_tree_attr, fsmount,
//! open_tree's clones) and the others' hooks come after their side effects
//! (fsconfig's create builds the superblock, and cgroup2 applies its root
//! options, before `sb_kern_mount`). Every privileged step of them asks for
//! CAP_SYS_ADMIN before it changes anything, so the `capable` hook refuses
//! a subject's check made inside one of them, found by the number the task
//! entered the kernel with. (What asks for none stays a subject's: open_tree
//! without a clone, an O_PATH descriptor; fsconfig's parameters on a
//! context, which change nothing until a create or reconfigure.) The
//! generic numbering gives these calls the same numbers on the 64-bit,
//! int 0x80 and x32 entries of x86-64 and on arm64.

/// `__X32_SYSCALL_BIT`: x32 entries carry it on top of the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// open_tree, move_mount, fsopen, fsconfig, fsmount, fspick,
/// mount_setattr and open_tree_attr (6.15).
pub const CALLS: [u32; 8] = [428, 429, 430, 431, 432, 433, 442, 467];

/// Whether `number`, a task's system call number, is one of [`CALLS`]:
/// two comparisons and a range rather than a walk of the array, for the
/// verifier (a plain test checks they agree).
#[inline(always)]
pub fn is_call(number: u32) -> bool {
    let number = number & !X32_SYSCALL_BIT;
    (428..=433).contains(&number) || number == 442 || number == 467
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_are_known_by_every_entry_and_nothing_else_is() {
        for call in CALLS {
            assert!(is_call(call) && is_call(call | X32_SYSCALL_BIT), "{call}");
        }
        for number in 0..1024 {
            assert_eq!(is_call(number), CALLS.contains(&number), "{number}");
        }
        // mount(2), umount2, pivot_root, statmount, listmount: hooks of their own, or reads.
        for other in [165, 166, 155, 457, 458, 0, 427, 434, 443, 466, 468, u32::MAX] {
            assert!(!is_call(other), "{other}");
        }
    }
}
