//! What the gates judge: each cohort's counters over the stage's window, summed over
//! gateways ([`CohortWindow`]), the shadow comparison ([`ShadowWindow`]), and everything the
//! gates of one stage look at ([`StageWindow`]).

use rampart_model::wire::{CohortCounters, ImpactCounts, LATENCY_BOUNDS_MS};
use serde::{Deserialize, Serialize};

/// Counters of one cohort over a window, summed over gateways.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortWindow {
    /// Requests served by the cohort in the window.
    pub requests: u64,
    /// Upstream 5xx responses, gateway-raised errors, and candidate evaluations that failed
    /// (served by the baseline instead: the client saw no error, the candidate is faulty all
    /// the same) in the window.
    pub errors: u64,
    /// Responses the gateway itself answered with a 4xx (denials) in the window.
    #[serde(default)]
    pub denied: u64,
    /// Requests per latency bucket (see [`LATENCY_BOUNDS_MS`]; one more bucket than bounds).
    pub latency_ms: Vec<u64>,
}

impl CohortWindow {
    /// `now - start` for one gateway's cumulative counters; if any counter of `now` is below
    /// `start` (the gateway restarted, or the rollout's counters were recreated), the whole of
    /// `now` is the window. A histogram bucket missing from `now` counts as 0 (so a shorter
    /// histogram with a non-zero bucket missing is a reset too). `errors = upstream_errors +
    /// gateway_errors + fallbacks`.
    pub fn delta(start: Option<&CohortCounters>, now: &CohortCounters) -> CohortWindow {
        let whole = || CohortWindow {
            requests: now.requests,
            errors: now
                .upstream_errors
                .saturating_add(now.gateway_errors)
                .saturating_add(now.fallbacks),
            denied: now.denied,
            latency_ms: now.latency_ms.clone(),
        };
        let Some(start) = start else {
            return whole();
        };
        let bucket = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        let buckets = now.latency_ms.len().max(start.latency_ms.len());
        let reset = now.requests < start.requests
            || now.upstream_errors < start.upstream_errors
            || now.gateway_errors < start.gateway_errors
            || now.fallbacks < start.fallbacks
            || now.denied < start.denied
            || (0..buckets).any(|i| bucket(&now.latency_ms, i) < bucket(&start.latency_ms, i));
        if reset {
            return whole();
        }
        CohortWindow {
            requests: now.requests - start.requests,
            errors: (now.upstream_errors - start.upstream_errors)
                .saturating_add(now.gateway_errors - start.gateway_errors)
                .saturating_add(now.fallbacks - start.fallbacks),
            denied: now.denied - start.denied,
            latency_ms: (0..now.latency_ms.len())
                .map(|i| now.latency_ms[i] - bucket(&start.latency_ms, i))
                .collect(),
        }
    }

    /// Add another gateway's window (histograms of different lengths are added bucket by
    /// bucket; the result is as long as the longer one). Saturating.
    pub fn add(&mut self, other: &CohortWindow) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.denied = self.denied.saturating_add(other.denied);
        if self.latency_ms.len() < other.latency_ms.len() {
            self.latency_ms.resize(other.latency_ms.len(), 0);
        }
        for (mine, theirs) in self.latency_ms.iter_mut().zip(&other.latency_ms) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// p99 latency estimate in ms from the histogram: the upper bound of the bucket holding the
    /// 99th percentile, linearly interpolated inside the bucket (lower bound of first bucket 0;
    /// the overflow bucket spans from the last bound to 2x the last bound, so it reports at
    /// most 2x the last bound; buckets past the overflow bucket count as overflow). None when
    /// requests == 0 or the histogram is empty (or all zero).
    pub fn p99_ms(&self) -> Option<f64> {
        if self.requests == 0 {
            return None;
        }
        let total: f64 = self.latency_ms.iter().map(|&c| c as f64).sum();
        if total <= 0.0 {
            return None;
        }
        let rank = 0.99 * total;
        let last = LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1];
        let mut below = 0.0;
        for (i, &count) in self.latency_ms.iter().enumerate() {
            let count = count as f64;
            if count > 0.0 && below + count >= rank {
                let (lower, upper) = match i {
                    0 => (0.0, LATENCY_BOUNDS_MS[0]),
                    i if i < LATENCY_BOUNDS_MS.len() => {
                        (LATENCY_BOUNDS_MS[i - 1], LATENCY_BOUNDS_MS[i])
                    }
                    _ => (last, 2.0 * last),
                };
                let fraction = ((rank - below) / count).clamp(0.0, 1.0);
                return Some(lower + fraction * (upper - lower));
            }
            below += count;
        }
        // Only reachable through rounding: the percentile is in the last non-empty bucket.
        Some(2.0 * last)
    }

    /// `errors / requests`, None when there are no requests. Errors beyond the request count
    /// (inconsistent counters) count as one error per request, so the rate is in `0..=1`.
    pub fn error_rate(&self) -> Option<f64> {
        Self::rate(self.errors, self.requests)
    }

    /// `denied / requests`, like [`CohortWindow::error_rate`].
    pub fn deny_rate(&self) -> Option<f64> {
        Self::rate(self.denied, self.requests)
    }

    pub(super) fn rate(x: u64, n: u64) -> Option<f64> {
        (n > 0).then(|| x.min(n) as f64 / n as f64)
    }
}

