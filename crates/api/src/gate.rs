//! What the rollout engine's gates decided: stored with a rollout as its last evaluation, shown
//! by `rampart rollout watch` and `show`.

use rampart_model::wire::CohortWindow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

rampart_model::wire_enum! {
    /// The decision of one gate, or of a whole stage.
    pub enum GateVerdict {
        /// The gate is satisfied.
        Pass,
        /// Not enough data yet to decide.
        Pending,
        /// The gate failed: the stage must not proceed.
        Fail,
    }
}

/// One gate's decision and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateResult {
    /// "error_rate", "latency_p99", "traffic_floor", "no_nack", "no_local_guard_trip",
    /// "shadow_diff"
    pub gate: String,
    /// The gate's decision.
    pub verdict: GateVerdict,
    /// The measured value the gate compares (error-rate gate: the SPRT log-likelihood ratio;
    /// latency: the p99 ratio; floor: observed/expected share ratio; nack/guard: count;
    /// shadow: the changed percentage), if any data.
    pub value: Option<f64>,
    /// The threshold it is compared against (error-rate: the upper SPRT boundary
    /// ln((1-beta)/alpha); latency: max_ratio; floor: min_ratio; nack/guard: 0; shadow:
    /// declared_percent + max_excess_percent).
    pub threshold: f64,
    /// Counts and rates behind the decision: at least baseline/candidate requests and errors,
    /// both rates, plus gate-specific numbers (p0, p1, lower boundary, p99s, expected and
    /// observed share...). Its keys depend on the gate.
    #[schema(value_type = Object)]
    pub evidence: Value,
    /// One human sentence, e.g. "candidate error rate 100.0% (20/20) vs baseline 0.1%
    /// (3/2000): SPRT LLR 32.1 >= 4.55".
    pub message: String,
}

/// Both cohorts over a stage's window, summed over the gateways in scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvalWindow {
    pub baseline: CohortWindow,
    pub candidate: CohortWindow,
}

/// One evaluation of a stage's gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageEval {
    pub at_ms: u64,
    pub stage: String,
    /// The stage's verdict: every gate's, the worst first.
    pub verdict: GateVerdict,
    pub gates: Vec<GateResult>,
    /// Soak so far, pauses excluded.
    pub elapsed_secs: f64,
    pub min_soak_secs: u64,
    /// Candidate requests in the window.
    pub samples: u64,
    pub min_samples: u64,
    /// The fresh gateways in the stage's scope that run its snapshot.
    pub gateways_in_scope: Vec<String>,
    pub window: EvalWindow,
}
