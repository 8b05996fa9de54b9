//! The live configuration: a compiled snapshot with its pools and cohort counters, swapped
//! atomically. A request loads the current one once and finishes on it, whatever swaps happen
//! meanwhile.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use rampart_eval::{Cohort, Evaluator};
use rampart_model::config::{AuthPolicy, PolicyKind};
use rampart_model::wire::{ConfigAck, GatewayReport};
use rampart_model::{GatewayIdentity, Snapshot};

use crate::metrics::{EndpointLabels, MetricCache, Metrics, SnapshotLabels};
use crate::ratelimit::RateLimiter;
use crate::stats::{CohortStats, GuardConfig, Samples, Stats};
use crate::upstream::{Pool, Upstreams};

/// One compiled snapshot and what serving it needs.
#[derive(Debug)]
pub struct Active {
    pub snapshot: Snapshot,
    pub evaluator: Evaluator,
    /// Pools of the baseline, then of each rollout's candidate (which may define its own
    /// upstreams); a pool whose definition is unchanged is shared.
    pools: Vec<Upstreams>,
    /// Counters of each rollout's candidate, by rollout index.
    pub candidates: Vec<Arc<CohortStats>>,
    /// Headers that carry credentials in this snapshot; samples record only that they were
    /// present ([`crate::proxy::record::REDACTED`]).
    pub secret_headers: BTreeSet<String>,
    /// Headers samples keep: a fixed list of harmless ones, plus every header this snapshot's
    /// matchers, keys and flags read (so the impact test can replay them). Others are dropped.
    pub sample_headers: BTreeSet<String>,
    /// Request metrics of this snapshot's routes and cohorts.
    pub metrics: MetricCache,
    /// The baseline's trusted proxies and tenant header, parsed once.
    pub trust: crate::proxy::client::Trust,
    /// The largest request body of each route, by cohort (baseline, then each candidate) and
    /// route index.
    body_limits: Vec<Vec<u64>>,
}

impl Active {
    /// The pools the configuration of `cohort` routes to.
    pub fn upstreams(&self, cohort: Cohort) -> &Upstreams {
        let i = match cohort {
            Cohort::Baseline => 0,
            Cohort::Candidate(i) => i + 1,
        };
        self.pools.get(i).unwrap_or(&self.pools[0])
    }

    /// The largest request body of route `route` of `cohort`'s configuration.
    pub fn body_limit(&self, cohort: Cohort, route: usize) -> u64 {
        let i = match cohort {
            Cohort::Baseline => 0,
            Cohort::Candidate(i) => i + 1,
        };
        self.body_limits
            .get(i)
            .and_then(|routes| routes.get(route))
            .copied()
            .unwrap_or(rampart_model::body::RequestLimits::DEFAULT_MAX_BODY)
    }

    /// Every pool, once.
    pub fn all_pools(&self) -> Vec<Arc<Pool>> {
        let mut out: Vec<Arc<Pool>> = Vec::new();
        for p in self.pools.iter().flat_map(|u| &u.pools) {
            if !out.iter().any(|q| Arc::ptr_eq(p, q)) {
                out.push(p.clone());
            }
        }
        out
    }
}

/// Options of the gateway that do not come from snapshots.
#[derive(Debug, Clone)]
pub struct Options {
    pub identity: GatewayIdentity,
    pub guard: GuardConfig,
    /// Keep one request in this many as a sample.
    pub sample_every: u64,
    pub sample_capacity: usize,
}

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    pub identity: GatewayIdentity,
    live: ArcSwapOption<Active>,
    pub stats: Stats,
    pub samples: Samples,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    pub started: Instant,
    /// The same instant, in ms since the Unix epoch, as reports carry it.
    started_ms: u64,
    last_nack: Mutex<Option<ConfigAck>>,
    /// Serializes swaps; requests never take it.
    swap_lock: Mutex<()>,
    /// What each listener did with its connections (mirrored into metrics at a scrape).
    pub listeners: ListenerStats,
}

/// The connection counters of the gateway's listeners.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub proxy: Arc<rampart_listen::ConnStats>,
    pub tls: Arc<rampart_listen::ConnStats>,
    pub admin: Arc<rampart_listen::ConnStats>,
}