/// Everything the gates of one stage look at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageWindow {
    /// The baseline cohort over the window.
    pub baseline: CohortWindow,
    /// The candidate cohort over the same window, on the same gateways.
    pub candidate: CohortWindow,
    /// The share of in-scope requests the stage sends to the candidate, 0.0..=1.0 (for a shadow
    /// stage the caller passes the share that is compared).
    pub expected_share: f64,
    /// Seconds since the stage started (pauses excluded).
    pub elapsed_secs: f64,
    /// Whether the stage's minimum soak time and minimum sample count are both reached: the
    /// point where a still-undecided sequential test is truncated and accepted.
    pub soak_reached: bool,
    /// Gateways that refused (NACKed) the candidate's snapshot: "gateway-id: reason".
    pub nacks: Vec<String>,
    /// Gateways whose local guard tripped on the candidate.
    pub guard_trips: Vec<String>,
    /// The baseline cohort's counters from before the stage started (each gateway's cumulative
    /// counters at the stage's start marks), summed over gateways, if the caller has them.
    /// The error-rate and latency gates fall back on it when the stage's own baseline window
    /// is too small to estimate from (fewer than [`BASELINE_MIN_REQUESTS`](super::BASELINE_MIN_REQUESTS) /
    /// [`LATENCY_MIN_SAMPLES`](super::LATENCY_MIN_SAMPLES) requests): a stage at 100% of its scope sends no request to
    /// the baseline. See [`StageWindow::baseline_estimate`].
    #[serde(default)]
    pub reference: Option<CohortWindow>,
    /// Shadow stages only: what the `shadow_diff` gate looks at. None elsewhere (a
    /// `shadow_diff` gate then stays Pending, and fails at its deadline).
    #[serde(default)]
    pub shadow: Option<ShadowWindow>,
    /// Whether the change declares that it changes outcomes (a share, or routes it denies):
    /// the `deny_rate` gate then leaves the judgement to the impact test and the shadow stage.
    #[serde(default)]
    pub declares_impact: bool,
}

impl StageWindow {
    /// The baseline the gates compare against when they need at least `min` requests: the
    /// stage's baseline window if it has `min` requests, else that window plus
    /// [`StageWindow::reference`] (when present and not empty), else the window alone. The
    /// second value names the source: `"baseline"` or `"baseline+reference"`.
    pub fn baseline_estimate(&self, min: u64) -> (CohortWindow, &'static str) {
        match &self.reference {
            Some(reference) if self.baseline.requests < min && reference.requests > 0 => {
                let mut both = self.baseline.clone();
                both.add(reference);
                (both, "baseline+reference")
            }
            _ => (self.baseline.clone(), "baseline"),
        }
    }
}

/// The shadow comparison of a stage over the window, summed over gateways, and the impact the
/// change declared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowWindow {
    /// Requests compared by the gateways' shadow evaluation, by class of change.
    pub counts: ImpactCounts,
    /// The share of requests, in percent, whose outcome the author expects to change
    /// ([`rampart_model::change::DeclaredImpact::changed_percent`]).
    pub declared_percent: f64,
}
