//! # rampart-eval
//!
//! Compiles a [`Snapshot`] into an immutable [`Evaluator`] and decides requests with it:
//! the route and upstream, the policy outcome, header edits, rate-limit keys and the flag
//! values consulted ([`Decision`]). It also assigns each request to a [`Cohort`] (the baseline,
//! or the candidate of an active rollout) by sticky [`bucket`]ing, keyed by the tenant its
//! credentials establish ([`Evaluator::identify`]) or a trusted source, never by a header
//! the client chose.
//!
//! Gateways run this crate on every request, and the control plane runs the same code to judge
//! candidates, so both agree on what a configuration does. Among the routes that match a
//! request, the one that wins is decided by [`precedence`], from the routes alone. It does no
//! I/O, has no async runtime, and never panics on a snapshot that compiled: every value a flag
//! can give a policy field is converted once, at compile time.

pub mod bucket;
mod compiled;
pub mod decision;
pub mod diff;
mod flags;
mod jwt;
pub mod precedence;
pub mod request;

use rampart_model::snapshot::StageScope;
use rampart_model::validate::{
    ValidationError, ValidationErrors, validate_runnable, validate_scope,
};
use rampart_model::{Attribute, ContentHash, Snapshot};
use serde_json::Value;

use crate::compiled::CompiledConfig;
pub use crate::decision::{
    Decision, DenyReason, HeaderEdit, LimitKey, Outcome, RateLimit, ResolvedFlag, RouteInfo,
};
use crate::flags::{Ctx, StickyKey, sticky_key};
pub use crate::request::{HeaderList, Headers, RequestMeta};

/// Which configuration a request is evaluated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cohort {
    Baseline,
    /// The candidate of the rollout at this index in the snapshot.
    Candidate(usize),
}

/// A snapshot that cannot be compiled, with every reason.
#[derive(Debug, thiserror::Error)]
#[error("snapshot {hash} does not compile: {errors}")]
pub struct CompileError {
    pub hash: ContentHash,
    pub errors: ValidationErrors,
}

/// A compiled snapshot: immutable, `Send + Sync`, cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Evaluator {
    hash: ContentHash,
    baseline: CompiledConfig,
    rollouts: Box<[CompiledRollout]>,
}

#[derive(Debug)]
struct CompiledRollout {
    id: Box<str>,
    salt: bucket::Salt,
    sticky_key: Attribute,
    cells: Box<[Box<str>]>,
    gateways: Box<[Box<str>]>,
    threshold: u32,
    shadow: bool,
    config: CompiledConfig,
}

impl CompiledRollout {
    fn in_scope(&self, meta: &RequestMeta<'_>) -> bool {
        let gw = meta.gateway;
        (self.cells.is_empty() || self.cells.iter().any(|c| **c == *gw.cell))
            && (self.gateways.is_empty() || self.gateways.iter().any(|g| **g == *gw.id))
    }
}

/// A flag of an evaluator, found once by name and then evaluated by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagId(u32);

fn prefixed(prefix: &str, errors: ValidationErrors) -> impl Iterator<Item = ValidationError> + '_ {
    errors.0.into_iter().map(move |mut e| {
        e.path = format!("{prefix}{}", e.path);
        e
    })
}

fn internal(path: String, message: String) -> ValidationError {
    ValidationError {
        path,
        rule: rampart_model::validate::Rule::Format,
        message,
    }
}

impl Evaluator {
    /// Validate and compile a snapshot and each of its rollouts' candidates. Every error is
    /// reported, with paths under `config.` or `rollouts[i].`.
    pub fn compile(snapshot: &Snapshot) -> Result<Evaluator, CompileError> {
        fn compile(
            errors: &mut Vec<ValidationError>,
            prefix: String,
            cfg: &rampart_model::Config,
        ) -> Option<CompiledConfig> {
            if let Err(e) = validate_runnable(cfg) {
                errors.extend(prefixed(&prefix, e));
                return None;
            }
            CompiledConfig::compile(cfg)
                .map_err(|m| errors.push(internal(prefix, m)))
                .ok()
        }
        let mut errors = Vec::new();
        let baseline = compile(&mut errors, "config.".into(), snapshot.config());
        let mut rollouts = Vec::new();
        for (i, r) in snapshot.rollouts().iter().enumerate() {
            let config = compile(
                &mut errors,
                format!("rollouts[{i}].candidate."),
                &r.candidate,
            );
            if let Err(e) = validate_scope(&format!("rollouts[{i}].scope"), &r.scope) {
                errors.extend(e.0);
            }
            if snapshot.rollouts()[..i].iter().any(|o| o.id == r.id) {
                errors.push(ValidationError {
                    path: format!("rollouts[{i}].id"),
                    rule: rampart_model::validate::Rule::Duplicate,
                    message: format!("duplicate rollout `{}`", r.id),
                });
            }
            if let Some(config) = config {
                let StageScope {
                    cells,
                    gateways,
                    percent,
                } = &r.scope;
                rollouts.push(CompiledRollout {
                    id: r.id.as_str().into(),
                    salt: bucket::Salt::new(&r.salt),
                    sticky_key: r.sticky_key.clone(),
                    cells: cells.iter().map(|c| c.as_str().into()).collect(),
                    gateways: gateways.iter().map(|g| g.as_str().into()).collect(),
                    threshold: bucket::threshold(*percent),
                    shadow: r.shadow,
                    config,
                });
            }
        }
        match baseline {
            Some(baseline) if errors.is_empty() => Ok(Evaluator {
                hash: snapshot.hash(),
                baseline,
                rollouts: rollouts.into(),
            }),
            _ => Err(CompileError {
                hash: snapshot.hash(),
                errors: ValidationErrors(errors),
            }),
        }
    }

