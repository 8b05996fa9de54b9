//! The messages gateways and the control plane exchange, here so neither depends on the other:
//! config acknowledgements, per-cohort counters and request samples.

use serde::{Deserialize, Serialize};
use strum::VariantArray;

use crate::config::GatewayIdentity;
use crate::snapshot::ContentHash;

/// Upper bounds, in milliseconds, of the latency histogram buckets in [`CohortCounters`];
/// a last, implicit bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    30_000.0,
];

/// A gateway's answer to a snapshot: it runs it, or it refused it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigAck {
    Ack { hash: ContentHash },
    Nack { hash: ContentHash, reason: String },
}

/// What a gateway reports about itself, every second to the control plane and on its admin
/// listener at `/cohorts`. Counters are cumulative since the gateway started; readers diff
/// two reports to get a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayReport {
    pub gateway: GatewayIdentity,
    /// The snapshot it runs, if any.
    pub snapshot: Option<ContentHash>,
    /// Milliseconds since the Unix epoch when the report was taken.
    pub at_ms: u64,
    /// When this gateway process started (ms since the Unix epoch): counters restart from zero
    /// with the process, and readers that diff reports use this to tell a restart apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    pub cohorts: Vec<CohortCounters>,
    /// The last snapshot it refused, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_nack: Option<ConfigAck>,
}

/// Cumulative counters of one cohort on one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CohortCounters {
    /// `None` for the baseline; else the rollout whose candidate served these requests.
    pub rollout: Option<String>,
    pub requests: u64,
    /// Responses with a 5xx status from the upstream.
    pub upstream_errors: u64,
    /// Failures raised by the gateway itself: no healthy endpoint, connect errors, timeouts.
    pub gateway_errors: u64,
    /// Candidate evaluations that failed or panicked and were served by the baseline instead.
    pub fallbacks: u64,
    /// Responses the gateway itself answered with a 4xx: policy denials, failed
    /// authentication, no route, rate limits, static responses with a 4xx status.
    #[serde(default)]
    pub denied: u64,
    /// Requests per latency bucket; see [`LATENCY_BOUNDS_MS`] (one more bucket than bounds).
    pub latency_ms: Vec<u64>,
    /// Whether this gateway's local guard has stopped using this candidate.
    #[serde(default)]
    pub guard_tripped: bool,
    /// A shadow rollout's comparisons: requests whose candidate decision was computed beside
    /// the baseline's, by how the outcome differed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ImpactCounts>,
}

/// The metadata of one recent request, scrubbed of secrets, kept by gateways for the impact
/// test to replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSample {
    pub at_ms: u64,
    pub method: String,
    pub host: String,
    pub path: String,
    #[schema(value_type = String)]
    pub client_ip: std::net::IpAddr,
    /// Allow-listed headers; a credential header keeps only its presence, its value replaced
    /// by [`REDACTED`] (see the gateway's `proxy::record`).
    pub headers: Vec<(String, String)>,
    pub tenant: Option<String>,
    pub route: Option<String>,
    pub status: u16,
    /// `allow`, `static`, or the deny reason.
    pub outcome: String,
    pub rollout: Option<String>,
}

/// What a credential header's value becomes in a sample.
pub const REDACTED: &str = "[redacted]";

impl RequestSample {
    /// Whether a header name looks like it carries a credential: the usual ones, and any name
    /// with `auth`, `token`, `secret`, `key`, `session`, `password` or `cookie` in it.
    pub fn is_credential_header(name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        [
            "auth", "token", "secret", "key", "session", "passw", "cookie",
        ]
        .iter()
        .any(|w| n.contains(w))
    }

    /// Redact the value of every header that looks like a credential. The control plane does
    /// it to every sample it receives, behind the gateway's own allow-list, so a gateway of
    /// another version or a bug cannot make it store a credential.
    pub fn redact_credentials(&mut self) {
        for (name, value) in &mut self.headers {
            if Self::is_credential_header(name) && value != REDACTED {
                REDACTED.clone_into(value);
            }
        }
    }
}

crate::wire_enum! {
    /// How one request's outcome differs between baseline and candidate (impact test and shadow
    /// stage). Listed from most to least severe.
    pub enum ImpactClass {
        /// The baseline admits the request; the candidate refuses it.
        AllowedToDenied,
        /// The baseline refuses the request; the candidate admits it.
        DeniedToAllowed,
        /// Both admit it, but it goes to another route or upstream.
        RouteChanged,
        /// Otherwise the same, but the client sees another status.
        StatusChanged,
    }
}

