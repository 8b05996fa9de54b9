use super::*;
use proptest::prelude::*;
use rampart_model::wire::{CohortCounters, ImpactCounts, LATENCY_BOUNDS_MS};

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

/// `g` on `w` fails for want of data by its deadline.
fn fails_at_deadline(g: &Gate, w: &StageWindow) -> GateResult {
    let r = judge(g, w);
    assert_eq!(r.verdict, GateVerdict::Fail);
    assert!(
        r.message.contains("no data by the deadline"),
        "{}",
        r.message
    );
    r
}

fn all_finite(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        Value::Array(a) => a.iter().all(all_finite),
        Value::Object(o) => o.values().all(all_finite),
        _ => true,
    }
}

/// A cohort window with no denials.
fn cw(requests: u64, errors: u64, latency_ms: Vec<u64>) -> CohortWindow {
    CohortWindow {
        requests,
        errors,
        denied: 0,
        latency_ms,
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
fn delta_subtracts_and_sums_errors_or_takes_now_after_a_reset() {
    // (start, now, the window): errors sum upstream and gateway errors; a counter that went
    // back (a restarted gateway) makes the whole of `now` the window.
    let cases = [
        (
            None,
            counters(150, 5, 2, vec![70, 80]),
            cw(150, 7, vec![70, 80]),
        ),
        (
            Some(counters(100, 2, 1, vec![50, 50])),
            counters(150, 5, 2, vec![70, 80]),
            cw(50, 4, vec![20, 30]),
        ),
        (
            Some(counters(1000, 10, 0, vec![500, 500])),
            counters(30, 1, 1, vec![10, 20]),
            cw(30, 2, vec![10, 20]),
        ),
    ];
    for (start, now, want) in cases {
        assert_eq!(CohortWindow::delta(start.as_ref(), &now), want);
    }
    let start = counters(1000, 10, 0, vec![500, 500]);
    // Requests grew but one error counter went back: still a reset.
    let now = counters(1200, 3, 0, vec![600, 600]);
    assert_eq!(CohortWindow::delta(Some(&start), &now).requests, 1200);
    // A histogram bucket went back.
    let now = counters(1200, 10, 0, vec![400, 800]);
    assert_eq!(CohortWindow::delta(Some(&start), &now).requests, 1200);
}

#[test]
fn add_sums_histograms_of_different_lengths() {
    let mut a = cw(3, 1, vec![1, 2]);
    a.add(&cw(4, 2, vec![1, 1, 2]));
    assert_eq!(a, cw(7, 3, vec![2, 3, 2]));
    a.add(&cw(1, 0, vec![5]));
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
    let zeros = cw(10, 0, vec![0; 15]);
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
    assert_eq!(r.verdict, GateVerdict::Pending, "{}", r.message);
    let r = judge(&g, &window(base, cohort(20, 20)));
    assert_eq!(r.verdict, GateVerdict::Fail, "{}", r.message);
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
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
    assert!(r.value.unwrap() < -40.0);
    // Also passes before soak: it crossed the lower boundary.
    w.soak_reached = false;
    assert_eq!(judge(&g, &w).verdict, GateVerdict::Pass);
}

#[test]
fn error_rate_undecided_is_pending_then_truncated_at_soak() {
    let g = error_gate();
    // 1 error in 20: LLR = ln 51 + 19 ln(0.949/0.999) = 2.96, between B and A.
    let mut w = window(cohort(2000, 2), cohort(20, 1));
    let r = judge(&g, &w);
    assert_eq!(r.verdict, GateVerdict::Pending, "{}", r.message);
    assert!(r.value.unwrap() > 2.9 && r.value.unwrap() < 3.0);
    w.soak_reached = true;
    let r = judge(&g, &w);
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
    assert!(r.message.contains("truncated"), "{}", r.message);
}

#[test]
fn error_rate_pending_below_min_samples_even_at_soak() {
    let mut w = window(cohort(2000, 2), cohort(19, 0));
    w.soak_reached = true;
    let r = judge(&error_gate(), &w);
    assert_eq!(r.verdict, GateVerdict::Pending);
    assert_eq!(r.value, None);
}

#[test]
fn error_rate_empty_baseline_floors_p0_and_says_so() {
    let r = judge(&error_gate(), &window(cohort(0, 0), cohort(100, 0)));
    assert_eq!(r.evidence["baseline_empty"], true);
    assert!((r.evidence["p0"].as_f64().unwrap() - P0_MIN).abs() < 1e-15);
    assert!(r.message.contains("no baseline data"), "{}", r.message);
    // 100 successes: 100 * -0.0513 = -5.1 <= B.
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
}

#[test]
fn error_rate_zero_error_baseline_one_error_not_decisive() {
    // With p0 floored to 0.1%, one error in 20 is undecided, not a fail.
    let r = judge(&error_gate(), &window(cohort(5000, 0), cohort(20, 1)));
    assert_eq!(r.verdict, GateVerdict::Pending, "{}", r.message);
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
    assert_eq!(r.verdict, GateVerdict::Fail, "{}", r.message);
    assert!(
        r.message.contains("deny rate 100.0% (20/20)"),
        "{}",
        r.message
    );
    // The same 403s from a change that declares them: left to the impact test.
    w.declares_impact = true;
    let r = judge(&g, &w);
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
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
    assert_ne!(e.verdict, GateVerdict::Fail);
}

#[test]
fn latency_gate_pass_fail_pending() {
    let g = gate(GateCheck::LatencyP99 { max_ratio: 1.5 });
    // Too few candidate requests.
    let r = judge(&g, &window(latency_cohort(100, 7), latency_cohort(49, 9)));
    assert_eq!(r.verdict, GateVerdict::Pending, "{}", r.message);
    assert_eq!(r.value, None);
    // 199 ms vs 995 ms (bucket (500, 1000]): ratio 5, 796 ms slower.
    let r = judge(&g, &window(latency_cohort(100, 7), latency_cohort(50, 9)));
    assert_eq!(r.verdict, GateVerdict::Fail, "{}", r.message);
    assert_eq!(r.gate, "latency_p99");
    assert!((r.value.unwrap() - 995.0 / 199.0).abs() < 1e-9);
    assert_eq!(r.threshold, 1.5);
    assert!(all_finite(&r.evidence));
    // Same buckets: ratio 1.
    let r = judge(&g, &window(latency_cohort(100, 7), latency_cohort(50, 7)));
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
}

#[test]
fn empty_baseline_falls_back_on_reference() {
    // A 100% stage: the baseline window is empty, the reference has a 2% error rate.
    let mut w = window(cohort(0, 0), cohort(1000, 20));
    w.soak_reached = true;
    let r = judge(&error_gate(), &w);
    // Against the floor (0.1%), 2% fails.
    assert_eq!(r.verdict, GateVerdict::Fail, "{}", r.message);
    assert_eq!(r.evidence["p0_source"], "floor");
    w.reference = Some(cohort(100_000, 2000));
    let r = judge(&error_gate(), &w);
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
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
    assert_eq!(judge(&g, &w).verdict, GateVerdict::Pending);
    w.reference = Some(latency_cohort(1000, 7));
    let r = judge(&g, &w);
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
    assert_eq!(r.evidence["p99_source"], "baseline+reference");
}

#[test]
fn latency_gate_tolerance_spares_small_absolute_moves() {
    let g = gate(GateCheck::LatencyP99 { max_ratio: 1.5 });
    // 0.99 ms vs 4.97 ms: ratio 5 but only 4 ms slower.
    let r = judge(&g, &window(latency_cohort(100, 0), latency_cohort(100, 2)));
    assert!(r.value.unwrap() > 1.5);
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
}

#[test]
fn traffic_floor_pass_fail_pending() {
    let g = gate(GateCheck::TrafficFloor { min_ratio: 0.5 });
    // 10% of 150 = 15 expected < 20: pending.
    let r = judge(&g, &window(cohort(140, 0), cohort(10, 0)));
    assert_eq!(r.verdict, GateVerdict::Pending, "{}", r.message);
    // 10% of 1000 = 100 expected, 90 served: ratio 0.9.
    let r = judge(&g, &window(cohort(910, 0), cohort(90, 0)));
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
    assert!((r.value.unwrap() - 0.9).abs() < 1e-12);
    assert_eq!(r.gate, "traffic_floor");
    // 100 expected, 10 served: collapsed.
    let r = judge(&g, &window(cohort(990, 0), cohort(10, 0)));
    assert_eq!(r.verdict, GateVerdict::Fail, "{}", r.message);
    assert!((r.value.unwrap() - 0.1).abs() < 1e-12);
    assert!(all_finite(&r.evidence));
}

#[test]
fn traffic_floor_no_traffic_stays_pending_and_fails_at_deadline() {
    let g = gate(GateCheck::TrafficFloor { min_ratio: 0.5 });
    let mut w = window(cohort(0, 0), cohort(0, 0));
    assert_eq!(judge(&g, &w).verdict, GateVerdict::Pending);
    w.elapsed_secs = 600.0;
    fails_at_deadline(&g, &w);
}

#[test]
fn nack_and_guard_gates() {
    let nack = gate(GateCheck::NoNack);
    let guard = gate(GateCheck::NoLocalGuardTrip);
    let mut w = window(cohort(0, 0), cohort(0, 0));
    let r = judge(&nack, &w);
    assert_eq!(
        (r.verdict, r.value, r.threshold),
        (GateVerdict::Pass, Some(0.0), 0.0)
    );
    assert_eq!(judge(&guard, &w).verdict, GateVerdict::Pass);
    w.nacks = vec!["gw-1: unknown field".into(), "gw-2: too many routes".into()];
    let r = judge(&nack, &w);
    assert_eq!(r.verdict, GateVerdict::Fail);
    assert_eq!(r.value, Some(2.0));
    assert!(r.message.contains("gw-1: unknown field"), "{}", r.message);
    assert!(r.message.contains("gw-2: too many routes"), "{}", r.message);
    assert_eq!(judge(&guard, &w).verdict, GateVerdict::Pass);
    w.guard_trips = vec!["gw-3".into()];
    let r = judge(&guard, &w);
    assert_eq!(
        (r.gate.as_str(), r.verdict),
        ("no_local_guard_trip", GateVerdict::Fail)
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
        ("shadow_diff", GateVerdict::Pending)
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
    assert_eq!(judge(&g, &w).verdict, GateVerdict::Pending);
    // 4% changed > 2% declared + 1: fails without waiting for the soak.
    w.shadow = Some(shadow(1000, 40));
    let r = judge(&g, &w);
    assert_eq!(r.verdict, GateVerdict::Fail, "{}", r.message);
    assert_eq!((r.value, r.threshold), (Some(4.0), 3.0));
    assert!(all_finite(&r.evidence));
    // 3% changed: within; Pending until the soak, then Pass.
    w.shadow = Some(shadow(1000, 30));
    assert_eq!(judge(&g, &w).verdict, GateVerdict::Pending);
    w.soak_reached = true;
    let r = judge(&g, &w);
    assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.message);
    // A NaN threshold fails.
    w.shadow = Some(ShadowWindow {
        declared_percent: f64::NAN,
        ..shadow(1000, 0)
    });
    assert_eq!(judge(&g, &w).verdict, GateVerdict::Fail);
}

#[test]
fn pending_at_deadline_is_a_fail_never_a_pass() {
    let g = Gate {
        deadline_secs: 120,
        ..error_gate()
    };
    let mut w = window(cohort(2000, 2), cohort(5, 0));
    w.elapsed_secs = 119.9;
    assert_eq!(judge(&g, &w).verdict, GateVerdict::Pending);
    w.elapsed_secs = 120.0;
    let r = fails_at_deadline(&g, &w);
    assert_eq!(r.evidence["deadline_passed"], true);
    // A decided gate keeps its verdict after the deadline.
    w.elapsed_secs = 1000.0;
    assert_eq!(
        judge(&gate(GateCheck::NoNack), &w).verdict,
        GateVerdict::Pass
    );
}

#[test]
fn judge_all_combines_verdicts() {
    let gates = vec![error_gate(), gate(GateCheck::NoNack)];
    let mut w = window(cohort(2000, 2), cohort(5, 0));
    let (v, results) = judge_all(&gates, &w);
    assert_eq!((v, results.len()), (GateVerdict::Pending, 2));
    w.candidate = cohort(1000, 0);
    assert_eq!(judge_all(&gates, &w).0, GateVerdict::Pass);
    w.nacks = vec!["gw-1: bad".into()];
    assert_eq!(judge_all(&gates, &w).0, GateVerdict::Fail);
    assert_eq!(judge_all(&[], &w).0, GateVerdict::Pass);
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
        any::<f64>().prop_map(|max_excess_percent| GateCheck::ShadowDiff { max_excess_percent }),
        (any::<f64>(), any::<f64>(), any::<u64>()).prop_map(|(alpha, min_effect, min_samples)| {
            GateCheck::ErrorRate {
                alpha,
                min_effect,
                min_samples,
            }
        }),
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
        prop_assert_ne!(r.verdict, GateVerdict::Fail, "{}", r.message);
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
        if r1.verdict == GateVerdict::Fail {
            prop_assert_eq!(r2.verdict, GateVerdict::Fail, "{} then {}", r1.message, r2.message);
        }
        if r2.verdict == GateVerdict::Pass {
            prop_assert_eq!(r1.verdict, GateVerdict::Pass);
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
