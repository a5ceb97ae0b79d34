//! 64-bit atomics on map values. `core::sync::atomic` offers no
//! read-modify-write operations on the BPF target, but the intrinsics lower
//! to BPF_ATOMIC (`BPF_CMPXCHG`, `BPF_FETCH | BPF_ADD`), which kernels since
//! 5.12 verify.

use core::intrinsics::{AtomicOrdering::SeqCst, atomic_cxchg, atomic_xadd};

/// # Safety (all functions)
/// `at` must point into a map value that stays valid for the program's run.
#[inline(always)]
pub fn load(at: *mut u64) -> u64 {
    // An aligned 64-bit load is single-copy atomic; BPF has no atomic load.
    unsafe { core::ptr::read_volatile(at) }
}

/// True if `*at` was `current` and is now `new`.
#[inline(always)]
pub fn compare_exchange(at: *mut u64, current: u64, new: u64) -> bool {
    unsafe { atomic_cxchg::<u64, { SeqCst }, { SeqCst }>(at, current, new).1 }
}

#[inline(always)]
pub fn fetch_add(at: *mut u64, value: u64) -> u64 {
    unsafe { atomic_xadd::<u64, u64, { SeqCst }>(at, value) }
}
