//! Health gates of one rollout stage: the candidate cohort judged against the baseline cohort,
//! over the same window, on the same gateways.
//!
//! This module is pure: no I/O, no async, no clock reads. The caller collects the gateways'
//! cumulative [`CohortCounters`](rampart_model::wire::CohortCounters), turns them into windows with [`CohortWindow::delta`] and
//! [`CohortWindow::add`], fills a [`StageWindow`], and asks [`judge`] or [`judge_all`] for a
//! [`GateVerdict`] per gate. Each [`GateResult`] carries its evidence (finite numbers only) and one
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

pub use rampart_api::{GateResult, GateVerdict};
use rampart_model::change::{Gate, GateCheck};
use serde_json::{Map, Value, json};

mod window;

pub use window::{CohortWindow, ShadowWindow, StageWindow};

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
            GateVerdict::Pass,
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
        if verdict == GateVerdict::Pending && w.elapsed_secs >= gate.deadline_secs as f64 {
            evidence.insert("deadline_passed".into(), json!(true));
            let message = format!(
                "no data by the deadline ({}s, stage at {:.0}s): {message}",
                gate.deadline_secs,
                finite_or(w.elapsed_secs, 0.0)
            );
            (GateVerdict::Fail, message)
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
pub fn judge_all(gates: &[Gate], w: &StageWindow) -> (GateVerdict, Vec<GateResult>) {
    let results: Vec<GateResult> = gates.iter().map(|g| judge(g, w)).collect();
    let verdict = if results.iter().any(|r| r.verdict == GateVerdict::Fail) {
        GateVerdict::Fail
    } else if results.iter().all(|r| r.verdict == GateVerdict::Pass) {
        GateVerdict::Pass
    } else {
        GateVerdict::Pending
    };
    (verdict, results)
}

/// What one gate check returns before the deadline rule: name, verdict, value, threshold,
/// message.
type Judged = (&'static str, GateVerdict, Option<f64>, f64, String);

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
        return (name, GateVerdict::Pending, None, sprt.upper, message);
    }
    let (verdict, message) = if llr >= sprt.upper {
        (
            GateVerdict::Fail,
            format!("{head}: SPRT LLR {llr:.1} >= {:.2}", sprt.upper),
        )
    } else if llr <= sprt.lower {
        (
            GateVerdict::Pass,
            format!("{head}: SPRT LLR {llr:.1} <= {:.2}", sprt.lower),
        )
    } else if w.soak_reached {
        (
            GateVerdict::Pass,
            format!(
                "{head}: SPRT LLR {llr:.1} within ({:.2}, {:.2}) at soak: accepted (truncated test)",
                sprt.lower, sprt.upper
            ),
        )
    } else {
        (
            GateVerdict::Pending,
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
        return (NAME, GateVerdict::Pending, None, max_ratio, message);
    };
    // b > 0: the estimate interpolates strictly above the first bucket's lower bound 0.
    let ratio = c / b;
    ev.insert("ratio".into(), num(ratio));
    // A NaN max_ratio compares as "exceeded", so a broken gate cannot pass silently.
    let fails = (max_ratio.is_nan() || c > max_ratio * b) && c - b > LATENCY_TOLERANCE_MS;
    let head = format!("candidate p99 {c:.1} ms vs {source} {b:.1} ms (ratio {ratio:.2})");
    let (verdict, message) = if fails {
        (
            GateVerdict::Fail,
            format!(
                "{head}: above {max_ratio:.2}x and more than {LATENCY_TOLERANCE_MS:.0} ms slower"
            ),
        )
    } else {
        (
            GateVerdict::Pass,
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
        return (NAME, GateVerdict::Pending, None, min_ratio, message);
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
        (GateVerdict::Pass, format!("{head} >= {min_ratio:.2}"))
    } else {
        (GateVerdict::Fail, format!("{head} < {min_ratio:.2}"))
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
        return (
            NAME,
            GateVerdict::Pending,
            None,
            max_excess_percent,
            message,
        );
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
            return (NAME, GateVerdict::Pending, None, threshold, message);
        }
    };
    // A threshold that is not a number fails.
    let (verdict, message) = if threshold.is_nan() || changed_percent > threshold {
        (GateVerdict::Fail, format!("{head}: above the threshold"))
    } else if w.soak_reached {
        (GateVerdict::Pass, format!("{head}: within the threshold"))
    } else {
        (
            GateVerdict::Pending,
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
        (name, GateVerdict::Pass, Some(0.0), 0.0, message)
    } else {
        let message = format!(
            "{} gateway(s) {what}: {}",
            gateways.len(),
            gateways.join("; ")
        );
        (name, GateVerdict::Fail, Some(count), 0.0, message)
    }
}

#[cfg(test)]
mod tests;
