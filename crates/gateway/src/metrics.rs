//! Prometheus metrics of the gateway, served at `/metrics` on the admin listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// Labels of a served request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route id, or `none`.
    pub route: String,
    /// `baseline` or `candidate`.
    pub cohort: &'static str,
    /// The rollout id, or empty for the baseline.
    pub rollout: String,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub class: &'static str,
    /// `upstream` when the upstream answered; `gateway` when the gateway did.
    pub origin: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub cohort: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    pub rollout: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub upstream: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SnapshotLabels {
    pub hash: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Every metric family, registered once.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub gateway_errors: Family<ReasonLabels, Counter>,
    pub endpoint_healthy: Family<EndpointLabels, Gauge>,
    pub active_snapshot: Family<SnapshotLabels, Gauge>,
    pub configs_applied: Counter,
    pub configs_refused: Counter,
    pub fallbacks: Family<RolloutLabels, Counter>,
    pub guard_trips: Family<RolloutLabels, Counter>,
    pub rate_limited: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rampart_gateway");
        let requests = register(
            &mut registry,
            "requests",
            "Requests served, by route, cohort, rollout, status class and origin",
            Family::<RequestLabels, Counter>::default(),
        );
        let duration = register(
            &mut registry,
            "request_duration_seconds",
            "Time from request head to response head",
            Family::<RouteLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 18))
            }),
        );
        let gateway_errors = register(
            &mut registry,
            "gateway_errors",
            "Responses the gateway produced because it failed to reach an upstream",
            Family::<ReasonLabels, Counter>::default(),
        );
        let endpoint_healthy = register(
            &mut registry,
            "upstream_endpoint_healthy",
            "1 when the endpoint passes its health check",
            Family::<EndpointLabels, Gauge>::default(),
        );
        let active_snapshot = register(
            &mut registry,
            "active_snapshot",
            "1 for the hash of the snapshot being served",
            Family::<SnapshotLabels, Gauge>::default(),
        );
        let configs_applied = register(
            &mut registry,
            "configs_applied",
            "Snapshots activated",
            Counter::default(),
        );
        let configs_refused = register(
            &mut registry,
            "configs_refused",
            "Snapshots refused (NACKed) because they did not compile or were quarantined",
            Counter::default(),
        );
        let fallbacks = register(
            &mut registry,
            "candidate_fallbacks",
            "Candidate evaluations that failed and were served by the baseline",
            Family::<RolloutLabels, Counter>::default(),
        );
        let guard_trips = register(
            &mut registry,
            "local_guard_trips",
            "Candidates this gateway stopped using by itself",
            Family::<RolloutLabels, Counter>::default(),
        );
        let rate_limited = register(
            &mut registry,
            "rate_limited",
            "Requests refused with 429",
            Counter::default(),
        );
        Metrics {
            registry,
            requests,
            duration,
            gateway_errors,
            endpoint_healthy,
            active_snapshot,
            configs_applied,
            configs_refused,
            fallbacks,
            guard_trips,
            rate_limited,
        }
    }
}

/// Register `metric` and return it (a handle to the same values).
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// The class of a status code, as a label.
pub fn class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const ORIGINS: [&str; 2] = ["upstream", "gateway"];

/// The request counters and latency histograms of one active snapshot, found once per
/// (cohort, route, class, origin) and then used without building labels or taking the
/// family's lock. The families keep the values, so counts carry across swaps.
#[derive(Debug)]
pub struct MetricCache {
    routes: usize,
    cohorts: usize,
    counters: Box<[std::sync::OnceLock<Counter>]>,
    histograms: Box<[std::sync::OnceLock<Histogram>]>,
}

impl MetricCache {
    /// For configurations of at most `routes` routes, and `cohorts` cohorts.
    pub fn new(routes: usize, cohorts: usize) -> Self {
        // One more slot per cohort for requests that matched no route.
        let slots = (routes + 1) * cohorts;
        MetricCache {
            routes,
            cohorts,
            counters: (0..slots * CLASSES.len() * ORIGINS.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            histograms: (0..slots).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    /// The counter and histogram of a request.
    #[allow(clippy::too_many_arguments)]
    pub fn handles(
        &self,
        metrics: &Metrics,
        route: Option<&str>,
        route_index: Option<usize>,
        cohort: rampart_eval::Cohort,
        rollout: &str,
        class: &'static str,
        origin: &'static str,
    ) -> (&Counter, &Histogram) {
        let (cohort_label, c) = match cohort {
            rampart_eval::Cohort::Baseline => ("baseline", 0),
            rampart_eval::Cohort::Candidate(i) => ("candidate", i + 1),
        };
        let r = route_index
            .filter(|&i| i < self.routes)
            .unwrap_or(self.routes);
        let slot = c.min(self.cohorts - 1) * (self.routes + 1) + r;
        let k = CLASSES.iter().position(|x| *x == class).unwrap_or(4);
        let o = ORIGINS.iter().position(|x| *x == origin).unwrap_or(1);
        let route = route.unwrap_or("none");
        let counter =
            self.counters[(slot * CLASSES.len() + k) * ORIGINS.len() + o].get_or_init(|| {
                metrics
                    .requests
                    .get_or_create(&RequestLabels {
                        route: route.to_owned(),
                        cohort: cohort_label,
                        rollout: rollout.to_owned(),
                        class,
                        origin,
                    })
                    .clone()
            });
        let histogram = self.histograms[slot].get_or_init(|| {
            metrics
                .duration
                .get_or_create(&RouteLabels {
                    route: route.to_owned(),
                    cohort: cohort_label,
                })
                .clone()
        });
        (counter, histogram)
    }
}
