//! The messages gateways and the control plane exchange, here so neither depends on the other:
//! config acknowledgements, per-cohort counters and request samples.

use serde::{Deserialize, Serialize};

use crate::config::GatewayIdentity;
use crate::snapshot::ContentHash;

/// Upper bounds, in milliseconds, of the latency histogram buckets in [`CohortCounters`];
/// a last, implicit bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    30_000.0,
];

/// A gateway's answer to a snapshot: it runs it, or it refused it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigAck {
    Ack { hash: ContentHash },
    Nack { hash: ContentHash, reason: String },
}

/// What a gateway reports about itself, every second to the control plane and on its admin
/// listener at `/cohorts`. Counters are cumulative since the gateway started; readers diff
/// two reports to get a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayReport {
    pub gateway: GatewayIdentity,
    /// The snapshot it runs, if any.
    pub snapshot: Option<ContentHash>,
    /// Milliseconds since the Unix epoch when the report was taken.
    pub at_ms: u64,
    pub cohorts: Vec<CohortCounters>,
    /// The last snapshot it refused, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_nack: Option<ConfigAck>,
}

/// Cumulative counters of one cohort on one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    /// Requests per latency bucket; see [`LATENCY_BOUNDS_MS`] (one more bucket than bounds).
    pub latency_ms: Vec<u64>,
    /// Whether this gateway's local guard has stopped using this candidate.
    #[serde(default)]
    pub guard_tripped: bool,
}

/// The metadata of one recent request, scrubbed of secrets, kept by gateways for the impact
/// test to replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSample {
    pub at_ms: u64,
    pub method: String,
    pub host: String,
    pub path: String,
    pub client_ip: std::net::IpAddr,
    /// Selected headers; credentials are replaced by a fingerprint (see the gateway docs).
    pub headers: Vec<(String, String)>,
    pub tenant: Option<String>,
    pub route: Option<String>,
    pub status: u16,
    /// `allow`, `static`, or the deny reason.
    pub outcome: String,
    pub rollout: Option<String>,
}
