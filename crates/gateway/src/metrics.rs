//! Prometheus metrics of the gateway, served at `/metrics` on the admin listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// Labels of a listener's connection events.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `proxy`, `tls` or `admin`.
    pub listener: &'static str,
    /// `accepted`, `refused_total`, `refused_per_ip`, `accept_error`, `timed_out`,
    /// `tls_failed`.
    pub event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// The [`Metrics`] struct and its `Default`, which registers every field in the order given:
/// `field: Type = ("name", "help")`, optionally followed by `with <constructor>` (else the
/// type's `Default`). The exposition names each `rampart_gateway_<name>`.
macro_rules! metric_families {
    ($($field:ident: $ty:ty = ($name:literal, $help:literal) $(with $init:expr)?;)*) => {
        /// Every metric family, registered once.
        #[derive(Debug)]
        pub struct Metrics {
            pub registry: Registry,
            $(#[doc = $help] pub $field: $ty,)*
        }

        impl Default for Metrics {
            fn default() -> Self {
                let mut registry = Registry::with_prefix("rampart_gateway");
                $(
                    let $field: $ty = metric_families!(@init $($init)?);
                    registry.register($name, $help, $field.clone());
                )*
                Metrics { registry, $($field),* }
            }
        }
    };
    (@init $init:expr) => { $init };
    (@init) => { Default::default() };
}

#[rustfmt::skip]
metric_families! {
    requests: Family<RequestLabels, Counter> = ("requests", "Requests served, by route, cohort, rollout, status class and origin");
    duration: Family<RouteLabels, Histogram> = ("request_duration_seconds", "Time from request head to response head")
        with Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 18)));
    gateway_errors: Family<ReasonLabels, Counter> = ("gateway_errors", "Responses the gateway produced because it failed to reach an upstream");
    endpoint_healthy: Family<EndpointLabels, Gauge> = ("upstream_endpoint_healthy", "1 when the endpoint passes its health check");
    active_snapshot: Family<SnapshotLabels, Gauge> = ("active_snapshot", "1 for the hash of the snapshot being served");
    configs_applied: Counter = ("configs_applied", "Snapshots activated");
    configs_refused: Counter = ("configs_refused", "Snapshots refused (NACKed) because they did not compile or were quarantined");
    fallbacks: Family<RolloutLabels, Counter> = ("candidate_fallbacks", "Candidate evaluations that failed and were served by the baseline");
    guard_trips: Family<RolloutLabels, Counter> = ("local_guard_trips", "Candidates this gateway stopped using by itself");
    rate_limited: Counter = ("rate_limited", "Requests refused with 429");
    connections: Family<ListenerLabels, Counter> = ("listener_connections", "Connection events per listener: accepted, refused over a limit, accept errors, closed by a timeout, failed TLS handshakes");
}

impl Metrics {
    /// Bring the connection counters up to a listener's [`rampart_listen::ConnStats`].
    pub fn mirror_listener(&self, listener: &'static str, stats: &rampart_listen::ConnStats) {
        use std::sync::atomic::Ordering::Relaxed;
        for (event, value) in [
            ("accepted", &stats.accepted),
            ("refused_total", &stats.refused_total),
            ("refused_per_ip", &stats.refused_per_ip),
            ("accept_error", &stats.accept_errors),
            ("timed_out", &stats.timed_out),
            ("tls_failed", &stats.tls_failed),
        ] {
            let c = self
                .connections
                .get_or_create(&ListenerLabels { listener, event });
            let (now, seen) = (value.load(Relaxed), c.get());
            if now > seen {
                c.inc_by(now - seen);
            }
        }
    }
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
