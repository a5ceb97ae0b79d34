//! FNV-1a, the one hash Warrant keys names on. The kernel programs hash
//! names they read (procfs dentries, cgroup paths) and userspace hashes the
//! policy's names with the same code, so the keys agree.

pub const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

/// 64-bit FNV-1a of `bytes` up to their first NUL, and of at most `limit`
/// bytes (the kernel side reads names into fixed buffers).
pub fn fnv1a_64(bytes: &[u8], limit: usize) -> u64 {
    let mut hash = FNV64_OFFSET;
    for &byte in bytes.iter().take(limit) {
        if byte == 0 {
            break;
        }
        hash = fnv1a_64_step(hash, byte);
    }
    hash
}

/// One byte of 64-bit FNV-1a (binary data, where a NUL is just a byte).
#[inline(always)]
pub fn fnv1a_64_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV64_PRIME)
}

/// 32-bit FNV-1a of `bytes` (userspace ids: profiles, protected trees).
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV32_OFFSET, |hash, &byte| (hash ^ byte as u32).wrapping_mul(FNV32_PRIME))
}
