//! Health gates of one rollout stage: the candidate cohort judged against the baseline cohort,
//! over the same window, on the same gateways.
//!
//! This module is pure: no I/O, no async, no clock reads. The caller collects the gateways'
//! cumulative [`CohortCounters`](rampart_model::wire::CohortCounters), turns them into windows with [`CohortWindow::delta`] and
//! [`CohortWindow::add`], fills a [`StageWindow`], and asks [`judge`] or [`judge_all`] for a
//! [`Verdict`] per gate. Each [`GateResult`] carries its evidence (finite numbers only) and one
//! human sentence, so that the rollout can store it and `rampart rollout watch` can show it.
//!
//! # The gates
//!
//! - **`error_rate`**: Wald's sequential probability ratio test (see below).
//! - **`latency_p99`**: the candidate's p99 against the baseline's p99, both estimated from the
//!   latency histograms ([`CohortWindow::p99_ms`]). Pending until both cohorts have at least
//!   [`LATENCY_MIN_SAMPLES`] requests. The candidate fails only if
//!   `p99_c > max_ratio * p99_b` **and** `p99_c - p99_b > LATENCY_TOLERANCE_MS`: the additive
//!   tolerance ([`LATENCY_TOLERANCE_MS`]) keeps a 1 ms → 3 ms move, which is a large ratio but
//!   nothing a user notices (and mostly bucket resolution), from failing a rollout.
//! - **`traffic_floor`**: `expected = expected_share * (baseline + candidate requests)`; Pending
//!   while `expected <` [`FLOOR_MIN_EXPECTED`], then Fail if the candidate served fewer than
//!   `min_ratio * expected` requests. A gateway that serves nothing reports no errors, so the
//!   error gate alone cannot see a cohort whose traffic collapsed; this gate can. A window with
//!   no requests at all stays Pending, and so fails at the deadline.
//! - **`shadow_diff`** (shadow stages): the share of compared requests whose outcome the
//!   candidate changes ([`ShadowWindow`]), against the impact the change declared. Pending
//!   while fewer than [`SHADOW_MIN_COMPARED`] requests were compared; Fail as soon as
//!   `changed_percent > declared_percent + max_excess_percent` (the same rule as the impact
//!   test in [`crate::impact`]); Pass once under the threshold with the soak reached; Pending
//!   in between. Without shadow data ([`StageWindow::shadow`] is None) it stays Pending, and so
//!   fails at the deadline.
//! - **`no_nack`** / **`no_local_guard_trip`**: Fail as soon as one gateway refused the
//!   candidate's snapshot / one gateway's local guard tripped on it; Pass otherwise.
//!
//! Every gate that is still Pending when the stage has run for its `deadline_secs` is a Fail
//! ("no data by the deadline"), never a pass. Decisions are made from the current window only;
//! the caller keeps the history.
//!
//! # The error-rate test: a truncated SPRT (Wald, 1945)
//!
//! The candidate's requests are Bernoulli trials (error or not). We test
//! `H0: p = p0` (the candidate errs like the baseline) against `H1: p = p1 = p0 + min_effect`
//! with the log-likelihood ratio over the candidate's `n` requests and `x` errors:
//!
//! ```text
//! LLR = x ln(p1/p0) + (n - x) ln((1 - p1)/(1 - p0))
//! A   = ln((1 - beta)/alpha)      upper boundary: LLR >= A  => Fail (accept H1)
//! B   = ln(beta/(1 - alpha))      lower boundary: LLR <= B  => Pass (accept H0)
//! ```
//!
//! Between the boundaries the test is undecided: Pending, unless the stage's minimum soak time
//! and sample count are both reached ([`StageWindow::soak_reached`]), where the test is
//! truncated and H0 accepted (Pass). Nothing is decided before `n >= min_samples`.
//!
//! Why a sequential test: the control plane looks at the gates every second. Repeatedly
//! running a fixed-sample test (a two-proportion z-test, say) at every look inflates the
//! false-alarm rate far above its nominal alpha. Wald's boundaries keep the error rates at
//! (about) `alpha` and `beta` however often we look; a grossly failing candidate is stopped
//! after a handful of requests (a 100%-failing candidate fails at exactly `min_samples`
//! requests whenever `min_samples > A / ln(p1/p0)`); and the expected sample size is bounded
//! and smaller than that of the equivalent fixed-sample test.
//!
//! - `p0` is the baseline's error rate over the same window, clamped between [`P0_MIN`]
//!   (0.1%) and [`P0_MAX`] (50%). The floor matters: with a zero-error baseline, `p0 = 0`
//!   would make `ln(p1/p0)` infinite and a single candidate error decisive. When the baseline
//!   has no requests at all, `p0 = P0_MIN` and the evidence says so (`baseline_empty: true`).
//! - `p1 = min(p0 + min_effect, 0.999)` ([`P1_MAX`]).
//! - A stage's own baseline window can be (nearly) empty: a stage at 100% of its scope sends
//!   the baseline nothing. Below [`BASELINE_MIN_REQUESTS`] baseline requests, `p0` is
//!   estimated from the window plus [`StageWindow::reference`], the baseline's counters from
//!   before the stage (evidence `p0_source: "baseline+reference"`); the latency gate does the
//!   same below [`LATENCY_MIN_SAMPLES`].
//! - `beta`, the missed-detection rate, is the constant [`BETA`] = 0.05.
//! - Out-of-range gate parameters are clamped so that the boundaries stay finite: `alpha` to
//!   `[1e-9, 0.5]` ([`ALPHA_MIN`]) and `min_effect` to at least [`MIN_EFFECT_MIN`] (NaN takes the
//!   lower end).
//!
//! ## The default numbers
//!
//! With `alpha = 0.01`, `beta = 0.05`, `min_effect = 0.05` and a 0.1% baseline:
//!
//! ```text
//! p0 = 0.001, p1 = 0.051
//! A  = ln(0.95 / 0.01) = ln 95        =  4.554
//! B  = ln(0.05 / 0.99) = ln 0.0505    = -2.986
//! each error adds     ln(p1/p0)             = ln 51            = +3.932
//! each success adds   ln((1-p1)/(1-p0))     = ln(0.949/0.999)  = -0.0513
//! ```
//!
//! - A 100%-failing candidate crosses A after `ceil(4.554 / 3.932) = 2` errors (LLR 7.86), so
//!   with `min_samples >= 2` it fails at exactly `min_samples` requests (with
//!   `min_samples = 20`: LLR = 20 × 3.932 = 78.6 >= 4.55).
//! - A candidate with no errors reaches B after `ceil(2.986 / 0.0513) = 59` requests.
//! - A candidate erring like the baseline (0.1%) drifts by
//!   `0.001 × 3.932 − 0.999 × 0.0513 = −0.0474` per request: it reaches B after about 63
//!   requests on average.
//! - One error weighs about 77 successes (`3.932 / 0.0513`). A single error never fails the
//!   gate (`3.932 < 4.554`); two errors fail it if they come within 66 requests
//!   (`2 + (7.864 − 4.554) / 0.0513 = 66.5`), three within 144.

