//! Per-cohort counters, the local guard, and the sample of recent requests.
//!
//! Each cohort (the baseline, and the candidate of each active rollout) has cumulative
//! counters that the control plane diffs, plus a sliding window of the last
//! [`GuardConfig::window_secs`] seconds that the local guard judges. Counters of a rollout live
//! as long as the rollout is in the active snapshot, across swaps.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_model::wire::{
    CohortCounters, ImpactClass, ImpactCounts, LATENCY_BOUNDS_MS, RequestSample,
};

/// When the local guard stops using a candidate by itself.
#[derive(Debug, Clone, Copy)]
pub struct GuardConfig {
    /// The sliding window, in seconds.
    pub window_secs: u64,
    /// Candidate requests in the window before the guard judges.
    pub min_requests: u64,
    /// The candidate's error rate at or above which it trips...
    pub max_error_rate: f64,
    /// ...provided it also exceeds the baseline's rate by this much, so an outage of the
    /// upstream itself, which hurts both cohorts, does not trip it.
    pub margin: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            window_secs: 10,
            min_requests: 20,
            max_error_rate: 0.5,
            margin: 0.25,
        }
    }
}

/// How a request ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The upstream answered with this status.
    Upstream(u16),
    /// The gateway answered itself (a policy, or a failure to reach the upstream).
    Gateway { status: u16, failure: bool },
}

impl Ending {
    pub fn status(self) -> u16 {
        match self {
            Ending::Upstream(s) | Ending::Gateway { status: s, .. } => s,
        }
    }

    /// Whether it counts against the cohort: any 5xx, and any failure of the gateway.
    pub fn is_error(self) -> bool {
        match self {
            Ending::Upstream(s) => s >= 500,
            Ending::Gateway { status, failure } => failure || status >= 500,
        }
    }
}

/// One second of the sliding window. Lock-free: the first request of a new second claims the
/// slot and resets it; a request racing the reset may be counted in either second, which the
/// guard tolerates.
#[derive(Debug, Default)]
struct Slot {
    second: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

/// The counters of one cohort.
#[derive(Debug)]
pub struct CohortStats {
    rollout: Option<Box<str>>,
    requests: AtomicU64,
    upstream_errors: AtomicU64,
    gateway_errors: AtomicU64,
    fallbacks: AtomicU64,
    denied: AtomicU64,
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    tripped: AtomicBool,
    window: Box<[Slot]>,
    /// Shadow comparisons: compared, then one counter per [`ImpactClass`] in
    /// [`SHADOW_CLASSES`] order.
    shadow: [AtomicU64; 5],
}

/// The order of the shadow counters after `compared`.
const SHADOW_CLASSES: [ImpactClass; 4] = [
    ImpactClass::AllowedToDenied,
    ImpactClass::DeniedToAllowed,
    ImpactClass::RouteChanged,
    ImpactClass::StatusChanged,
];

impl CohortStats {
    fn new(rollout: Option<&str>, window_secs: u64) -> Self {
        CohortStats {
            rollout: rollout.map(Box::from),
            requests: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            gateway_errors: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            tripped: AtomicBool::new(false),
            window: (0..window_secs.max(1)).map(|_| Slot::default()).collect(),
            shadow: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Count a shadow evaluation of the candidate that failed (it served nothing): compared,
    /// and changed (its status would not have been the baseline's), and a fallback.
    pub fn record_shadow_failure(&self) {
        self.fallbacks.fetch_add(1, Relaxed);
        self.record_shadow(Some(ImpactClass::StatusChanged));
    }

    /// Count one shadow comparison: `class` is how the candidate's decision differed from
    /// the baseline's, `None` when it did not.
    pub fn record_shadow(&self, class: Option<ImpactClass>) {
        self.shadow[0].fetch_add(1, Relaxed);
        if let Some(i) = class.and_then(|c| SHADOW_CLASSES.iter().position(|k| *k == c)) {
            self.shadow[i + 1].fetch_add(1, Relaxed);
        }
    }

    pub fn rollout(&self) -> Option<&str> {
        self.rollout.as_deref()
    }

    /// Candidate evaluations that failed and were served by the baseline, so far.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Relaxed)
    }

    /// Whether the local guard has stopped using this candidate.
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Relaxed)
    }

