//! Rollout plans: the stages a change goes through, from the risk table in `DESIGN.md`,
//! overridable per environment and per object kind.
//!
//! | risk | stages (soak each; changes touching a policy soak longer) |
//! |---|---|
//! | low | 100% (60 s watch) |
//! | medium | 5% → 50% → 100% (120 s) |
//! | high | shadow → 1% of the canary cell → the canary cell → 10% → 50% → 100% (600 s; policies 900 s) |
//! | critical | as high, 1800 s |
//!
//! A change that turns a switch on (a boolean flag's default from false to true: a "kill
//! switch" is still a change) starts with a fast canary, 1% of requests for 30 s, before its
//! risk's default stages.
//!
//! Every duration and threshold comes from [`RolloutRules`], so tests and drills can run the
//! real plan in seconds; the defaults are the real minutes. A stage ends when both its minimum
//! soak time and its minimum sample count are reached with every gate passing (see
//! [`crate::gates`]). `plans` replaces the default stages of a risk level outright.
//!
//! The configuration file of `rampart control --config` holds one [`RolloutRules`] per
//! environment under `rollouts:`:
//!
//! ```yaml
//! rollouts:
//!   prod:
//!     soak_secs: { low: 60, medium: 120, high: 600, critical: 1800 }
//!     policy_soak_secs: { low: 60, medium: 120, high: 900, critical: 1800 }
//!     min_samples: 200
//!     canary_cell: eu-west-1a
//!     impact: { enabled: true, max_excess_percent: 1.0, min_samples: 100 }
//! ```

use std::collections::BTreeMap;

use rampart_model::change::{Gate, GateCheck, RolloutPlan, StageDef};
use rampart_model::snapshot::StageScope;
use rampart_model::{Environment, Risk};
use serde::{Deserialize, Serialize};

/// One value per risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerRisk<T> {
    pub low: T,
    pub medium: T,
    pub high: T,
    pub critical: T,
}

impl<T: Copy> PerRisk<T> {
    pub fn get(&self, risk: Risk) -> T {
        match risk {
            Risk::Low => self.low,
            Risk::Medium => self.medium,
            Risk::High => self.high,
            Risk::Critical => self.critical,
        }
    }
}

/// The error-rate gate's settings; see [`GateCheck::ErrorRate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRateRules {
    pub alpha: f64,
    pub min_effect: f64,
    pub min_samples: u64,
}

impl Default for ErrorRateRules {
    fn default() -> Self {
        ErrorRateRules {
            alpha: 0.01,
            min_effect: 0.05,
            min_samples: 20,
        }
    }
}

/// The impact test's settings; see [`crate::impact`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImpactRules {
    pub enabled: bool,
    /// Blocked when the measured share exceeds the declared one by more than this (points).
    pub max_excess_percent: f64,
    /// Fewer samples than this blocks the change: no data is never a pass.
    pub min_samples: u64,
}

impl Default for ImpactRules {
    fn default() -> Self {
        ImpactRules {
            enabled: true,
            max_excess_percent: 1.0,
            min_samples: 100,
        }
    }
}

/// How rollouts run in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutRules {
    /// Minimum soak per stage, by risk.
    pub soak_secs: PerRisk<u64>,
    /// Minimum soak per stage, by risk, for a change that touches a policy.
    pub policy_soak_secs: PerRisk<u64>,
    /// Minimum candidate requests per stage.
    pub min_samples: u64,
    /// No data by this many seconds into a stage fails its gates; default: twice the soak
    /// plus 60 s.
    pub deadline_secs: Option<u64>,
    /// The cell the high-risk canary stages use; default: the first cell of the fleet by name.
    pub canary_cell: Option<String>,
    pub error_rate: ErrorRateRules,
    /// Candidate p99 over baseline p99 above this fails (with an additive tolerance).
    pub latency_max_ratio: f64,
    /// Candidate request rate below this share of its expected rate fails.
    pub traffic_floor: f64,
    pub impact: ImpactRules,
    /// A shadow stage fails when its measured changed share exceeds the declared one by more.
    pub shadow_max_excess_percent: f64,
    /// Soak of the fast canary (1% of requests) a change that turns a switch on starts with:
    /// a kill switch is still a change.
    pub switch_canary_secs: u64,
    /// Explicit stages by risk, replacing the defaults.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub plans: BTreeMap<Risk, Vec<StageDef>>,
}