use rampart_model::change::{Gate, GateCheck};
use rampart_model::wire::ImpactCounts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The missed-detection rate (type II error) of the error-rate SPRT: the probability of
/// passing a candidate whose error rate really is `p0 + min_effect`. Fixed at 5%.
pub const BETA: f64 = 0.05;

/// Floor of the baseline error rate `p0` used by the SPRT (0.1%): a zero-error baseline would
/// otherwise make a single candidate error decisive. Also `p0` when the baseline is empty.
pub const P0_MIN: f64 = 0.001;

/// Ceiling of the baseline error rate `p0` used by the SPRT (50%).
pub const P0_MAX: f64 = 0.5;

/// Ceiling of the alternative error rate `p1` (99.9%), so that `ln(1 - p1)` stays finite.
pub const P1_MAX: f64 = 0.999;

/// Smallest `alpha` the error-rate gate accepts; smaller (or NaN) values are raised to it so
/// that the upper boundary stays finite. Values above 0.5 are lowered to 0.5.
pub const ALPHA_MIN: f64 = 1e-9;

/// Smallest `min_effect` the error-rate gate accepts (0.01 percentage points); smaller (or NaN)
/// values are raised to it, so that `p1 > p0` and the test can decide.
pub const MIN_EFFECT_MIN: f64 = 1e-4;

/// Additive tolerance of the latency gate, in milliseconds: the candidate fails only if
/// `p99_c > max_ratio * p99_b` **and** `p99_c - p99_b > LATENCY_TOLERANCE_MS`. It keeps small
/// absolute moves on fast routes (a ratio of 3 from 1 ms to 3 ms, within histogram bucket
/// resolution) from failing a rollout.
pub const LATENCY_TOLERANCE_MS: f64 = 10.0;

/// Requests each cohort needs before the latency gate decides: below 50 requests the "p99" is
/// just the slowest request or so, and too noisy to judge.
pub const LATENCY_MIN_SAMPLES: u64 = 50;

/// Expected candidate requests below which the traffic floor stays Pending: with fewer than 20
/// expected, a low count is within ordinary Poisson noise (and a stage just starting).
pub const FLOOR_MIN_EXPECTED: f64 = 20.0;

/// Requests a shadow stage must have compared before the `shadow_diff` gate decides: the same
/// default as the impact test's `min_samples` (below 100, one changed request is a whole
/// percentage point).
pub const SHADOW_MIN_COMPARED: u64 = 100;

/// Baseline requests in the stage's window below which the error-rate gate estimates `p0`
/// from the window plus [`StageWindow::reference`] (the baseline before the stage): with
/// fewer than 100 requests a 0.1%-ish baseline rate is not measured at all.
pub const BASELINE_MIN_REQUESTS: u64 = 100;

pub use rampart_model::wire::CohortWindow;

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
    /// is too small to estimate from (fewer than [`BASELINE_MIN_REQUESTS`] /
    /// [`LATENCY_MIN_SAMPLES`] requests): a stage at 100% of its scope sends no request to
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

/// The decision of one gate, or of a whole stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The gate is satisfied.
    Pass,
    /// Not enough data yet to decide.
    Pending,
    /// The gate failed: the stage must not proceed.
    Fail,
}

/// One gate's decision and its evidence: stored as JSON with the rollout, and shown by
/// `rampart rollout watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// "error_rate", "latency_p99", "traffic_floor", "no_nack", "no_local_guard_trip",
    /// "shadow_diff"
    pub gate: String,
    /// The gate's decision.
    pub verdict: Verdict,
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
    /// observed share...).
    pub evidence: serde_json::Value,
    /// One human sentence, e.g. "candidate error rate 100.0% (20/20) vs baseline 0.1%
    /// (3/2000): SPRT LLR 32.1 >= 4.55".
    pub message: String,
}

/// A JSON number if `x` is finite, else null: evidence never holds NaN or infinities.
fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// An optional float as JSON, null when absent or not finite.
fn opt_num(x: Option<f64>) -> Value {
    x.map_or(Value::Null, num)
}

/// `x` if finite, else `fallback`.
fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() { x } else { fallback }
}

