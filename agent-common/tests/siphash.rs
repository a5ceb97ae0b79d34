//! Plain tier: the content digest's SipHash-2-4, fed a word at a time as
//! the kernel feeds it, against the `siphasher` crate and the reference
//! paper's test vector.

use std::hash::Hasher as _;

use warrant_common::{netlink, siphash::siphash24};

fn reference(key: [u64; 2], bytes: &[u8]) -> u64 {
    let mut hasher = siphasher::sip::SipHasher24::new_with_keys(key[0], key[1]);
    hasher.write(bytes);
    hasher.finish()
}

#[test]
fn word_at_a_time_siphash_matches_the_reference() {
    // The SipHash paper's vector: key 00..0f, message 00..0e.
    let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
    let message: Vec<u8> = (0u8..15).collect();
    assert_eq!(siphash24(key, &message), 0xa129_ca61_49be_45e5);
    // Every length across word boundaries, and other keys.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..200 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let key = [seed, seed.rotate_left(29) ^ 0x5555];
        let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 57)) as u8 ^ i as u8).collect();
        assert_eq!(siphash24(key, &bytes), reference(key, &bytes), "length {len}");
    }
}

#[test]
fn content_digests_depend_on_the_key() {
    let rule = b"payload dport cmp 22 immediate accept";
    let one = netlink::content_digest([1, 2], rule);
    assert_ne!(one, netlink::content_digest([3, 4], rule), "another host's key digests differently");
    assert_eq!(one, netlink::content_digest([1, 2], rule));
}