/// Why a snapshot was refused: the NACK reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Shared {
    pub fn new(opts: &Options) -> Shared {
        Shared {
            identity: opts.identity.clone(),
            live: ArcSwapOption::empty(),
            stats: Stats::new(opts.guard),
            samples: Samples::new(opts.sample_every, opts.sample_capacity),
            limiter: RateLimiter::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            started_ms: rampart_model::clock::unix_ms(),
            last_nack: Mutex::new(None),
            swap_lock: Mutex::new(()),
            listeners: ListenerStats::default(),
        }
    }

    /// The configuration requests should start on now.
    pub fn current(&self) -> Option<Arc<Active>> {
        self.live.load_full()
    }

    /// Compile a snapshot and build its pools, without serving it yet; or refuse it.
    /// Needs a Tokio runtime (new pools start health checks).
    pub fn prepare(&self, snapshot: Snapshot) -> Result<Arc<Active>, Refused> {
        let evaluator = match Evaluator::compile(&snapshot) {
            Ok(e) => e,
            Err(e) => return Err(self.refuse(&snapshot, e.to_string())),
        };
        warn_weak_credentials(&snapshot);
        let mut reuse = self.current().map(|a| a.all_pools()).unwrap_or_default();
        let configs = std::iter::once(snapshot.config())
            .chain(snapshot.rollouts().iter().map(|r| &r.candidate));
        let mut pools = Vec::with_capacity(1 + snapshot.rollouts().len());
        for cfg in configs {
            let built = Upstreams::build(&cfg.upstreams, &reuse);
            reuse.extend(built.pools.iter().cloned());
            pools.push(built);
        }
        let ids: Vec<&str> = snapshot.rollouts().iter().map(|r| r.id.as_str()).collect();
        let candidates = self.stats.rollouts(&ids);
        let secret_headers = secret_headers(&snapshot);
        let sample_headers = crate::proxy::record::sample_headers(&snapshot);
        let routes = std::iter::once(snapshot.config())
            .chain(snapshot.rollouts().iter().map(|r| &r.candidate))
            .map(|c| c.routes.len())
            .max()
            .unwrap_or(0);
        let metrics = MetricCache::new(routes, 1 + snapshot.rollouts().len());
        let trust = crate::proxy::client::Trust::new(&snapshot.config().settings);
        let body_limits = std::iter::once(snapshot.config())
            .chain(snapshot.rollouts().iter().map(|r| &r.candidate))
            .map(|c| {
                let default = c.settings.requests.max_body_bytes;
                c.routes
                    .iter()
                    .map(|r| r.max_body_bytes.unwrap_or(default))
                    .collect()
            })
            .collect();
        Ok(Arc::new(Active {
            body_limits,
            snapshot,
            evaluator,
            pools,
            candidates,
            secret_headers,
            sample_headers,
            metrics,
            trust,
        }))
    }

    /// Serve a prepared snapshot from now on. Requests already in flight finish on theirs.
    pub fn activate(&self, active: Arc<Active>) {
        let _swap = self.swap_lock.lock().unwrap_or_else(|e| e.into_inner());
        let hash = active.snapshot.hash();
        let rollouts = active.snapshot.rollouts().len();
        self.live.store(Some(active));
        self.metrics.configs_applied.inc();
        self.metrics.active_snapshot.clear();
        self.metrics
            .active_snapshot
            .get_or_create(&SnapshotLabels {
                hash: hash.to_string(),
            })
            .set(1);
        tracing::info!(hash = %hash, rollouts, "snapshot activated");
    }

    fn refuse(&self, snapshot: &Snapshot, reason: String) -> Refused {
        let hash = snapshot.hash();
        tracing::error!(hash = %hash, reason = %reason, "snapshot refused; still serving the previous one");
        self.metrics.configs_refused.inc();
        *self.last_nack.lock().unwrap_or_else(|e| e.into_inner()) = Some(ConfigAck::Nack {
            hash,
            reason: reason.clone(),
        });
        Refused(reason)
    }

    /// Refuse a snapshot for a reason found outside compilation (the crash-loop guard).
    pub fn refuse_external(&self, snapshot: &Snapshot, reason: String) -> Refused {
        self.refuse(snapshot, reason)
    }

    /// What `/cohorts` serves and the control plane receives.
    pub fn report(&self) -> GatewayReport {
        GatewayReport {
            gateway: self.identity.clone(),
            snapshot: self.current().map(|a| a.snapshot.hash()),
            at_ms: rampart_model::clock::unix_ms(),
            started_ms: Some(self.started_ms),
            cohorts: self.stats.counters(),
            last_nack: self
                .last_nack
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Bring gauges that mirror live state up to date, before a scrape.
    pub fn refresh_gauges(&self) {
        let l = &self.listeners;
        for (name, stats) in [("proxy", &l.proxy), ("tls", &l.tls), ("admin", &l.admin)] {
            self.metrics.mirror_listener(name, stats);
        }
        self.metrics.endpoint_healthy.clear();
        if let Some(active) = self.current() {
            for pool in active.all_pools() {
                for e in &pool.endpoints {
                    self.metrics
                        .endpoint_healthy
                        .get_or_create(&EndpointLabels {
                            upstream: pool.def.name.clone(),
                            endpoint: e.addr.to_string(),
                        })
                        .set(i64::from(e.is_healthy()));
                }
            }
        }
    }
}

/// Log each weak API key of a snapshot. The gateway serves it anyway (its control plane or
/// `rampart validate` refuses such a configuration; refusing here could leave a gateway with
/// no snapshot at all); only paths and rules are logged, never a hash.
fn warn_weak_credentials(snapshot: &Snapshot) {
    let configs =
        std::iter::once(snapshot.config()).chain(snapshot.rollouts().iter().map(|r| &r.candidate));
    for cfg in configs {
        for e in rampart_model::validate::weak_credentials(cfg) {
            tracing::warn!(path = %e.path, "weak API key: {}", e.message);
        }
    }
}

/// The credential headers of a snapshot: API-key headers, plus the usual suspects.
fn secret_headers(snapshot: &Snapshot) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let configs =
        std::iter::once(snapshot.config()).chain(snapshot.rollouts().iter().map(|r| &r.candidate));
    for cfg in configs {
        for p in &cfg.policies {
            match &p.kind {
                PolicyKind::Auth(AuthPolicy::ApiKey(k)) => {
                    out.insert(k.header.clone());
                }
                PolicyKind::Auth(AuthPolicy::Jwt(j)) => {
                    out.insert(j.header.clone());
                }
                _ => {}
            }
        }
    }
    out
}
