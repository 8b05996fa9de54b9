use rampart_api::{RolloutState, RolloutView};
use rampart_model::snapshot::StageScope;
use rampart_model::wire::CohortWindow;
use serde_json::{Value, json};
use strum::VariantArray;

use super::reading::Reading;
use super::show::{list_line, scope_text, show_lines, time_text};
use super::watch::{Watcher, final_lines, plain_line};
use crate::output::num;

/// A rollout as `GET /v1/rollouts/{id}` answers it.
fn fixture() -> Value {
    json!({
        "id": "rol_1", "change_id": "chg_1", "env": "prod", "risk": "high",
        "state": "running", "stage_index": 0,
        "stages": [
            {"name": "1% of cell a", "scope": {"cells": ["a"], "percent": 1.0},
             "shadow": false, "min_soak_secs": 30, "min_samples": 200,
             "gates": [
                {"deadline_secs": 120, "check": {"error_rate": {"alpha": 0.01, "min_effect": 0.05, "min_samples": 20}}},
                {"deadline_secs": 120, "check": "no_nack"}]},
            {"name": "all", "scope": {"percent": 100.0},
             "shadow": true, "min_soak_secs": 60, "min_samples": 1000, "gates": []}
        ],
        "stage_started_ms": 1_700_000_000_000_u64, "paused_at_ms": null, "paused_total_ms": 0,
        "baseline_version": 1, "candidate_version": 2, "soaked_secs": 12.5,
        "baseline_hash": "ab12".repeat(16), "candidate_hash": "cd34".repeat(16),
        "rev": 3, "created_ms": 1, "updated_ms": 2, "finished_ms": null, "reason": null,
        "last_eval": {"at_ms": 1, "stage": "1% of cell a", "elapsed_secs": 12.5, "min_soak_secs": 30,
            "samples": 120, "min_samples": 200, "verdict": "pending", "gateways_in_scope": ["gw-1"],
            "window": {"baseline": CohortWindow::default(), "candidate": CohortWindow::default()},
            "gates": [{"gate": "error_rate", "verdict": "pending", "value": 1.2, "threshold": 4.55,
                       "evidence": {}, "message": "candidate error rate 0.0% (0/120)"}]},
        "decisions": [{"at_ms": 1_700_000_000_000_u64, "stage_index": 0, "stage": "1% of cell a",
            "action": "started", "actor": "engine", "evidence": {"baseline": {"errors": 0, "requests": 10}, "note": "go"}}]
    })
}

fn reading(v: &Value) -> Reading {
    let view: RolloutView = serde_json::from_value(v.clone()).expect("a rollout view");
    Reading::from(view)
}

#[test]
fn list_line_names_stage_and_candidate() {
    assert_eq!(
        list_line(&reading(&fixture())),
        "rol_1  chg_1  running     stage 1/2 1% of cell a  cd34cd34cd34"
    );
    let mut v = fixture();
    v["state"] = json!("rolled_back");
    v["reason"] = json!("error rate up");
    v["stage_index"] = json!(1);
    let line = list_line(&reading(&v));
    assert!(
        line.ends_with("stage 2/2 all  cd34cd34cd34  error rate up"),
        "{line}"
    );
}

#[test]
fn show_lines_have_stages_eval_and_decisions() {
    let lines = show_lines(&reading(&fixture()));
    let text = lines.join("\n");
    assert_eq!(
        lines[0],
        "rollout rol_1: running (change chg_1, prod, risk high)"
    );
    assert!(
        text.contains(
            "> 1. 1% of cell a  cells=a gateways=* 1%    shadow=no  soak 30s  samples 200  gates error_rate, no_nack"
        ),
        "{text}"
    );
    assert!(
        text.contains("  2. all           cells=* gateways=* 100%  shadow=yes"),
        "{text}"
    );
    assert!(text.contains("last evaluation: pending (stage 1% of cell a, 12.5s, 120/200 samples)"));
    assert!(text.contains("  error_rate  pending  1.2 / 4.55  candidate error rate 0.0% (0/120)"));
    assert!(
        text.contains(
            "  2023-11-14 22:13:20Z  stage 1 1% of cell a  started  by engine  baseline.errors=0 baseline.requests=10 note=go"
        ),
        "{text}"
    );
}