    /// Count one request. `second` is the current second of a monotonic clock.
    pub fn record(&self, ending: Ending, fallback: bool, latency: Duration, second: u64) {
        self.requests.fetch_add(1, Relaxed);
        match ending {
            Ending::Upstream(s) if s >= 500 => {
                self.upstream_errors.fetch_add(1, Relaxed);
            }
            Ending::Gateway { .. } if ending.is_error() => {
                self.gateway_errors.fetch_add(1, Relaxed);
            }
            Ending::Gateway { status, .. } if (400..500).contains(&status) => {
                self.denied.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        if fallback {
            self.fallbacks.fetch_add(1, Relaxed);
        }
        let ms = latency.as_secs_f64() * 1000.0;
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket].fetch_add(1, Relaxed);
        // Seconds are stored plus one, so a fresh slot (0) never looks current.
        let tag = second + 1;
        let slot = &self.window[(second % self.window.len() as u64) as usize];
        let seen = slot.second.load(Relaxed);
        if seen != tag
            && slot
                .second
                .compare_exchange(seen, tag, Relaxed, Relaxed)
                .is_ok()
        {
            slot.requests.store(0, Relaxed);
            slot.errors.store(0, Relaxed);
        }
        slot.requests.fetch_add(1, Relaxed);
        if ending.is_error() || fallback {
            slot.errors.fetch_add(1, Relaxed);
        }
    }

    /// Requests and errors over the window ending at `second`.
    fn window(&self, second: u64) -> (u64, u64) {
        let n = self.window.len() as u64;
        let tag = second + 1;
        self.window
            .iter()
            .filter(|s| {
                let t = s.second.load(Relaxed);
                t != 0 && t + n > tag && t <= tag
            })
            .fold((0, 0), |(r, e), s| {
                (r + s.requests.load(Relaxed), e + s.errors.load(Relaxed))
            })
    }

    pub fn counters(&self) -> CohortCounters {
        CohortCounters {
            rollout: self.rollout.as_deref().map(str::to_owned),
            requests: self.requests.load(Relaxed),
            upstream_errors: self.upstream_errors.load(Relaxed),
            gateway_errors: self.gateway_errors.load(Relaxed),
            fallbacks: self.fallbacks.load(Relaxed),
            denied: self.denied.load(Relaxed),
            latency_ms: self.latency.iter().map(|a| a.load(Relaxed)).collect(),
            guard_tripped: self.is_tripped(),
            shadow: match self.shadow[0].load(Relaxed) {
                0 => None,
                compared => Some(ImpactCounts {
                    compared,
                    allowed_to_denied: self.shadow[1].load(Relaxed),
                    denied_to_allowed: self.shadow[2].load(Relaxed),
                    route_changed: self.shadow[3].load(Relaxed),
                    status_changed: self.shadow[4].load(Relaxed),
                }),
            },
        }
    }
}

/// The counters of every cohort on this gateway.
#[derive(Debug)]
pub struct Stats {
    guard: GuardConfig,
    baseline: Arc<CohortStats>,
    rollouts: Mutex<HashMap<Box<str>, Arc<CohortStats>>>,
}

impl Stats {
    pub fn new(guard: GuardConfig) -> Self {
        Stats {
            guard,
            baseline: Arc::new(CohortStats::new(None, guard.window_secs)),
            rollouts: Mutex::new(HashMap::new()),
        }
    }

    pub fn baseline(&self) -> &Arc<CohortStats> {
        &self.baseline
    }

    /// The counters of each rollout in `ids`, in order, created if new; rollouts no longer
    /// active are forgotten. Called on every swap.
    pub fn rollouts(&self, ids: &[&str]) -> Vec<Arc<CohortStats>> {
        let mut map = self.rollouts.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, _| ids.contains(&&**k));
        ids.iter()
            .map(|id| {
                map.entry(Box::from(*id))
                    .or_insert_with(|| Arc::new(CohortStats::new(Some(id), self.guard.window_secs)))
                    .clone()
            })
            .collect()
    }

    /// Judge a candidate after one of its requests; returns true when this call tripped it.
    pub fn judge(&self, candidate: &CohortStats, second: u64) -> bool {
        if candidate.is_tripped() {
            return false;
        }
        let (req, err) = candidate.window(second);
        if req < self.guard.min_requests {
            return false;
        }
        let rate = err as f64 / req as f64;
        let (breq, berr) = self.baseline.window(second);
        let base = if breq == 0 {
            0.0
        } else {
            berr as f64 / breq as f64
        };
        if rate >= self.guard.max_error_rate && rate >= base + self.guard.margin {
            return !candidate.tripped.swap(true, Relaxed);
        }
        false
    }

    /// Cumulative counters of every cohort, the baseline first.
    pub fn counters(&self) -> Vec<CohortCounters> {
        let map = self.rollouts.lock().unwrap_or_else(|e| e.into_inner());
        let mut rollouts: Vec<_> = map.values().map(|c| c.counters()).collect();
        rollouts.sort_by(|a, b| a.rollout.cmp(&b.rollout));
        std::iter::once(self.baseline.counters())
            .chain(rollouts)
            .collect()
    }
}

