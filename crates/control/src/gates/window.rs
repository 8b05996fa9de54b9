//! What the gates judge: each cohort's counters over the stage's window, summed over
//! gateways ([`CohortWindow`]), the shadow comparison ([`ShadowWindow`]), and everything the
//! gates of one stage look at ([`StageWindow`]).

pub use rampart_model::wire::CohortWindow;
use rampart_model::wire::ImpactCounts;
use serde::{Deserialize, Serialize};

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
