//! Fuzz what gateways send the control plane and what rollouts are made of: the JSON of a
//! `GatewayReport` (cohort counters, guard trips, shadow comparisons), a `SampleBatch` (the
//! impact test's input), a `ConfigAck`, and a `RolloutPlan`.
//!
//! Invariants checked (a failure is a real bug):
//! - nothing panics on any input;
//! - a report, a batch and a plan that parse serialize back to JSON that parses to the same
//!   value;
//! - every sample of a batch replays through the example fleet and through a candidate with
//!   another flag value, and `diff::classify` compares the two decisions (the impact test's
//!   and the shadow stage's comparison), without panicking.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_eval::{Cohort, Evaluator, RequestMeta};
use rampart_model::change::RolloutPlan;
use rampart_model::load::{from_json, from_yaml};
use rampart_model::wire::{ConfigAck, GatewayReport, SampleBatch};
use rampart_model::{Config, Snapshot};

/// The example fleet, and the same fleet with a flag that changes outcomes.
fn evaluators() -> &'static (Evaluator, Evaluator) {
    static E: OnceLock<(Evaluator, Evaluator)> = OnceLock::new();
    E.get_or_init(|| {
        let cfg: Config = from_yaml(include_str!("../../examples/fleet.yaml")).unwrap();
        let mut cand = cfg.clone();
        if let Some(f) = cand.flags.iter_mut().find(|f| f.name == "jira-maintenance") {
            f.default = serde_json::json!(true);
        }
        (
            Evaluator::compile(&Snapshot::new(cfg, vec![])).unwrap(),
            Evaluator::compile(&Snapshot::new(cand, vec![])).unwrap(),
        )
    })
}

fn round_trip<T>(v: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(v).expect("serializes");
    let back: T = from_json(&text).expect("what we write, we read");
    assert_eq!(&back, v);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = from_json::<GatewayReport>(text) {
        round_trip(&r);
    }
    if let Ok(a) = from_json::<ConfigAck>(text) {
        round_trip(&a);
    }
    if let Ok(p) = from_json::<RolloutPlan>(text) {
        round_trip(&p);
    }
    if let Ok(batch) = from_json::<SampleBatch>(text) {
        round_trip(&batch);
        let (base, cand) = evaluators();
        for s in &batch.samples {
            let meta = RequestMeta {
                method: &s.method,
                host: &s.host,
                path: &s.path,
                client_ip: s.client_ip,
                headers: &s.headers,
                tenant: s.tenant.as_deref(),
                now_ms: s.at_ms,
                attributes: &[],
                gateway: &batch.gateway,
            };
            let a = base.evaluate(&meta, Cohort::Baseline);
            let b = cand.evaluate(&meta, Cohort::Baseline);
            let _ = rampart_eval::diff::classify(&a, &b);
        }
    }
});