    /// The hash of the snapshot this evaluator was compiled from.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// The id of the rollout a candidate cohort belongs to.
    pub fn rollout_id(&self, cohort: Cohort) -> Option<&str> {
        match cohort {
            Cohort::Baseline => None,
            Cohort::Candidate(i) => self.rollouts.get(i).map(|r| &*r.id),
        }
    }

    /// The number of active rollouts.
    pub fn rollout_count(&self) -> usize {
        self.rollouts.len()
    }

    /// The tenant the request's credentials establish, resolved with the baseline before the
    /// cohort is chosen, so that the sticky cohort and every cohort's tenant-keyed limits see
    /// the same tenant (a client cannot pick its own). `None` when no credential of the
    /// request's baseline route names one, or when nothing depends on it: the baseline maps no
    /// JWT claim to the tenant and no rollout is active (an API key's tenant is then set by
    /// [`Evaluator::evaluate`] itself). The gateway puts the answer in
    /// [`RequestMeta::tenant`] (over a trusted proxy's) before [`Evaluator::cohort`].
    pub fn identify(&self, meta: &RequestMeta<'_>) -> Option<std::borrow::Cow<'_, str>> {
        if self.baseline.jwt_tenants || (!self.rollouts.is_empty() && self.baseline.names_tenants) {
            self.baseline.identify(meta)
        } else {
            None
        }
    }

    /// The cohort of a request: the first rollout (not in shadow) whose scope covers this
    /// gateway and whose sticky bucket covers the request, else the baseline. Requests without
    /// the sticky attribute bucket by client IP.
    pub fn cohort(&self, meta: &RequestMeta<'_>) -> Cohort {
        self.first_covering(meta, false)
    }

    /// The shadow rollout, if any, whose candidate should be evaluated beside the baseline for
    /// this request (the request itself is served by [`Evaluator::cohort`]'s answer).
    pub fn shadow(&self, meta: &RequestMeta<'_>) -> Option<usize> {
        match self.first_covering(meta, true) {
            Cohort::Candidate(i) => Some(i),
            Cohort::Baseline => None,
        }
    }

    fn first_covering(&self, meta: &RequestMeta<'_>, shadow: bool) -> Cohort {
        for (i, r) in self.rollouts.iter().enumerate() {
            if r.shadow != shadow || r.threshold == 0 || !r.in_scope(meta) {
                continue;
            }
            let ctx = Ctx {
                meta,
                tenant: meta.tenant,
                route: None,
                product: None,
            };
            let key =
                sticky_key(&r.sticky_key, &ctx).unwrap_or_else(|| StickyKey::ip(meta.client_ip));
            if r.salt.bucket(key.as_bytes()) < r.threshold {
                return Cohort::Candidate(i);
            }
        }
        Cohort::Baseline
    }

    fn config(&self, cohort: Cohort) -> &CompiledConfig {
        match cohort {
            Cohort::Candidate(i) => self.rollouts.get(i).map_or(&self.baseline, |r| &r.config),
            Cohort::Baseline => &self.baseline,
        }
    }

    /// Decide a request against the configuration of `cohort`. A cohort index that does not
    /// exist in this snapshot falls back to the baseline.
    pub fn evaluate<'a>(&'a self, meta: &'a RequestMeta<'a>, cohort: Cohort) -> Decision<'a> {
        self.config(cohort).evaluate(meta)
    }

    /// Find a flag of `cohort`'s configuration by name.
    pub fn flag_id(&self, cohort: Cohort, name: &str) -> Option<FlagId> {
        self.config(cohort).flag_index.get(name).map(|&i| FlagId(i))
    }

    /// The value of a flag for a request, outside any route (the `route` and `product`
    /// attributes are absent). `id` must come from [`Evaluator::flag_id`] with the same cohort.
    pub fn flag_value<'a>(
        &'a self,
        cohort: Cohort,
        id: FlagId,
        meta: &'a RequestMeta<'a>,
    ) -> &'a Value {
        self.config(cohort).flag_value(id.0, meta)
    }
}