/// A bounded sample of recent request metadata: one request in every `every`.
#[derive(Debug)]
pub struct Samples {
    every: u64,
    seen: AtomicU64,
    ring: Mutex<VecDeque<RequestSample>>,
    capacity: usize,
}

impl Samples {
    pub fn new(every: u64, capacity: usize) -> Self {
        Samples {
            every: every.max(1),
            seen: AtomicU64::new(0),
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// Whether the next request should be sampled.
    pub fn wants(&self) -> bool {
        self.capacity > 0 && self.seen.fetch_add(1, Relaxed).is_multiple_of(self.every)
    }

    pub fn push(&self, sample: RequestSample) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// The samples held, oldest first.
    pub fn snapshot(&self) -> Vec<RequestSample> {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Ending = Ending::Upstream(200);
    const FAIL: Ending = Ending::Upstream(503);

    #[test]
    fn guard_trips_on_a_failing_candidate_only() {
        let stats = Stats::new(GuardConfig::default());
        let cand = stats.rollouts(&["r1"]).pop().unwrap();
        for _ in 0..100 {
            stats
                .baseline()
                .record(OK, false, Duration::from_millis(3), 50);
        }
        for i in 0..19 {
            cand.record(FAIL, false, Duration::from_millis(3), 50);
            assert!(!stats.judge(&cand, 50), "too few samples at {i}");
        }
        cand.record(FAIL, false, Duration::from_millis(3), 50);
        assert!(stats.judge(&cand, 50));
        assert!(cand.is_tripped());
        assert!(!stats.judge(&cand, 50), "trips once");
        assert!(stats.counters()[1].guard_tripped);
    }

    #[test]
    fn guard_ignores_failures_both_cohorts_share() {
        let stats = Stats::new(GuardConfig::default());
        let cand = stats.rollouts(&["r1"]).pop().unwrap();
        for _ in 0..100 {
            stats.baseline().record(FAIL, false, Duration::ZERO, 7);
            cand.record(FAIL, false, Duration::ZERO, 7);
        }
        assert!(!stats.judge(&cand, 7));
    }

    #[test]
    fn the_window_forgets_old_seconds() {
        let stats = Stats::new(GuardConfig::default());
        let cand = stats.rollouts(&["r1"]).pop().unwrap();
        for _ in 0..50 {
            cand.record(FAIL, true, Duration::ZERO, 100);
        }
        for _ in 0..50 {
            cand.record(OK, false, Duration::ZERO, 111);
        }
        assert!(
            !stats.judge(&cand, 111),
            "the failures are older than the window"
        );
        let c = cand.counters();
        assert_eq!((c.requests, c.upstream_errors, c.fallbacks), (100, 50, 50));
    }

    #[test]
    fn rollout_counters_survive_swaps_while_active() {
        let stats = Stats::new(GuardConfig::default());
        stats.rollouts(&["a"])[0].record(OK, false, Duration::ZERO, 1);
        assert_eq!(stats.rollouts(&["a", "b"])[0].counters().requests, 1);
        stats.rollouts(&["b"]);
        assert_eq!(stats.rollouts(&["a"])[0].counters().requests, 0);
    }

    #[test]
    fn latency_buckets() {
        let stats = Stats::new(GuardConfig::default());
        let b = stats.baseline();
        b.record(OK, false, Duration::from_micros(500), 0);
        b.record(OK, false, Duration::from_millis(7), 0);
        b.record(OK, false, Duration::from_secs(60), 0);
        let c = b.counters();
        assert_eq!(c.latency_ms[0], 1);
        assert_eq!(c.latency_ms[3], 1);
        assert_eq!(c.latency_ms[LATENCY_BOUNDS_MS.len()], 1);
    }

    #[test]
    fn samples_are_bounded() {
        let s = Samples::new(2, 3);
        let wanted = (0..10).filter(|_| s.wants()).count();
        assert_eq!(wanted, 5);
        for i in 0..5 {
            s.push(RequestSample {
                at_ms: i,
                method: "GET".into(),
                host: "h".into(),
                path: "/".into(),
                client_ip: "127.0.0.1".parse().unwrap(),
                headers: vec![],
                tenant: None,
                route: None,
                status: 200,
                outcome: "allow".into(),
                rollout: None,
            });
        }
        let got: Vec<u64> = s.snapshot().iter().map(|s| s.at_ms).collect();
        assert_eq!(got, vec![2, 3, 4]);
    }
}
