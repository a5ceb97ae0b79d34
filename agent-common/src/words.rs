//! Word-at-a-time copies and NUL-padded names: byte loops cost the verifier dearly.

/// Zeroes `words` u64s at `at`. Volatile, so the compiler cannot turn it into
/// a `memset` call, which on BPF is a byte loop the verifier walks byte by byte.
///
/// # Safety
/// `at` must be 8-aligned and valid for `words` u64 writes.
#[inline(always)]
pub unsafe fn zero_words(at: *mut u64, words: usize) {
    for i in 0..words {
        unsafe { at.add(i).write_volatile(0) };
    }
}

/// Copies `words` u64s; volatile for the same reason as [`zero_words`].
///
/// # Safety
/// Both pointers must be 8-aligned and valid for `words` u64s, not overlapping.
#[inline(always)]
pub unsafe fn copy_words(to: *mut u64, from: *const u64, words: usize) {
    for i in 0..words {
        unsafe { to.add(i).write_volatile(from.add(i).read_volatile()) };
    }
}

/// The bytes of a NUL-padded name (table, chain, comm) up to its first NUL.
pub fn name_bytes<const N: usize>(name: &[u8; N]) -> &[u8] {
    let mut end = 0;
    while end < N && name[end] != 0 {
        end += 1;
    }
    &name[..end]
}
