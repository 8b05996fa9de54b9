//! Sticky bucketing: which requests fall inside a percentage.
//!
//! The bucket of a key under a salt is
//!
//! ```text
//! bucket(salt, key) = murmur3_x86_32(salt ++ ":" ++ key, seed = 0) mod 1_000_000
//! ```
//!
//! and a key is inside `p` percent when `bucket < round(p * 10_000)`. That gives a granularity
//! of 0.0001%, makes bucketing monotonic in `p` (a key inside at `p` stays inside at every
//! `q > p`), and makes rollouts with different salts independent. MurmurHash3 x86_32 is the
//! hash flagd and Unleash use; the bias of the modulo is below 0.03% of a bucket's width.
//! The vectors in `tests/bucket_vectors.tsv` pin the function so no SDK can drift from it.

/// The number of buckets: one per 0.0001%.
pub const BUCKETS: u32 = 1_000_000;

/// MurmurHash3 x86_32 over the concatenation of `parts`, without copying them.
///
/// Written here rather than taken from a crate because it sits on the request path and the
/// crates that provide it read from `std::io::Read` or need one contiguous buffer.
pub fn murmur3_x86_32(parts: &[&[u8]], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    #[inline(always)]
    fn mix(k: u32) -> u32 {
        k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
    }
    let mut h = seed;
    let mut len: usize = 0;
    let mut carry = [0u8; 4];
    let mut carried = 0usize;
    for part in parts {
        len += part.len();
        let mut rest: &[u8] = part;
        if carried > 0 {
            let take = (4 - carried).min(rest.len());
            carry[carried..carried + take].copy_from_slice(&rest[..take]);
            carried += take;
            rest = &rest[take..];
            if carried < 4 {
                continue;
            }
            h ^= mix(u32::from_le_bytes(carry));
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
        }
        let mut blocks = rest.chunks_exact(4);
        for block in &mut blocks {
            let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
            h ^= mix(k);
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
        }
        let tail = blocks.remainder();
        carry[..tail.len()].copy_from_slice(tail);
        carried = tail.len();
    }
    if carried > 0 {
        let mut k: u32 = 0;
        for (i, b) in carry[..carried].iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        h ^= mix(k);
    }
    h ^= len as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The bucket of `key` under `salt`, in `0..BUCKETS`.
#[inline]
pub fn bucket(salt: &str, key: &[u8]) -> u32 {
    murmur3_x86_32(&[salt.as_bytes(), b":", key], 0) % BUCKETS
}

/// The bucket threshold of a percentage: keys with `bucket < threshold` are inside.
#[inline]
pub fn threshold(percent: f64) -> u32 {
    (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32
}

/// Whether `key` falls inside `percent` under `salt`.
#[inline]
pub fn inside(salt: &str, key: &[u8], percent: f64) -> bool {
    bucket(salt, key) < threshold(percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        // From the reference implementation (SMHasher) and Python's mmh3.
        assert_eq!(murmur3_x86_32(&[b""], 0), 0);
        assert_eq!(murmur3_x86_32(&[b""], 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(&[b"hello"], 0), 0x248b_fa47);
        assert_eq!(
            murmur3_x86_32(&[b"The quick brown fox jumps over the lazy dog"], 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn split_parts_hash_like_the_whole() {
        let whole = b"rollout-42:tenant-acme-corporation";
        let expect = murmur3_x86_32(&[whole], 7);
        for i in 0..whole.len() {
            for j in i..whole.len() {
                let parts: [&[u8]; 3] = [&whole[..i], &whole[i..j], &whole[j..]];
                assert_eq!(murmur3_x86_32(&parts, 7), expect, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn thresholds() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(0.0001), 1);
        assert_eq!(threshold(12.5), 125_000);
        assert_eq!(threshold(100.0), BUCKETS);
        assert!(inside("s", b"k", 100.0));
        assert!(!inside("s", b"k", 0.0));
    }
}