impl Default for RolloutRules {
    fn default() -> Self {
        RolloutRules {
            soak_secs: PerRisk {
                low: 60,
                medium: 120,
                high: 600,
                critical: 1800,
            },
            policy_soak_secs: PerRisk {
                low: 60,
                medium: 120,
                high: 900,
                critical: 1800,
            },
            min_samples: 200,
            deadline_secs: None,
            canary_cell: None,
            error_rate: ErrorRateRules::default(),
            latency_max_ratio: 1.5,
            traffic_floor: 0.5,
            impact: ImpactRules::default(),
            shadow_max_excess_percent: 1.0,
            switch_canary_secs: 30,
            plans: BTreeMap::new(),
        }
    }
}

/// [`RolloutRules`] of every environment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    pub dev: RolloutRules,
    pub staging: RolloutRules,
    pub prod: RolloutRules,
}

impl RolloutConfig {
    pub fn for_env(&self, env: Environment) -> &RolloutRules {
        match env {
            Environment::Dev => &self.dev,
            Environment::Staging => &self.staging,
            Environment::Prod => &self.prod,
        }
    }
}

/// Why rollout rules were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PlanError {
    pub path: String,
    pub message: String,
}

impl RolloutRules {
    /// Check the rules; errors name the field.
    pub fn check(&self, path: &str) -> Result<(), PlanError> {
        let err = |field: &str, message: &str| PlanError {
            path: format!("{path}.{field}"),
            message: message.to_owned(),
        };
        let e = &self.error_rate;
        if !(e.alpha > 0.0 && e.alpha < 0.5) {
            return Err(err("error_rate.alpha", "must be in (0, 0.5)"));
        }
        if !(e.min_effect > 0.0 && e.min_effect < 1.0) {
            return Err(err("error_rate.min_effect", "must be in (0, 1)"));
        }
        if !(self.latency_max_ratio >= 1.0 && self.latency_max_ratio.is_finite()) {
            return Err(err("latency_max_ratio", "must be at least 1"));
        }
        if !(self.traffic_floor > 0.0 && self.traffic_floor <= 1.0) {
            return Err(err("traffic_floor", "must be in (0, 1]"));
        }
        for (name, v) in [
            ("impact.max_excess_percent", self.impact.max_excess_percent),
            ("shadow_max_excess_percent", self.shadow_max_excess_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(err(name, "must be between 0 and 100"));
            }
        }
        for (risk, stages) in &self.plans {
            let at = format!("plans.{}", serde_json::to_value(risk).unwrap_or_default());
            let at = at.replace('"', "");
            if stages.is_empty() {
                return Err(err(&at, "a plan needs at least one stage"));
            }
            for (i, s) in stages.iter().enumerate() {
                rampart_model::validate::validate_scope(&format!("{at}[{i}].scope"), &s.scope)
                    .map_err(|e| err(&format!("{at}[{i}].scope"), &e.to_string()))?;
                // A stage must judge data: a sample minimum, and a gate that reads traffic.
                if s.min_samples == 0 {
                    return Err(err(&format!("{at}[{i}].min_samples"), "must be at least 1"));
                }
                let judges_traffic = s.gates.iter().any(|g| {
                    matches!(
                        g.check,
                        GateCheck::ErrorRate { .. }
                            | GateCheck::DenyRate { .. }
                            | GateCheck::ShadowDiff { .. }
                    )
                });
                if !judges_traffic {
                    return Err(err(
                        &format!("{at}[{i}].gates"),
                        "a stage needs an error_rate or deny_rate gate (or shadow_diff in a shadow stage)",
                    ));
                }
            }
            let last = &stages[stages.len() - 1];
            if last.shadow || last.scope.percent < 100.0 || !last.scope.cells.is_empty() {
                return Err(err(
                    &at,
                    "the last stage must cover 100% of every cell, not in shadow",
                ));
            }
        }
        Ok(())
    }

