//! Token buckets per (policy, key), held in memory by each gateway.
//!
//! `governor` was considered; its keyed limiter fixes one quota per limiter, while a rampart
//! rate may change per request (a rate bound to a flag with targeting rules). So each bucket
//! takes its rate and burst from the decision, and the store is a sharded map with a bound on
//! its size: buckets idle long enough to be full again are dropped first, then a tenth of a full
//! shard at a time.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Instant;

use rampart_eval::RateLimit;

const SHARDS: usize = 16;

/// The most buckets a gateway keeps; beyond it, a shard drops its full and oldest buckets.
pub const MAX_BUCKETS: usize = 200_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A bucket's identity: a 64-bit keyed hash of the policy and the key value, so the hot path
/// allocates nothing. Two keys would share a bucket only on a 64-bit collision of a hash
/// seeded at random per process.
type BucketKey = u64;

/// All token buckets of one gateway.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<BucketKey, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }
}

impl RateLimiter {
    /// Take one token from the bucket of `limit`, at `now`. Returns whether the request may
    /// proceed.
    pub fn try_acquire(&self, limit: &RateLimit<'_>, now: Instant) -> bool {
        // `LimitKey` hashes its variant too, so a tenant and a header with the same text differ.
        let key: BucketKey = self.hasher.hash_one((limit.policy, &limit.key));
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let burst = f64::from(limit.burst.max(1));
        let rate = f64::from(limit.per_second);
        if map.len() >= MAX_BUCKETS / SHARDS && !map.contains_key(&key) {
            // Buckets that have refilled carry no state: forget them first.
            map.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
            if map.len() >= MAX_BUCKETS / SHARDS {
                // Still full of live buckets (a flood of distinct keys): drop a tenth, so the
                // cost of eviction is spread over many inserts.
                let victims: Vec<BucketKey> =
                    map.keys().take(map.len() / 10 + 1).cloned().collect();
                for k in victims {
                    map.remove(&k);
                }
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The number of buckets held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use rampart_eval::LimitKey;

    fn limit(per_second: u32, burst: u32, tenant: &str) -> RateLimit<'_> {
        RateLimit {
            policy: "p",
            per_second,
            burst,
            key: LimitKey::Tenant(tenant),
        }
    }

    #[test]
    fn burst_then_refill() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        let l = limit(10, 3, "acme");
        assert!((0..3).all(|_| rl.try_acquire(&l, t0)));
        assert!(!rl.try_acquire(&l, t0));
        // 10 per second: one token after 100 ms.
        assert!(rl.try_acquire(&l, t0 + Duration::from_millis(100)));
        assert!(!rl.try_acquire(&l, t0 + Duration::from_millis(101)));
        // Never more than the burst, however long it waits.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| rl.try_acquire(&l, later)).count(), 3);
    }

    #[test]
    fn keys_are_independent() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        assert!(rl.try_acquire(&limit(1, 1, "a"), t0));
        assert!(!rl.try_acquire(&limit(1, 1, "a"), t0));
        assert!(rl.try_acquire(&limit(1, 1, "b"), t0));
        assert_eq!(rl.len(), 2);
    }

    #[test]
    fn memory_is_bounded() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        let names: Vec<String> = (0..MAX_BUCKETS + 5_000).map(|i| format!("t{i}")).collect();
        for n in &names {
            rl.try_acquire(&limit(1, 5, n), t0);
        }
        assert!(rl.len() <= MAX_BUCKETS, "{}", rl.len());
    }
}
