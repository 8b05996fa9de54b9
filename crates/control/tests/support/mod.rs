//! Running one test case on each backend: SQLite always, PostgreSQL when
//! `RAMPART_TEST_DATABASE_URL` is set (in a fresh schema, dropped afterwards). Without the
//! variable the PostgreSQL cases print a message and pass; with it set, an unreachable
//! database fails them.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../store/tests/support/mod.rs"]
mod backends;
// Not every suite runs its cases on both backends.
#[allow(unused_imports)]
pub use backends::{example_fleet, run_postgres, run_sqlite};

/// Rollout rules for tests that exercise the change path itself, not the impact test: the
/// defaults, with the impact test off (these databases have no traffic samples).
pub fn without_impact_test() -> rampart_control::plan::RolloutConfig {
    let mut cfg = rampart_control::plan::RolloutConfig::default();
    for rules in [&mut cfg.dev, &mut cfg.staging, &mut cfg.prod] {
        rules.impact.enabled = false;
    }
    cfg
}

/// Rollout rules whose every plan is one stage at 100% that passes as soon as no gateway has
/// refused it (no soak, no samples), for tests of distribution rather than of gates; and no
/// impact test.
pub fn instant_rollouts() -> rampart_control::plan::RolloutConfig {
    let stage = serde_json::json!([{
        "name": "100%", "scope": { "percent": 100.0 }, "min_soak_secs": 0, "min_samples": 0,
        "gates": [{ "deadline_secs": 30, "check": "no_nack" }],
    }]);
    let rules: rampart_control::plan::RolloutRules = serde_json::from_value(serde_json::json!({
        "impact": { "enabled": false },
        "plans": { "low": stage, "medium": stage, "high": stage, "critical": stage },
    }))
    .expect("instant rollout rules");
    rampart_control::plan::RolloutConfig {
        dev: rules.clone(),
        staging: rules.clone(),
        prod: rules,
    }
}

/// The example fleet's `confluence-app` upstream with `endpoints` set to `[endpoint]`, as JSON:
/// a medium-risk edit.
pub fn confluence_with_endpoint(endpoint: &str) -> serde_json::Value {
    let up = example_fleet()
        .upstreams
        .into_iter()
        .find(|u| u.name == "confluence-app")
        .expect("the example fleet has confluence-app");
    let mut v = serde_json::to_value(up).expect("an upstream serializes");
    v["endpoints"] = serde_json::json!([endpoint]);
    v
}
