//! The rules `rampart up`'s control plane runs with: the defaults, except for the demo's `dev`
//! environment.

use anyhow::Result;
use rampart_control::plan::{RolloutConfig, RolloutRules};
use rampart_control::rules::{EnvRules, RiskPolicy, RulesConfig};
use rampart_model::change::StageDef;
use rampart_model::{Environment, Risk, StageScope};
use strum::VariantArray;

/// The change rules: the demo's `dev` environment needs no approvals, so the example fleet can
/// be loaded through the normal change path. (Rules are configurable per environment; the prod
/// floors do not apply to dev.)
pub(super) fn demo_rules() -> Result<RulesConfig> {
    let open = || RiskPolicy::new(0, None, false);
    let dev = EnvRules::new([open()?, open()?, open()?, open()?], vec![])?;
    Ok(RulesConfig::new(
        dev,
        EnvRules::defaults(Environment::Staging),
        EnvRules::defaults(Environment::Prod),
    )?)
}

/// The rollout rules: the demo's `dev` environment rolls every change out in two short stages
/// (25%, then 100%, 5 s soak each) fed by the demo's own traffic, so a change is seen
/// progressing in seconds.
pub(super) fn demo_rollouts() -> RolloutConfig {
    // The gates of a live stage, as the default plans set them.
    let gates = RolloutRules::default().plan(Risk::Low, false, None).stages[0]
        .gates
        .clone();
    let stages = || -> Vec<StageDef> {
        [25.0, 100.0]
            .into_iter()
            .map(|percent| StageDef {
                name: format!("{percent}%"),
                scope: StageScope {
                    cells: vec![],
                    gateways: vec![],
                    percent,
                },
                shadow: false,
                min_soak_secs: 5,
                min_samples: 20,
                gates: gates.clone(),
            })
            .collect()
    };
    let mut dev = RolloutRules {
        min_samples: 20,
        ..RolloutRules::default()
    };
    for risk in Risk::VARIANTS {
        dev.plans.insert(*risk, stages());
    }
    dev.impact.min_samples = 20;
    RolloutConfig {
        dev,
        ..RolloutConfig::default()
    }
}
