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

/// MurmurHash3 x86_32, fed in pieces. A state can be cloned after a constant prefix (a salt)
/// so that request time only hashes the key.
///
/// Written here rather than taken from a crate because it sits on the request path, and the
/// crates that provide it read from `std::io::Read` or need one contiguous buffer.
#[derive(Debug, Clone, Copy)]
pub struct Murmur3 {
    h: u32,
    len: u32,
    /// Bytes not yet forming a block, little-endian, kept in a register rather than an array.
    tail: u32,
    tail_len: u32,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline(always)]
fn mix(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline(always)]
fn round(h: u32, k: u32) -> u32 {
    (h ^ mix(k))
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

impl Murmur3 {
    pub fn new(seed: u32) -> Self {
        Murmur3 {
            h: seed,
            len: 0,
            tail: 0,
            tail_len: 0,
        }
    }

    #[inline(always)]
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        // The length is mixed in modulo 2^32, as the reference implementation does.
        self.len = self.len.wrapping_add(bytes.len() as u32);
        let mut rest = bytes;
        while self.tail_len > 0 {
            let Some((&b, more)) = rest.split_first() else {
                return self;
            };
            self.push(b);
            rest = more;
        }
        let mut blocks = rest.chunks_exact(4);
        for b in &mut blocks {
            self.h = round(self.h, u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
        for &b in blocks.remainder() {
            self.push(b);
        }
        self
    }

    #[inline(always)]
    fn push(&mut self, b: u8) {
        self.tail |= u32::from(b) << (8 * self.tail_len);
        self.tail_len += 1;
        if self.tail_len == 4 {
            self.h = round(self.h, self.tail);
            self.tail = 0;
            self.tail_len = 0;
        }
    }

    #[inline(always)]
    pub fn finish(&self) -> u32 {
        let mut h = self.h;
        if self.tail_len > 0 {
            h ^= mix(self.tail);
        }
        h ^= self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

/// MurmurHash3 x86_32 over the concatenation of `parts`.
pub fn murmur3_x86_32(parts: &[&[u8]], seed: u32) -> u32 {
    let mut m = Murmur3::new(seed);
    for p in parts {
        m.update(p);
    }
    m.finish()
}

/// A salt, hashed once: buckets keys under it without rehashing the salt.
#[derive(Debug, Clone)]
pub struct Salt {
    prefix: Murmur3,
}

impl Salt {
    pub fn new(salt: &str) -> Self {
        let mut prefix = Murmur3::new(0);
        prefix.update(salt.as_bytes()).update(b":");
        Salt { prefix }
    }

    /// The bucket of `key`: the same as [`bucket`] with this salt.
    #[inline(always)]
    pub fn bucket(&self, key: &[u8]) -> u32 {
        let mut m = self.prefix;
        m.update(key).finish() % BUCKETS
    }
}

/// The bucket of `key` under `salt`, in `0..BUCKETS`.
#[inline]
pub fn bucket(salt: &str, key: &[u8]) -> u32 {
    Salt::new(salt).bucket(key)
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

    #[test]
    fn a_prepared_salt_buckets_like_the_plain_function() {
        let salt = Salt::new("flag:gradual:eu");
        for key in ["", "a", "abcd", "tenant-1234567"] {
            assert_eq!(
                salt.bucket(key.as_bytes()),
                murmur3_x86_32(&[b"flag:gradual:eu:", key.as_bytes()], 0) % BUCKETS
            );
        }
    }
}
