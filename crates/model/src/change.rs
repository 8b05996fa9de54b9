//! Changes and rollout plans: the types only. The engine that drives them lives in the control
//! plane.

use serde::{Deserialize, Serialize};

use crate::config::{Config, Environment, Policy, Product, Route, Settings, Upstream};
use crate::flag::Flag;
use crate::snapshot::StageScope;

crate::wire_enum! {
    /// How strict the path to production is for a change.
    #[derive(PartialOrd, Ord)]
    pub enum Risk {
        Low,
        Medium,
        High,
        Critical,
    }
}

/// A proposed edit to one or more objects of one environment. Immutable once submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[allow(
    clippy::large_enum_variant,
    reason = "a change holds a handful of edits, built once: boxing would buy nothing"
)]
pub enum Edit {
    Upsert(Object),
    Delete { kind: ObjectKind, name: String },
}

/// A configuration object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Object {
    /// The environment-wide settings: a singleton, named [`SETTINGS_NAME`]. An environment
    /// without one has the default settings, so deleting it restores them.
    Settings(Settings),
    Product(Product),
    Upstream(Upstream),
    Policy(Policy),
    Route(Route),
    Flag(Flag),
}

impl Object {
    /// The object's kind and its name (the `id` of policies and routes).
    pub fn key(&self) -> (ObjectKind, &str) {
        match self {
            Object::Settings(_) => (ObjectKind::Settings, SETTINGS_NAME),
            Object::Product(p) => (ObjectKind::Product, &p.name),
            Object::Upstream(u) => (ObjectKind::Upstream, &u.name),
            Object::Policy(p) => (ObjectKind::Policy, &p.id),
            Object::Route(r) => (ObjectKind::Route, &r.id),
            Object::Flag(f) => (ObjectKind::Flag, &f.name),
        }
    }
}

/// The name of the one settings object of an environment.
pub const SETTINGS_NAME: &str = "settings";

impl Config {
    /// The configuration of `env` made of `objects`: the default settings unless a settings
    /// object is among them.
    pub fn from_objects(env: Environment, objects: impl IntoIterator<Item = Object>) -> Config {
        let mut config = Config {
            environment: env,
            settings: Settings::default(),
            products: Vec::new(),
            upstreams: Vec::new(),
            policies: Vec::new(),
            routes: Vec::new(),
            flags: Vec::new(),
        };
        for object in objects {
            config.push(object);
        }
        config
    }

    /// Every object of the configuration, by kind: the settings (only when they differ from
    /// the defaults, which an environment without a settings object has), products,
    /// upstreams, policies, routes, flags.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        let settings =
            (self.settings != Settings::default()).then(|| Object::Settings(self.settings.clone()));
        let products = self.products.iter().cloned().map(Object::Product);
        let upstreams = self.upstreams.iter().cloned().map(Object::Upstream);
        let policies = self.policies.iter().cloned().map(Object::Policy);
        let routes = self.routes.iter().cloned().map(Object::Route);
        let flags = self.flags.iter().cloned().map(Object::Flag);
        settings
            .into_iter()
            .chain(products)
            .chain(upstreams)
            .chain(policies)
            .chain(routes)
            .chain(flags)
    }

    /// Add an object to the list of its kind; a settings object replaces the settings.
    pub fn push(&mut self, object: Object) {
        match object {
            Object::Settings(s) => self.settings = s,
            Object::Product(p) => self.products.push(p),
            Object::Upstream(u) => self.upstreams.push(u),
            Object::Policy(p) => self.policies.push(p),
            Object::Route(r) => self.routes.push(r),
            Object::Flag(f) => self.flags.push(f),
        }
    }
}

crate::wire_enum! {
    /// The kind of a configuration object.
    pub enum ObjectKind {
        Settings,
        Product,
        Upstream,
        Policy,
        Route,
        Flag,
    }
}

/// The stages a change passes through on its way to 100%.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    pub stages: Vec<StageDef>,
}

/// One stage of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// No data by this many seconds into the stage fails the gate.
    pub deadline_secs: u64,
    pub check: GateCheck,
}

/// What a gate checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Candidate share of requests the gateway itself answered with a 4xx (denials) against
    /// baseline, by the same sequential test as the error rate. A change that declares an
    /// impact is judged by the impact test and the shadow stage instead.
    DenyRate {
        alpha: f64,
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
    /// Shadow stage: the share of compared requests whose outcome the candidate changes,
    /// against the impact the change declared.
    ShadowDiff { max_excess_percent: f64 },
}
