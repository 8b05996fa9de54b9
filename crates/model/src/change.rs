//! Changes and rollout plans: the types only. The engine that drives them lives in the control
//! plane.

use serde::{Deserialize, Serialize};

use crate::config::{Environment, Policy, Product, Route, Upstream};
use crate::flag::Flag;
use crate::snapshot::StageScope;

/// How strict the path to production is for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

/// A proposed edit to one or more objects of one environment. Immutable once submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub environment: Environment,
    pub author: String,
    pub reason: String,
    #[serde(default)]
    pub declared_impact: DeclaredImpact,
    pub edits: Vec<Edit>,
}

/// What the author expects the change to do to traffic.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredImpact {
    /// The share of sampled requests, in percent, whose outcome the author expects to change.
    #[serde(default)]
    pub changed_percent: f64,
    /// Routes on which the author declares that a policy denies all traffic (a maintenance
    /// window, say). Without this, such a policy is a validation error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denies_all: Vec<String>,
}

/// One object created, replaced or deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Edit {
    Upsert(Object),
    Delete { kind: ObjectKind, name: String },
}

/// A configuration object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Object {
    Product(Product),
    Upstream(Upstream),
    Policy(Policy),
    Route(Route),
    Flag(Flag),
}

/// The kind of a configuration object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Product,
    Upstream,
    Policy,
    Route,
    Flag,
}

/// The stages a change passes through on its way to 100%.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    pub stages: Vec<StageDef>,
}

/// One stage of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    pub name: String,
    pub scope: StageScope,
    /// A shadow stage evaluates the candidate beside the baseline without applying it.
    #[serde(default)]
    pub shadow: bool,
    pub min_soak_secs: u64,
    pub min_samples: u64,
    pub gates: Vec<Gate>,
}

/// A health gate: candidate cohort against baseline cohort, same window, same gateways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// No data by this many seconds into the stage fails the gate.
    pub deadline_secs: u64,
    pub check: GateCheck,
}

/// What a gate checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GateCheck {
    /// Candidate error rate (5xx and gateway errors) against baseline, by a sequential test.
    ErrorRate {
        /// The false-alarm rate the test tolerates.
        alpha: f64,
        /// The smallest absolute increase in error rate worth detecting.
        min_effect: f64,
        min_samples: u64,
    },
    /// Candidate p99 latency over baseline p99.
    LatencyP99 { max_ratio: f64 },
    /// Candidate request rate over its expected share of the total.
    TrafficFloor { min_ratio: f64 },
    /// No gateway refused the candidate.
    NoNack,
    /// No gateway's local guard tripped on the candidate.
    NoLocalGuardTrip,
}