/// A rate as a percentage with one decimal, or "n/a".
fn pct(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// The evidence every gate carries: both cohorts' requests, errors and error rates.
fn base_evidence(w: &StageWindow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("baseline_requests".into(), json!(w.baseline.requests));
    m.insert("baseline_errors".into(), json!(w.baseline.errors));
    m.insert(
        "baseline_error_rate".into(),
        opt_num(w.baseline.error_rate()),
    );
    m.insert("candidate_requests".into(), json!(w.candidate.requests));
    m.insert("candidate_errors".into(), json!(w.candidate.errors));
    m.insert(
        "candidate_error_rate".into(),
        opt_num(w.candidate.error_rate()),
    );
    m.insert("elapsed_secs".into(), num(w.elapsed_secs));
    m
}

/// Judge one gate. A gate that is still Pending when `w.elapsed_secs >= gate.deadline_secs` is
/// a Fail whose message says "no data by the deadline" (never a pass). Pass/Fail decisions of a
/// gate are made from the current window only (the caller keeps history).
pub fn judge(gate: &Gate, w: &StageWindow) -> GateResult {
    let mut evidence = base_evidence(w);
    let (name, verdict, value, threshold, message) = match &gate.check {
        GateCheck::ErrorRate {
            alpha,
            min_effect,
            min_samples,
        } => sprt_gate(
            Counted::Errors,
            *alpha,
            *min_effect,
            *min_samples,
            w,
            &mut evidence,
        ),
        GateCheck::DenyRate {
            min_effect,
            min_samples,
            ..
        } if w.declares_impact => (
            "deny_rate",
            Verdict::Pass,
            None,
            0.0,
            format!(
                "the change declares an impact: its denials are judged by the impact test (and the shadow stage), not here ({} of {} candidate requests denied, min {min_samples}, min_effect {min_effect})",
                w.candidate.denied, w.candidate.requests
            ),
        ),
        GateCheck::DenyRate {
            alpha,
            min_effect,
            min_samples,
        } => sprt_gate(
            Counted::Denied,
            *alpha,
            *min_effect,
            *min_samples,
            w,
            &mut evidence,
        ),
        GateCheck::LatencyP99 { max_ratio } => latency_p99(*max_ratio, w, &mut evidence),
        GateCheck::TrafficFloor { min_ratio } => traffic_floor(*min_ratio, w, &mut evidence),
        GateCheck::NoNack => listed("no_nack", "refused (NACKed) the candidate", &w.nacks),
        GateCheck::NoLocalGuardTrip => listed(
            "no_local_guard_trip",
            "tripped their local guard on the candidate",
            &w.guard_trips,
        ),
        GateCheck::ShadowDiff { max_excess_percent } => {
            shadow_diff(*max_excess_percent, w, &mut evidence)
        }
    };
    evidence.insert("deadline_secs".into(), json!(gate.deadline_secs));
    let (verdict, message) =
        if verdict == Verdict::Pending && w.elapsed_secs >= gate.deadline_secs as f64 {
            evidence.insert("deadline_passed".into(), json!(true));
            let message = format!(
                "no data by the deadline ({}s, stage at {:.0}s): {message}",
                gate.deadline_secs,
                finite_or(w.elapsed_secs, 0.0)
            );
            (Verdict::Fail, message)
        } else {
            (verdict, message)
        };
    GateResult {
        gate: name.to_owned(),
        verdict,
        value: value.filter(|v| v.is_finite()),
        threshold: finite_or(threshold, 0.0),
        evidence: Value::Object(evidence),
        message,
    }
}

/// Judge every gate; the stage verdict: Fail if any fails, Pass if all pass (so an empty list
/// passes), else Pending.
pub fn judge_all(gates: &[Gate], w: &StageWindow) -> (Verdict, Vec<GateResult>) {
    let results: Vec<GateResult> = gates.iter().map(|g| judge(g, w)).collect();
    let verdict = if results.iter().any(|r| r.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if results.iter().all(|r| r.verdict == Verdict::Pass) {
        Verdict::Pass
    } else {
        Verdict::Pending
    };
    (verdict, results)
}

/// What one gate check returns before the deadline rule: name, verdict, value, threshold,
/// message.
type Judged = (&'static str, Verdict, Option<f64>, f64, String);

/// The parameters of the error-rate SPRT for one window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sprt {
    p0: f64,
    p1: f64,
    /// Upper boundary `ln((1-beta)/alpha)`.
    upper: f64,
    /// Lower boundary `ln(beta/(1-alpha))`.
    lower: f64,
}

impl Sprt {
    /// The test for a baseline error rate (None when the baseline is empty) and the gate's
    /// parameters, clamped as the module doc says.
    fn new(baseline_rate: Option<f64>, alpha: f64, min_effect: f64) -> Sprt {
        let alpha = if alpha.is_nan() {
            ALPHA_MIN
        } else {
            alpha.clamp(ALPHA_MIN, 0.5)
        };
        let min_effect = if min_effect.is_nan() {
            MIN_EFFECT_MIN
        } else {
            min_effect.max(MIN_EFFECT_MIN)
        };
        let p0 = baseline_rate.unwrap_or(P0_MIN).clamp(P0_MIN, P0_MAX);
        let p1 = (p0 + min_effect).min(P1_MAX);
        Sprt {
            p0,
            p1,
            upper: ((1.0 - BETA) / alpha).ln(),
            lower: (BETA / (1.0 - alpha)).ln(),
        }
    }

    /// The log-likelihood ratio of `x` errors in `n` requests (`x` capped at `n`).
    fn llr(&self, n: u64, x: u64) -> f64 {
        let x = x.min(n);
        let ok = (n - x) as f64;
        x as f64 * (self.p1 / self.p0).ln() + ok * ((1.0 - self.p1) / (1.0 - self.p0)).ln()
    }
}

/// What a sequential gate counts.
#[derive(Debug, Clone, Copy)]
enum Counted {
    /// `error_rate`: 5xx, gateway errors and fallbacks.
    Errors,
    /// `deny_rate`: the gateway's own 4xx answers.
    Denied,
}

impl Counted {
    fn of(self, w: &CohortWindow) -> u64 {
        match self {
            Counted::Errors => w.errors,
            Counted::Denied => w.denied,
        }
    }
}

/// The error-rate and deny-rate gates: a truncated SPRT (see the module doc) on what `what`
/// counts.
fn sprt_gate(
    what: Counted,
    alpha: f64,
    min_effect: f64,
    min_samples: u64,
    w: &StageWindow,
    ev: &mut Map<String, Value>,
) -> Judged {
    let (name, noun) = match what {
        Counted::Errors => ("error_rate", "error"),
        Counted::Denied => ("deny_rate", "deny"),
    };
    let (base, source) = w.baseline_estimate(BASELINE_MIN_REQUESTS);
    let base_x = what.of(&base);
    let base_rate = CohortWindow::rate(base_x, base.requests);
    let sprt = Sprt::new(base_rate, alpha, min_effect);
    let (n, x) = (
        w.candidate.requests,
        what.of(&w.candidate).min(w.candidate.requests),
    );
    let llr = sprt.llr(n, x);
    ev.insert("counted".into(), json!(noun));
    ev.insert("p0".into(), num(sprt.p0));
    ev.insert("p1".into(), num(sprt.p1));
    ev.insert("alpha".into(), num(alpha));
    ev.insert("beta".into(), num(BETA));
    ev.insert("min_effect".into(), num(min_effect));
    ev.insert("min_samples".into(), json!(min_samples));
    ev.insert("upper_boundary".into(), num(sprt.upper));
    ev.insert("lower_boundary".into(), num(sprt.lower));
    ev.insert("llr".into(), num(llr));
    ev.insert("baseline_empty".into(), json!(w.baseline.requests == 0));
    let p0_source = if base.requests == 0 { "floor" } else { source };
    ev.insert("p0_source".into(), json!(p0_source));
    ev.insert("p0_requests".into(), json!(base.requests));
    ev.insert(format!("p0_{noun}s"), json!(base_x));
    ev.insert(format!("candidate_{noun}s"), json!(x));
    ev.insert("soak_reached".into(), json!(w.soak_reached));
    let baseline_note = if base.requests == 0 {
        " (no baseline data: p0 floored)"
    } else {
        ""
    };
    let head = format!(
        "candidate {noun} rate {} ({x}/{n}) vs {source} {} ({base_x}/{}){baseline_note}",
        pct(CohortWindow::rate(x, n)),
        pct(base_rate),
        base.requests,
    );
    if n < min_samples || n == 0 {
        let message = format!("{head}: waiting for {min_samples} candidate requests");
        return (name, Verdict::Pending, None, sprt.upper, message);
    }
    let (verdict, message) = if llr >= sprt.upper {
        (
            Verdict::Fail,
            format!("{head}: SPRT LLR {llr:.1} >= {:.2}", sprt.upper),
        )
    } else if llr <= sprt.lower {
        (
            Verdict::Pass,
            format!("{head}: SPRT LLR {llr:.1} <= {:.2}", sprt.lower),
        )
    } else if w.soak_reached {
        (
            Verdict::Pass,
            format!(
                "{head}: SPRT LLR {llr:.1} within ({:.2}, {:.2}) at soak: accepted (truncated test)",
                sprt.lower, sprt.upper
            ),
        )
    } else {
        (
            Verdict::Pending,
            format!(
                "{head}: SPRT LLR {llr:.1} within ({:.2}, {:.2}): undecided",
                sprt.lower, sprt.upper
            ),
        )
    };
    (name, verdict, Some(llr), sprt.upper, message)
}

/// The latency gate: candidate p99 against baseline p99, ratio and additive tolerance.
fn latency_p99(max_ratio: f64, w: &StageWindow, ev: &mut Map<String, Value>) -> Judged {
    const NAME: &str = "latency_p99";
    let (base, source) = w.baseline_estimate(LATENCY_MIN_SAMPLES);
    let p99_b = base.p99_ms();
    let p99_c = w.candidate.p99_ms();
    ev.insert("baseline_p99_ms".into(), opt_num(p99_b));
    ev.insert("candidate_p99_ms".into(), opt_num(p99_c));
    ev.insert("max_ratio".into(), num(max_ratio));
    ev.insert("tolerance_ms".into(), num(LATENCY_TOLERANCE_MS));
    ev.insert("min_samples".into(), json!(LATENCY_MIN_SAMPLES));
    ev.insert("p99_source".into(), json!(source));
    let enough =
        base.requests >= LATENCY_MIN_SAMPLES && w.candidate.requests >= LATENCY_MIN_SAMPLES;
    let (Some(b), Some(c), true) = (p99_b, p99_c, enough) else {
        let message = format!(
            "waiting for {LATENCY_MIN_SAMPLES} requests with latencies in both cohorts \
             ({source} {}, candidate {})",
            base.requests, w.candidate.requests
        );
        return (NAME, Verdict::Pending, None, max_ratio, message);
    };
    // b > 0: the estimate interpolates strictly above the first bucket's lower bound 0.
    let ratio = c / b;
    ev.insert("ratio".into(), num(ratio));
    // A NaN max_ratio compares as "exceeded", so a broken gate cannot pass silently.
    let fails = (max_ratio.is_nan() || c > max_ratio * b) && c - b > LATENCY_TOLERANCE_MS;
    let head = format!("candidate p99 {c:.1} ms vs {source} {b:.1} ms (ratio {ratio:.2})");
    let (verdict, message) = if fails {
        (
            Verdict::Fail,
            format!(
                "{head}: above {max_ratio:.2}x and more than {LATENCY_TOLERANCE_MS:.0} ms slower"
            ),
        )
    } else {
        (
            Verdict::Pass,
            format!(
                "{head}: within {max_ratio:.2}x or {LATENCY_TOLERANCE_MS:.0} ms of the baseline"
            ),
        )
    };
    (NAME, verdict, Some(ratio), max_ratio, message)
}

/// The traffic floor: the candidate serves at least `min_ratio` of its expected requests.
fn traffic_floor(min_ratio: f64, w: &StageWindow, ev: &mut Map<String, Value>) -> Judged {
    const NAME: &str = "traffic_floor";
    let total = w.baseline.requests as f64 + w.candidate.requests as f64;
    let share = finite_or(w.expected_share, 0.0).clamp(0.0, 1.0);
    let expected = share * total;
    let observed_share = (total > 0.0).then(|| w.candidate.requests as f64 / total);
    ev.insert("expected_share".into(), num(share));
    ev.insert("observed_share".into(), opt_num(observed_share));
    ev.insert("expected_requests".into(), num(expected));
    ev.insert("min_ratio".into(), num(min_ratio));
    ev.insert("min_expected".into(), num(FLOOR_MIN_EXPECTED));
    if expected < FLOOR_MIN_EXPECTED {
        let message = format!(
            "candidate served {} requests, {expected:.1} expected: waiting for {FLOOR_MIN_EXPECTED:.0} expected",
            w.candidate.requests
        );
        return (NAME, Verdict::Pending, None, min_ratio, message);
    }
    let ratio = w.candidate.requests as f64 / expected;
    ev.insert("ratio".into(), num(ratio));
    let head = format!(
        "candidate served {} requests, {expected:.1} expected ({:.1}% of {total:.0}): ratio {ratio:.2}",
        w.candidate.requests,
        share * 100.0
    );
    // A NaN min_ratio makes the comparison false: the gate fails rather than passes silently.
    let (verdict, message) = if (w.candidate.requests as f64) >= min_ratio * expected {
        (Verdict::Pass, format!("{head} >= {min_ratio:.2}"))
    } else {
        (Verdict::Fail, format!("{head} < {min_ratio:.2}"))
    };
    (NAME, verdict, Some(ratio), min_ratio, message)
}

/// The shadow gate: the changed share against the declared impact plus the allowed excess.
fn shadow_diff(max_excess_percent: f64, w: &StageWindow, ev: &mut Map<String, Value>) -> Judged {
    const NAME: &str = "shadow_diff";
    ev.insert("max_excess_percent".into(), num(max_excess_percent));
    ev.insert("min_compared".into(), json!(SHADOW_MIN_COMPARED));
    ev.insert("soak_reached".into(), json!(w.soak_reached));
    let Some(shadow) = &w.shadow else {
        ev.insert("compared".into(), json!(0));
        let message = "no shadow comparison data yet".to_owned();
        return (NAME, Verdict::Pending, None, max_excess_percent, message);
    };
    let counts = &shadow.counts;
    let threshold = shadow.declared_percent + max_excess_percent;
    let changed = counts.changed();
    let changed_percent = counts.changed_percent();
    ev.insert("compared".into(), json!(counts.compared));
    ev.insert("changed".into(), json!(changed));
    ev.insert("allowed_to_denied".into(), json!(counts.allowed_to_denied));
    ev.insert("denied_to_allowed".into(), json!(counts.denied_to_allowed));
    ev.insert("route_changed".into(), json!(counts.route_changed));
    ev.insert("status_changed".into(), json!(counts.status_changed));
    ev.insert("changed_percent".into(), opt_num(changed_percent));
    ev.insert("declared_percent".into(), num(shadow.declared_percent));
    ev.insert("threshold_percent".into(), num(threshold));
    let head = format!(
        "candidate changes {} of compared requests ({changed}/{}), declared {:.1}% + {:.1} points allowed",
        changed_percent.map_or_else(|| "n/a".to_owned(), |p| format!("{p:.1}%")),
        counts.compared,
        finite_or(shadow.declared_percent, 0.0),
        finite_or(max_excess_percent, 0.0),
    );
    let changed_percent = match changed_percent {
        Some(p) if counts.compared >= SHADOW_MIN_COMPARED => p,
        _ => {
            let message = format!("{head}: waiting for {SHADOW_MIN_COMPARED} compared requests");
            return (NAME, Verdict::Pending, None, threshold, message);
        }
    };
    // A threshold that is not a number fails.
    let (verdict, message) = if threshold.is_nan() || changed_percent > threshold {
        (Verdict::Fail, format!("{head}: above the threshold"))
    } else if w.soak_reached {
        (Verdict::Pass, format!("{head}: within the threshold"))
    } else {
        (
            Verdict::Pending,
            format!("{head}: within the threshold so far, soaking"),
        )
    };
    (NAME, verdict, Some(changed_percent), threshold, message)
}

/// The NACK and local-guard gates: Fail as soon as the list is non-empty.
fn listed(name: &'static str, what: &str, gateways: &[String]) -> Judged {
    let count = gateways.len() as f64;
    if gateways.is_empty() {
        let message = format!("no gateway {what}");
        (name, Verdict::Pass, Some(0.0), 0.0, message)
    } else {
        let message = format!(
            "{} gateway(s) {what}: {}",
            gateways.len(),
            gateways.join("; ")
        );
        (name, Verdict::Fail, Some(count), 0.0, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rampart_model::wire::{CohortCounters, LATENCY_BOUNDS_MS};

    fn gate(check: GateCheck) -> Gate {
        Gate {
            deadline_secs: 600,
            check,
        }
    }

    fn error_gate() -> Gate {
        gate(GateCheck::ErrorRate {
            alpha: 0.01,
            min_effect: 0.05,
            min_samples: 20,
        })
    }

    fn cohort(requests: u64, errors: u64) -> CohortWindow {
        CohortWindow {
            requests,
            errors,
            denied: 0,
            latency_ms: Vec::new(),
        }
    }

    /// A cohort whose requests all fall in bucket `i`.
    fn latency_cohort(requests: u64, bucket: usize) -> CohortWindow {
        let mut latency_ms = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        latency_ms[bucket] = requests;
        CohortWindow {
            requests,
            errors: 0,
            denied: 0,
            latency_ms,
        }
    }

    fn window(baseline: CohortWindow, candidate: CohortWindow) -> StageWindow {
        StageWindow {
            baseline,
            candidate,
            expected_share: 0.1,
            elapsed_secs: 10.0,
            ..StageWindow::default()
        }
    }

    fn all_finite(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
            Value::Array(a) => a.iter().all(all_finite),
            Value::Object(o) => o.values().all(all_finite),
            _ => true,
        }
    }

    fn counters(requests: u64, up: u64, gw: u64, latency_ms: Vec<u64>) -> CohortCounters {
        CohortCounters {
            rollout: Some("r1".into()),
            requests,
            upstream_errors: up,
            gateway_errors: gw,
            latency_ms,
            ..CohortCounters::default()
        }
    }

    #[test]
    fn delta_subtracts_and_sums_errors() {
        let start = counters(100, 2, 1, vec![50, 50]);
        let now = counters(150, 5, 2, vec![70, 80]);
        let d = CohortWindow::delta(Some(&start), &now);
        assert_eq!(
            d,
            CohortWindow {
                requests: 50,
                errors: 4,
                denied: 0,
                latency_ms: vec![20, 30]
            }
        );
        let whole = CohortWindow::delta(None, &now);
        assert_eq!(
            whole,
            CohortWindow {
                requests: 150,
                errors: 7,
                denied: 0,
                latency_ms: vec![70, 80]
            }
        );
    }

    #[test]
    fn delta_with_counter_reset_takes_whole_now() {
        let start = counters(1000, 10, 0, vec![500, 500]);
        let now = counters(30, 1, 1, vec![10, 20]);
        let d = CohortWindow::delta(Some(&start), &now);
        assert_eq!(
            d,
            CohortWindow {
                requests: 30,
                errors: 2,
                denied: 0,
                latency_ms: vec![10, 20]
            }
        );
        // Requests grew but one error counter went back: still a reset.
        let now = counters(1200, 3, 0, vec![600, 600]);
        assert_eq!(CohortWindow::delta(Some(&start), &now).requests, 1200);
        // A histogram bucket went back.
        let now = counters(1200, 10, 0, vec![400, 800]);
        assert_eq!(CohortWindow::delta(Some(&start), &now).requests, 1200);
    }

    #[test]
    fn add_sums_histograms_of_different_lengths() {
        let mut a = CohortWindow {
            requests: 3,
            errors: 1,
            denied: 0,
            latency_ms: vec![1, 2],
        };
        a.add(&CohortWindow {
            requests: 4,
            errors: 2,
            denied: 0,
            latency_ms: vec![1, 1, 2],
        });
        assert_eq!(
            a,
            CohortWindow {
                requests: 7,
                errors: 3,
                denied: 0,
                latency_ms: vec![2, 3, 2]
            }
        );
        a.add(&CohortWindow {
            requests: 1,
            errors: 0,
            denied: 0,
            latency_ms: vec![5],
        });
        assert_eq!(a.latency_ms, vec![7, 3, 2]);
    }

    #[test]
    fn p99_interpolates_inside_the_bucket() {
        // 100 requests: 90 in [0, 1], 10 in (1, 2]. Rank 99 is the 9th of the 10 in the second
        // bucket: 1 + 0.9 * (2 - 1) = 1.9.
        let mut latency_ms = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        latency_ms[0] = 90;
        latency_ms[1] = 10;
        let c = CohortWindow {
            requests: 100,
            errors: 0,
            denied: 0,
            latency_ms,
        };
        assert!((c.p99_ms().unwrap() - 1.9).abs() < 1e-9);
        // All in (100, 200]: 100 + 0.99 * 100 = 199.
        let c = latency_cohort(100, 7);
        assert!((c.p99_ms().unwrap() - 199.0).abs() < 1e-9);
        // All in the first bucket: 0.99 * 1.
        assert!((latency_cohort(100, 0).p99_ms().unwrap() - 0.99).abs() < 1e-9);
        // Overflow: between 30 s and 60 s, at most 2x the last bound.
        let p = latency_cohort(100, LATENCY_BOUNDS_MS.len())
            .p99_ms()
            .unwrap();
        assert!((p - 59_700.0).abs() < 1e-6);
        assert!(p <= 2.0 * 30_000.0);
    }

    #[test]
    fn p99_none_without_data() {
        assert_eq!(CohortWindow::default().p99_ms(), None);
        assert_eq!(cohort(10, 0).p99_ms(), None);
        let zeros = CohortWindow {
            requests: 10,
            errors: 0,
            denied: 0,
            latency_ms: vec![0; 15],
        };
        assert_eq!(zeros.p99_ms(), None);
        assert_eq!(CohortWindow::default().error_rate(), None);
        assert_eq!(cohort(10, 20).error_rate(), Some(1.0));
    }

    #[test]
    fn error_rate_fully_failing_candidate_fails_at_exactly_min_samples() {
        let g = error_gate();
        // 0.1% baseline.
        let base = cohort(2000, 2);
        let r = judge(&g, &window(base.clone(), cohort(19, 19)));
        assert_eq!(r.verdict, Verdict::Pending, "{}", r.message);
        let r = judge(&g, &window(base, cohort(20, 20)));
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
        assert_eq!(r.gate, "error_rate");
        // LLR = 20 ln 51 = 78.64, A = ln 95 = 4.554.
        assert!((r.value.unwrap() - 20.0 * 51f64.ln()).abs() < 1e-9);
        assert!((r.threshold - 95f64.ln()).abs() < 1e-12);
        assert!(r.message.contains("SPRT LLR 78.6 >= 4.55"), "{}", r.message);
        assert!(r.message.contains("100.0% (20/20)"), "{}", r.message);
        assert!(r.message.contains("0.1% (2/2000)"), "{}", r.message);
        let ev = &r.evidence;
        assert_eq!(ev["candidate_requests"], 20);
        assert_eq!(ev["baseline_errors"], 2);
        assert!((ev["p0"].as_f64().unwrap() - 0.001).abs() < 1e-12);
        assert!((ev["p1"].as_f64().unwrap() - 0.051).abs() < 1e-12);
        assert!((ev["lower_boundary"].as_f64().unwrap() - (0.05f64 / 0.99).ln()).abs() < 1e-12);
        assert!(all_finite(ev));
    }

    #[test]
    fn error_rate_healthy_candidate_passes_at_soak() {
        let g = error_gate();
        // Same 0.1% rate as the baseline: 1 error in 1000; LLR = ln 51 + 999 ln(0.949/0.999)
        // = -47.4, far below B.
        let mut w = window(cohort(10_000, 10), cohort(1000, 1));
        w.soak_reached = true;
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
        assert!(r.value.unwrap() < -40.0);
        // Also passes before soak: it crossed the lower boundary.
        w.soak_reached = false;
        assert_eq!(judge(&g, &w).verdict, Verdict::Pass);
    }

    #[test]
    fn error_rate_undecided_is_pending_then_truncated_at_soak() {
        let g = error_gate();
        // 1 error in 20: LLR = ln 51 + 19 ln(0.949/0.999) = 2.96, between B and A.
        let mut w = window(cohort(2000, 2), cohort(20, 1));
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Pending, "{}", r.message);
        assert!(r.value.unwrap() > 2.9 && r.value.unwrap() < 3.0);
        w.soak_reached = true;
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
        assert!(r.message.contains("truncated"), "{}", r.message);
    }

    #[test]
    fn error_rate_pending_below_min_samples_even_at_soak() {
        let mut w = window(cohort(2000, 2), cohort(19, 0));
        w.soak_reached = true;
        let r = judge(&error_gate(), &w);
        assert_eq!(r.verdict, Verdict::Pending);
        assert_eq!(r.value, None);
    }

    #[test]
    fn error_rate_empty_baseline_floors_p0_and_says_so() {
        let r = judge(&error_gate(), &window(cohort(0, 0), cohort(100, 0)));
        assert_eq!(r.evidence["baseline_empty"], true);
        assert!((r.evidence["p0"].as_f64().unwrap() - P0_MIN).abs() < 1e-15);
        assert!(r.message.contains("no baseline data"), "{}", r.message);
        // 100 successes: 100 * -0.0513 = -5.1 <= B.
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    }

    #[test]
    fn error_rate_zero_error_baseline_one_error_not_decisive() {
        // With p0 floored to 0.1%, one error in 20 is undecided, not a fail.
        let r = judge(&error_gate(), &window(cohort(5000, 0), cohort(20, 1)));
        assert_eq!(r.verdict, Verdict::Pending, "{}", r.message);
    }

    #[test]
    fn deny_rate_catches_a_candidate_that_denies_everything_unless_declared() {
        let g = gate(GateCheck::DenyRate {
            alpha: 0.01,
            min_effect: 0.05,
            min_samples: 20,
        });
        let base = CohortWindow {
            denied: 10,
            ..cohort(2_000, 0)
        };
        let cand = CohortWindow {
            denied: 20,
            ..cohort(20, 0)
        };
        let mut w = window(base, cand);
        let r = judge(&g, &w);
        assert_eq!(r.gate, "deny_rate");
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
        assert!(
            r.message.contains("deny rate 100.0% (20/20)"),
            "{}",
            r.message
        );
        // The same 403s from a change that declares them: left to the impact test.
        w.declares_impact = true;
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
        // 5xx do not count as denials, nor denials as errors.
        let e = judge(
            &error_gate(),
            &window(
                cohort(2_000, 0),
                CohortWindow {
                    denied: 20,
                    ..cohort(20, 0)
                },
            ),
        );
        assert_ne!(e.verdict, Verdict::Fail);
    }

    #[test]
    fn latency_gate_pass_fail_pending() {
        let g = gate(GateCheck::LatencyP99 { max_ratio: 1.5 });
        // Too few candidate requests.
        let r = judge(&g, &window(latency_cohort(100, 7), latency_cohort(49, 9)));
        assert_eq!(r.verdict, Verdict::Pending, "{}", r.message);
        assert_eq!(r.value, None);
        // 199 ms vs 995 ms (bucket (500, 1000]): ratio 5, 796 ms slower.
        let r = judge(&g, &window(latency_cohort(100, 7), latency_cohort(50, 9)));
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
        assert_eq!(r.gate, "latency_p99");
        assert!((r.value.unwrap() - 995.0 / 199.0).abs() < 1e-9);
        assert_eq!(r.threshold, 1.5);
        assert!(all_finite(&r.evidence));
        // Same buckets: ratio 1.
        let r = judge(&g, &window(latency_cohort(100, 7), latency_cohort(50, 7)));
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    }

    #[test]
    fn empty_baseline_falls_back_on_reference() {
        // A 100% stage: the baseline window is empty, the reference has a 2% error rate.
        let mut w = window(cohort(0, 0), cohort(1000, 20));
        w.soak_reached = true;
        let r = judge(&error_gate(), &w);
        // Against the floor (0.1%), 2% fails.
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
        assert_eq!(r.evidence["p0_source"], "floor");
        w.reference = Some(cohort(100_000, 2000));
        let r = judge(&error_gate(), &w);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
        assert_eq!(r.evidence["p0_source"], "baseline+reference");
        assert!((r.evidence["p0"].as_f64().unwrap() - 0.02).abs() < 1e-12);
        assert!(
            r.message.contains("baseline+reference 2.0%"),
            "{}",
            r.message
        );
        // A big enough window ignores the reference.
        w.baseline = cohort(1000, 1);
        let r = judge(&error_gate(), &w);
        assert_eq!(r.evidence["p0_source"], "baseline");
        // Latency: the reference supplies the baseline p99.
        let g = gate(GateCheck::LatencyP99 { max_ratio: 1.5 });
        let mut w = window(CohortWindow::default(), latency_cohort(100, 7));
        assert_eq!(judge(&g, &w).verdict, Verdict::Pending);
        w.reference = Some(latency_cohort(1000, 7));
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
        assert_eq!(r.evidence["p99_source"], "baseline+reference");
    }

    #[test]
    fn latency_gate_tolerance_spares_small_absolute_moves() {
        let g = gate(GateCheck::LatencyP99 { max_ratio: 1.5 });
        // 0.99 ms vs 4.97 ms: ratio 5 but only 4 ms slower.
        let r = judge(&g, &window(latency_cohort(100, 0), latency_cohort(100, 2)));
        assert!(r.value.unwrap() > 1.5);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    }

    #[test]
    fn traffic_floor_pass_fail_pending() {
        let g = gate(GateCheck::TrafficFloor { min_ratio: 0.5 });
        // 10% of 150 = 15 expected < 20: pending.
        let r = judge(&g, &window(cohort(140, 0), cohort(10, 0)));
        assert_eq!(r.verdict, Verdict::Pending, "{}", r.message);
        // 10% of 1000 = 100 expected, 90 served: ratio 0.9.
        let r = judge(&g, &window(cohort(910, 0), cohort(90, 0)));
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
        assert!((r.value.unwrap() - 0.9).abs() < 1e-12);
        assert_eq!(r.gate, "traffic_floor");
        // 100 expected, 10 served: collapsed.
        let r = judge(&g, &window(cohort(990, 0), cohort(10, 0)));
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
        assert!((r.value.unwrap() - 0.1).abs() < 1e-12);
        assert!(all_finite(&r.evidence));
    }

    #[test]
    fn traffic_floor_no_traffic_stays_pending_and_fails_at_deadline() {
        let g = gate(GateCheck::TrafficFloor { min_ratio: 0.5 });
        let mut w = window(cohort(0, 0), cohort(0, 0));
        assert_eq!(judge(&g, &w).verdict, Verdict::Pending);
        w.elapsed_secs = 600.0;
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.message.contains("no data by the deadline"),
            "{}",
            r.message
        );
    }

    #[test]
    fn nack_and_guard_gates() {
        let nack = gate(GateCheck::NoNack);
        let guard = gate(GateCheck::NoLocalGuardTrip);
        let mut w = window(cohort(0, 0), cohort(0, 0));
        let r = judge(&nack, &w);
        assert_eq!(
            (r.verdict, r.value, r.threshold),
            (Verdict::Pass, Some(0.0), 0.0)
        );
        assert_eq!(judge(&guard, &w).verdict, Verdict::Pass);
        w.nacks = vec!["gw-1: unknown field".into(), "gw-2: too many routes".into()];
        let r = judge(&nack, &w);
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.value, Some(2.0));
        assert!(r.message.contains("gw-1: unknown field"), "{}", r.message);
        assert!(r.message.contains("gw-2: too many routes"), "{}", r.message);
        assert_eq!(judge(&guard, &w).verdict, Verdict::Pass);
        w.guard_trips = vec!["gw-3".into()];
        let r = judge(&guard, &w);
        assert_eq!(
            (r.gate.as_str(), r.verdict),
            ("no_local_guard_trip", Verdict::Fail)
        );
        assert!(r.message.contains("gw-3"), "{}", r.message);
    }

    #[test]
    fn shadow_diff_pass_fail_pending() {
        let g = gate(GateCheck::ShadowDiff {
            max_excess_percent: 1.0,
        });
        let mut w = window(cohort(0, 0), cohort(0, 0));
        let r = judge(&g, &w);
        assert_eq!(
            (r.gate.as_str(), r.verdict),
            ("shadow_diff", Verdict::Pending)
        );
        let shadow = |compared, route_changed| ShadowWindow {
            counts: ImpactCounts {
                compared,
                route_changed,
                ..ImpactCounts::default()
            },
            declared_percent: 2.0,
        };
        // Too few compared.
        w.shadow = Some(shadow(99, 50));
        assert_eq!(judge(&g, &w).verdict, Verdict::Pending);
        // 4% changed > 2% declared + 1: fails without waiting for the soak.
        w.shadow = Some(shadow(1000, 40));
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
        assert_eq!((r.value, r.threshold), (Some(4.0), 3.0));
        assert!(all_finite(&r.evidence));
        // 3% changed: within; Pending until the soak, then Pass.
        w.shadow = Some(shadow(1000, 30));
        assert_eq!(judge(&g, &w).verdict, Verdict::Pending);
        w.soak_reached = true;
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
        // A NaN threshold fails.
        w.shadow = Some(ShadowWindow {
            declared_percent: f64::NAN,
            ..shadow(1000, 0)
        });
        assert_eq!(judge(&g, &w).verdict, Verdict::Fail);
    }

    #[test]
    fn pending_at_deadline_is_a_fail_never_a_pass() {
        let g = Gate {
            deadline_secs: 120,
            ..error_gate()
        };
        let mut w = window(cohort(2000, 2), cohort(5, 0));
        w.elapsed_secs = 119.9;
        assert_eq!(judge(&g, &w).verdict, Verdict::Pending);
        w.elapsed_secs = 120.0;
        let r = judge(&g, &w);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.message.contains("no data by the deadline"),
            "{}",
            r.message
        );
        assert_eq!(r.evidence["deadline_passed"], true);
        // A decided gate keeps its verdict after the deadline.
        w.elapsed_secs = 1000.0;
        assert_eq!(judge(&gate(GateCheck::NoNack), &w).verdict, Verdict::Pass);
    }

    #[test]
    fn judge_all_combines_verdicts() {
        let gates = vec![error_gate(), gate(GateCheck::NoNack)];
        let mut w = window(cohort(2000, 2), cohort(5, 0));
        let (v, results) = judge_all(&gates, &w);
        assert_eq!((v, results.len()), (Verdict::Pending, 2));
        w.candidate = cohort(1000, 0);
        assert_eq!(judge_all(&gates, &w).0, Verdict::Pass);
        w.nacks = vec!["gw-1: bad".into()];
        assert_eq!(judge_all(&gates, &w).0, Verdict::Fail);
        assert_eq!(judge_all(&[], &w).0, Verdict::Pass);
    }

    #[test]
    fn gate_result_round_trips_as_json() {
        let r = judge(&error_gate(), &window(cohort(2000, 2), cohort(20, 20)));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"verdict\":\"fail\""), "{text}");
        let back: GateResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn odd_parameters_stay_finite() {
        let w = window(cohort(2000, 2), cohort(100, 3));
        for check in [
            GateCheck::ErrorRate {
                alpha: f64::NAN,
                min_effect: f64::NAN,
                min_samples: 0,
            },
            GateCheck::ErrorRate {
                alpha: 0.0,
                min_effect: -1.0,
                min_samples: 0,
            },
            GateCheck::ErrorRate {
                alpha: 2.0,
                min_effect: 5.0,
                min_samples: 0,
            },
            GateCheck::LatencyP99 {
                max_ratio: f64::INFINITY,
            },
            GateCheck::TrafficFloor {
                min_ratio: f64::NAN,
            },
        ] {
            let r = judge(&gate(check), &w);
            assert!(all_finite(&r.evidence));
            assert!(r.threshold.is_finite());
            assert!(r.value.is_none_or(f64::is_finite));
        }
    }

    fn arb_cohort() -> impl Strategy<Value = CohortWindow> {
        (
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(any::<u64>(), 0..20),
        )
            .prop_map(|(requests, errors, latency_ms)| CohortWindow {
                requests,
                errors,
                denied: 0,
                latency_ms,
            })
    }

    fn arb_small_cohort() -> impl Strategy<Value = CohortWindow> {
        (
            0u64..100_000,
            0u64..1000,
            prop::collection::vec(0u64..10_000, 0..16),
        )
            .prop_map(|(requests, errors, latency_ms)| CohortWindow {
                requests,
                errors: errors.min(requests),
                denied: 0,
                latency_ms,
            })
    }

    fn arb_shadow() -> impl Strategy<Value = ShadowWindow> {
        (any::<[u64; 5]>(), any::<f64>()).prop_map(|(c, declared_percent)| ShadowWindow {
            counts: ImpactCounts {
                compared: c[0],
                allowed_to_denied: c[1],
                denied_to_allowed: c[2],
                route_changed: c[3],
                status_changed: c[4],
            },
            declared_percent,
        })
    }

    fn arb_check() -> impl Strategy<Value = GateCheck> {
        prop_oneof![
            any::<f64>()
                .prop_map(|max_excess_percent| GateCheck::ShadowDiff { max_excess_percent }),
            (any::<f64>(), any::<f64>(), any::<u64>()).prop_map(
                |(alpha, min_effect, min_samples)| {
                    GateCheck::ErrorRate {
                        alpha,
                        min_effect,
                        min_samples,
                    }
                }
            ),
            (0.0001f64..0.5, 0.0001f64..1.0, 0u64..1000).prop_map(
                |(alpha, min_effect, min_samples)| GateCheck::ErrorRate {
                    alpha,
                    min_effect,
                    min_samples
                }
            ),
            (0.0001f64..0.5, 0.0001f64..1.0, 0u64..1000).prop_map(
                |(alpha, min_effect, min_samples)| GateCheck::DenyRate {
                    alpha,
                    min_effect,
                    min_samples
                }
            ),
            any::<f64>().prop_map(|max_ratio| GateCheck::LatencyP99 { max_ratio }),
            any::<f64>().prop_map(|min_ratio| GateCheck::TrafficFloor { min_ratio }),
            Just(GateCheck::NoNack),
            Just(GateCheck::NoLocalGuardTrip),
        ]
    }

    proptest! {
        /// Without the deadline, a candidate with no errors never fails the error gate: its
        /// LLR is n ln((1-p1)/(1-p0)) <= 0 < A.
        #[test]
        fn prop_error_gate_never_fails_without_candidate_errors(
            baseline in arb_small_cohort(),
            n in 0u64..1_000_000,
            alpha in 0.0001f64..0.5,
            min_effect in 0.0001f64..1.0,
            min_samples in 0u64..2000,
            soak in any::<bool>(),
        ) {
            let g = Gate {
                deadline_secs: 600,
                check: GateCheck::ErrorRate { alpha, min_effect, min_samples },
            };
            let mut w = window(baseline, cohort(n, 0));
            w.soak_reached = soak;
            let r = judge(&g, &w);
            prop_assert_ne!(r.verdict, Verdict::Fail, "{}", r.message);
        }

        /// More candidate errors over the same requests never turn a Fail into a Pass.
        #[test]
        fn prop_error_gate_monotonic_in_errors(
            baseline in arb_small_cohort(),
            n in 0u64..100_000,
            x1 in 0u64..100_000,
            extra in 0u64..100_000,
            alpha in 0.0001f64..0.5,
            min_effect in 0.0001f64..1.0,
            min_samples in 0u64..2000,
            soak in any::<bool>(),
            elapsed in 0.0f64..1200.0,
        ) {
            let g = Gate {
                deadline_secs: 600,
                check: GateCheck::ErrorRate { alpha, min_effect, min_samples },
            };
            let x1 = x1.min(n);
            let x2 = (x1 + extra).min(n);
            let mut w = window(baseline, cohort(n, x1));
            w.soak_reached = soak;
            w.elapsed_secs = elapsed;
            let r1 = judge(&g, &w);
            w.candidate.errors = x2;
            let r2 = judge(&g, &w);
            if r1.verdict == Verdict::Fail {
                prop_assert_eq!(r2.verdict, Verdict::Fail, "{} then {}", r1.message, r2.message);
            }
            if r2.verdict == Verdict::Pass {
                prop_assert_eq!(r1.verdict, Verdict::Pass);
            }
        }

        /// `judge` never panics and its numbers are always finite.
        #[test]
        fn prop_judge_total_and_finite(
            baseline in prop_oneof![arb_cohort(), arb_small_cohort()],
            candidate in prop_oneof![arb_cohort(), arb_small_cohort()],
            check in arb_check(),
            deadline_secs in any::<u64>(),
            expected_share in any::<f64>(),
            elapsed_secs in any::<f64>(),
            soak_reached in any::<bool>(),
            nacks in prop::collection::vec(".{0,12}", 0..3),
            guard_trips in prop::collection::vec(".{0,12}", 0..3),
            shadow in prop::option::of(arb_shadow()),
            reference in prop::option::of(arb_cohort()),
            declares_impact in any::<bool>(),
        ) {
            let w = StageWindow {
                baseline,
                candidate,
                expected_share,
                elapsed_secs,
                soak_reached,
                nacks,
                guard_trips,
                reference,
                shadow,
                declares_impact,
            };
            let r = judge(&Gate { deadline_secs, check }, &w);
            prop_assert!(all_finite(&r.evidence), "{}", r.evidence);
            prop_assert!(r.threshold.is_finite());
            prop_assert!(r.value.is_none_or(f64::is_finite));
            prop_assert!(serde_json::to_string(&r).is_ok());
            let (_, results) = judge_all(&[Gate { deadline_secs, check: GateCheck::NoNack }], &w);
            prop_assert_eq!(results.len(), 1);
        }
    }
}
