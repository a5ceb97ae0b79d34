//! SipHash-2-4, the keyed content digest a warrant binds an nft rule with.
//! Written out here, not taken from a crate, because the kernel side feeds
//! it one 8-byte word per `bpf_loop` step from state in map memory
//! ([`SipState`]); the plain tier checks it against the `siphasher` crate.

/// SipHash state between words: the four lanes, the message's last partial
/// word (its tail), and how many bytes were fed in all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SipState {
    pub v: [u64; 4],
    pub word: u64,
    pub fed: u64,
}
const _: () = assert!(core::mem::size_of::<SipState>() == 48);

impl SipState {
    /// The state before any byte, under `key` (k0, k1).
    #[inline(always)]
    pub fn new(key: [u64; 2]) -> Self {
        Self {
            v: [
                key[0] ^ 0x736f_6d65_7073_6575,
                key[1] ^ 0x646f_7261_6e64_6f6d,
                key[0] ^ 0x6c79_6765_6e65_7261,
                key[1] ^ 0x7465_6462_7974_6573,
            ],
            word: 0,
            fed: 0,
        }
    }

    /// Feeds a whole 8-byte word (its bytes in little-endian order), which
    /// SipHash compresses at once. Only while the bytes fed so far are
    /// whole words: [`Self::feed_tail`] ends the message.
    #[inline(always)]
    pub fn feed_word(&mut self, word: u64) {
        self.compress(word);
        self.fed += 8;
    }

    /// Feeds the message's last `len` (0 to 7) bytes, in the low bytes of
    /// `word` (the rest zero), after whole words only; nothing may follow.
    #[inline(always)]
    pub fn feed_tail(&mut self, word: u64, len: u32) {
        debug_assert!(len < 8 && self.fed & 7 == 0, "a tail of {len} bytes after {} fed", self.fed);
        self.word = word;
        self.fed += (len & 7) as u64;
    }

    /// The digest of the bytes fed.
    #[inline(always)]
    pub fn finish(mut self) -> u64 {
        let last = self.word | ((self.fed & 0xff) << 56);
        self.compress(last);
        self.v[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3]
    }

    #[inline(always)]
    fn compress(&mut self, word: u64) {
        self.v[3] ^= word;
        self.round();
        self.round();
        self.v[0] ^= word;
    }

    #[inline(always)]
    fn round(&mut self) {
        let [mut v0, mut v1, mut v2, mut v3] = self.v;
        v0 = v0.wrapping_add(v1);
        v1 = v1.rotate_left(13) ^ v0;
        v0 = v0.rotate_left(32);
        v2 = v2.wrapping_add(v3);
        v3 = v3.rotate_left(16) ^ v2;
        v0 = v0.wrapping_add(v3);
        v3 = v3.rotate_left(21) ^ v0;
        v2 = v2.wrapping_add(v1);
        v1 = v1.rotate_left(17) ^ v2;
        v2 = v2.rotate_left(32);
        self.v = [v0, v1, v2, v3];
    }
}

/// SipHash-2-4 of `bytes` under `key`.
pub fn siphash24(key: [u64; 2], bytes: &[u8]) -> u64 {
    let mut state = SipState::new(key);
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for word in words {
        state.feed_word(u64::from_le_bytes(word.try_into().expect("eight bytes")));
    }
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    state.feed_tail(u64::from_le_bytes(last), tail.len() as u32);
    state.finish()
}