/// Counts of compared requests by class. Used by the impact report and by gateways' shadow
/// counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactCounts {
    /// Requests compared, changed or not.
    pub compared: u64,
    pub allowed_to_denied: u64,
    pub denied_to_allowed: u64,
    pub route_changed: u64,
    pub status_changed: u64,
}

impl ImpactCounts {
    /// Count one compared request, of `class` if its outcome changed.
    pub fn record(&mut self, class: Option<ImpactClass>) {
        self.compared += 1;
        if let Some(class) = class {
            *self.count_mut(class) += 1;
        }
    }

    /// The count of one class.
    pub fn count(&self, class: ImpactClass) -> u64 {
        match class {
            ImpactClass::AllowedToDenied => self.allowed_to_denied,
            ImpactClass::DeniedToAllowed => self.denied_to_allowed,
            ImpactClass::RouteChanged => self.route_changed,
            ImpactClass::StatusChanged => self.status_changed,
        }
    }

    fn count_mut(&mut self, class: ImpactClass) -> &mut u64 {
        match class {
            ImpactClass::AllowedToDenied => &mut self.allowed_to_denied,
            ImpactClass::DeniedToAllowed => &mut self.denied_to_allowed,
            ImpactClass::RouteChanged => &mut self.route_changed,
            ImpactClass::StatusChanged => &mut self.status_changed,
        }
    }

    /// Requests whose outcome changed, of any class.
    pub fn changed(&self) -> u64 {
        self.allowed_to_denied
            .saturating_add(self.denied_to_allowed)
            .saturating_add(self.route_changed)
            .saturating_add(self.status_changed)
    }

    /// The share of compared requests that changed, in percent; `None` when none were compared.
    pub fn changed_percent(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.changed() as f64 * 100.0 / self.compared as f64)
    }

    /// Add another set of counts to this one (saturating).
    pub fn add(&mut self, other: &ImpactCounts) {
        self.compared = self.compared.saturating_add(other.compared);
        for &class in ImpactClass::VARIANTS {
            let c = self.count_mut(class);
            *c = c.saturating_add(other.count(class));
        }
    }

    /// Subtract earlier cumulative counts from these, to get a window (saturating at zero,
    /// so a counter that went backwards, as after a gateway restart, reads as zero).
    pub fn subtract(&mut self, earlier: &ImpactCounts) {
        self.compared = self.compared.saturating_sub(earlier.compared);
        for &class in ImpactClass::VARIANTS {
            let c = self.count_mut(class);
            *c = c.saturating_sub(earlier.count(class));
        }
    }
}

/// Samples one gateway uploads: the gateway's identity applies to all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleBatch {
    pub gateway: GatewayIdentity,
    pub samples: Vec<RequestSample>,
}

/// Counters of one cohort over a window, summed over gateways.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

    /// `x / n`, with `x` capped at `n` so the rate is in `0..=1`; None when `n` is 0.
    pub fn rate(x: u64, n: u64) -> Option<f64> {
        (n > 0).then(|| x.min(n) as f64 / n as f64)
    }
}

#[cfg(test)]
mod impact_counts_tests {
    use super::*;
    use crate::names::EnumName;

    #[test]
    fn record_add_subtract_and_percent() {
        let mut a = ImpactCounts::default();
        assert_eq!(a.changed_percent(), None);
        a.record(None);
        a.record(Some(ImpactClass::AllowedToDenied));
        a.record(Some(ImpactClass::StatusChanged));
        a.record(None);
        assert_eq!(a.compared, 4);
        assert_eq!(a.changed(), 2);
        assert_eq!(a.changed_percent(), Some(50.0));
        let mut b = a.clone();
        b.add(&a);
        assert_eq!(b.compared, 8);
        assert_eq!(b.allowed_to_denied, 2);
        b.subtract(&a);
        assert_eq!(b, a);
        b.subtract(&ImpactCounts {
            compared: 100,
            ..ImpactCounts::default()
        });
        assert_eq!(b.compared, 0);
        let json = serde_json::to_string(&ImpactClass::DeniedToAllowed).unwrap();
        assert_eq!(json, "\"denied_to_allowed\"");
        assert_eq!(ImpactClass::DeniedToAllowed.as_str(), "denied_to_allowed");
    }
}