    /// The plan of a change of `risk`; `touches_policy` picks the policy soak, `canary_cell`
    /// the cell of the canary stages (none: every cell).
    pub fn plan(&self, risk: Risk, touches_policy: bool, canary_cell: Option<&str>) -> RolloutPlan {
        if let Some(stages) = self.plans.get(&risk) {
            return RolloutPlan {
                stages: stages.clone(),
            };
        }
        let soak = if touches_policy {
            self.policy_soak_secs.get(risk)
        } else {
            self.soak_secs.get(risk)
        };
        let deadline = self.deadline_secs.unwrap_or(soak * 2 + 60);
        let gate = |check| Gate {
            deadline_secs: deadline,
            check,
        };
        let live_gates = vec![
            gate(GateCheck::ErrorRate {
                alpha: self.error_rate.alpha,
                min_effect: self.error_rate.min_effect,
                min_samples: self.error_rate.min_samples,
            }),
            gate(GateCheck::DenyRate {
                alpha: self.error_rate.alpha,
                min_effect: self.error_rate.min_effect,
                min_samples: self.error_rate.min_samples,
            }),
            gate(GateCheck::LatencyP99 {
                max_ratio: self.latency_max_ratio,
            }),
            gate(GateCheck::TrafficFloor {
                min_ratio: self.traffic_floor,
            }),
            gate(GateCheck::NoNack),
            gate(GateCheck::NoLocalGuardTrip),
        ];
        let stage = |name: &str, cells: Vec<String>, percent: f64| StageDef {
            name: name.to_owned(),
            scope: StageScope {
                cells,
                gateways: Vec::new(),
                percent,
            },
            shadow: false,
            min_soak_secs: soak,
            min_samples: self.min_samples,
            gates: live_gates.clone(),
        };
        let canary: Vec<String> = canary_cell.map(str::to_owned).into_iter().collect();
        let stages = match risk {
            Risk::Low => vec![stage("100%", vec![], 100.0)],
            Risk::Medium => vec![
                stage("5%", vec![], 5.0),
                stage("50%", vec![], 50.0),
                stage("100%", vec![], 100.0),
            ],
            Risk::High | Risk::Critical => {
                let canary_name = canary_cell.unwrap_or("every cell");
                vec![
                    StageDef {
                        name: "shadow".to_owned(),
                        scope: StageScope {
                            cells: vec![],
                            gateways: vec![],
                            percent: 100.0,
                        },
                        shadow: true,
                        min_soak_secs: soak,
                        min_samples: self.min_samples,
                        gates: vec![
                            gate(GateCheck::ShadowDiff {
                                max_excess_percent: self.shadow_max_excess_percent,
                            }),
                            gate(GateCheck::NoNack),
                        ],
                    },
                    stage(&format!("1% of {canary_name}"), canary.clone(), 1.0),
                    stage(&format!("all of {canary_name}"), canary, 100.0),
                    stage("10%", vec![], 10.0),
                    stage("50%", vec![], 50.0),
                    stage("100%", vec![], 100.0),
                ]
            }
        };
        RolloutPlan { stages }
    }
}