#[test]
fn a_rollout_without_stages_evaluation_or_decisions_is_shown() {
    let mut v = fixture();
    v["stages"] = json!([]);
    v["last_eval"] = Value::Null;
    v["decisions"] = json!([]);
    let r = reading(&v);
    assert_eq!(r.eval, None);
    assert_eq!(
        list_line(&r),
        "rol_1  chg_1  running     stage -  cd34cd34cd34"
    );
    assert_eq!(
        show_lines(&r),
        [
            "rollout rol_1: running (change chg_1, prod, risk high)",
            "  baseline ab12ab12ab12  candidate cd34cd34cd34",
            "  stage -, soaked 12.5s",
        ]
    );
    assert_eq!(plain_line(&r), "rollout rol_1 running  stage -");
    // A gate without a value or threshold yet.
    let mut v = fixture();
    v["last_eval"]["gates"] = json!([{"gate": "x", "verdict": "pending", "value": null,
        "threshold": 0.0, "evidence": {}, "message": ""}]);
    let r = reading(&v);
    assert!(show_lines(&r).join("\n").contains("  x  pending  - / 0"));
    assert!(plain_line(&r).ends_with("  x=pending"));
    // A last evaluation that is not one is an error, not a guess.
    let mut v = fixture();
    v["last_eval"] = json!({"verdict": 3});
    assert!(serde_json::from_value::<RolloutView>(v).is_err());
}

#[test]
fn terminal_states() {
    let mut v = fixture();
    for s in RolloutState::VARIANTS {
        v["state"] = serde_json::to_value(s).unwrap();
        let terminal = !matches!(s, RolloutState::Running | RolloutState::Paused);
        assert_eq!(reading(&v).is_terminal(), terminal, "{s}");
    }
}

#[test]
fn scope_formatting() {
    let s = |v: Value| scope_text(&serde_json::from_value::<StageScope>(v).unwrap());
    assert_eq!(
        s(json!({"cells": ["a", "b"], "gateways": [], "percent": 1.0})),
        "cells=a,b gateways=* 1%"
    );
    assert_eq!(
        s(json!({"cells": [], "gateways": ["gw-1"], "percent": 12.5})),
        "cells=* gateways=gw-1 12.5%"
    );
    assert_eq!(s(json!({"percent": 100.0})), "cells=* gateways=* 100%");
}

#[test]
fn watch_prints_only_on_change() {
    let mut w = Watcher::default();
    let mut v = fixture();
    let first = w
        .observe(&reading(&v))
        .expect("the first reading is printed");
    assert_eq!(
        first,
        "rollout rol_1 running  stage 1/2 1% of cell a  soak 12.5s/30s  samples 120/200  error_rate=pending"
    );
    // More soak and samples only: nothing.
    v["soaked_secs"] = json!(20.0);
    v["last_eval"]["samples"] = json!(150);
    assert_eq!(w.observe(&reading(&v)), None);
    // A gate's verdict changes.
    v["last_eval"]["gates"][0]["verdict"] = json!("pass");
    assert!(w.observe(&reading(&v)).unwrap().contains("error_rate=pass"));
    assert_eq!(w.observe(&reading(&v)), None);
    // The stage changes.
    v["stage_index"] = json!(1);
    assert!(w.observe(&reading(&v)).unwrap().contains("stage 2/2 all"));
    // The state changes.
    v["state"] = json!("paused");
    assert!(w.observe(&reading(&v)).unwrap().contains("rol_1 paused"));
    assert_eq!(w.observe(&reading(&v)), None);
}

#[test]
fn final_lines_report_failure() {
    let mut v = fixture();
    v["state"] = json!("succeeded");
    v["stage_index"] = json!(1);
    let (done, err) = final_lines(&reading(&v));
    assert_eq!(done, "rollout rol_1 succeeded at stage 2/2 all");
    assert_eq!(err, None);
    v["state"] = json!("rolled_back");
    v["reason"] = json!("error_rate failed");
    let (_, err) = final_lines(&reading(&v));
    assert_eq!(
        err.as_deref(),
        Some("rollout rol_1 ended ROLLED_BACK: error_rate failed")
    );
}

#[test]
fn numbers_hashes_and_times() {
    assert_eq!(num(1.0), "1");
    assert_eq!(num(4.55), "4.55");
    assert_eq!(num(1.0 / 3.0), "0.333");
    assert_eq!(num(-0.0001), "0");
    assert_eq!(time_text(0), "1970-01-01 00:00:00Z");
    let r = reading(&fixture());
    assert_eq!(r.view.candidate_hash.short(), "cd34cd34cd34");
}