impl RolloutRules {
    /// The plan of a change that turns a switch on (a boolean flag's default from false to
    /// true): DESIGN's fast canary, 1% of requests for `switch_canary_secs`, before `plan`,
    /// unless `plan` already starts at 1% or less, or in shadow.
    pub fn with_switch_canary(&self, mut plan: RolloutPlan) -> RolloutPlan {
        let Some(first) = plan.stages.first() else {
            return plan;
        };
        if first.shadow || first.scope.percent <= 1.0 {
            return plan;
        }
        let canary = StageDef {
            name: "switch canary 1%".to_owned(),
            scope: StageScope {
                cells: first.scope.cells.clone(),
                gateways: first.scope.gateways.clone(),
                percent: 1.0,
            },
            shadow: false,
            min_soak_secs: self.switch_canary_secs,
            min_samples: first.min_samples,
            gates: first.gates.clone(),
        };
        plan.stages.insert(0, canary);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_risk_table() {
        let r = RolloutRules::default();
        let low = r.plan(Risk::Low, false, None);
        assert_eq!(low.stages.len(), 1);
        assert_eq!(low.stages[0].min_soak_secs, 60);
        let medium = r.plan(Risk::Medium, false, None);
        let pcts: Vec<f64> = medium.stages.iter().map(|s| s.scope.percent).collect();
        assert_eq!(pcts, [5.0, 50.0, 100.0]);
        let high = r.plan(Risk::High, true, Some("a"));
        assert_eq!(high.stages.len(), 6);
        assert!(high.stages[0].shadow);
        assert_eq!(high.stages[1].scope.cells, ["a"]);
        assert_eq!(high.stages[1].scope.percent, 1.0);
        assert_eq!(high.stages[2].scope.percent, 100.0);
        assert!(high.stages.iter().all(|s| s.min_soak_secs == 900));
        assert_eq!(r.plan(Risk::High, false, None).stages[3].min_soak_secs, 600);
        assert_eq!(
            r.plan(Risk::Critical, false, None).stages[5].min_soak_secs,
            1800
        );
        r.check("rollouts.prod").unwrap();
    }

    #[test]
    fn a_switch_turned_on_starts_with_a_fast_canary() {
        let r = RolloutRules::default();
        let low = r.with_switch_canary(r.plan(Risk::Low, false, None));
        let pcts: Vec<f64> = low.stages.iter().map(|s| s.scope.percent).collect();
        assert_eq!(pcts, [1.0, 100.0]);
        assert_eq!(low.stages[0].min_soak_secs, 30);
        assert_eq!(low.stages[0].gates, low.stages[1].gates);
        // A plan that already starts small, or in shadow, is left alone.
        let high = r.plan(Risk::High, false, Some("a"));
        assert_eq!(r.with_switch_canary(high.clone()), high);
    }

    #[test]
    fn bad_rules_name_the_field() {
        let r: RolloutRules =
            serde_json::from_value(serde_json::json!({ "traffic_floor": 1.5 })).unwrap();
        let e = r.check("rollouts.prod").unwrap_err();
        assert_eq!(e.path, "rollouts.prod.traffic_floor");
        let e = serde_json::from_value::<RolloutRules>(serde_json::json!({ "soak": 1 }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `soak`"), "{e}");
        let r: RolloutRules = serde_json::from_value(serde_json::json!({
            "plans": { "low": [{ "name": "half", "scope": { "percent": 50.0 }, "min_soak_secs": 1,
                                 "min_samples": 1, "gates": [] }] }
        }))
        .unwrap();
        let e = r.check("rollouts.dev").unwrap_err();
        assert_eq!(
            e.path, "rollouts.dev.plans.low[0].gates",
            "a stage that judges nothing"
        );
        let mut r = r;
        let stage = &mut r.plans.get_mut(&Risk::Low).unwrap()[0];
        stage.gates = RolloutRules::default().plan(Risk::Low, false, None).stages[0]
            .gates
            .clone();
        let e = r.check("rollouts.dev").unwrap_err();
        assert_eq!(
            e.path, "rollouts.dev.plans.low",
            "the last stage is not 100%"
        );
    }
}
