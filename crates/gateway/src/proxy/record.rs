//! Phase 3, record (pingora's `logging`): after the response, count the request against its
//! cohort (and let the local guard judge a candidate), its route's metrics, and keep its
//! sample. Also the `gateway_errors` counter that forwarding bumps per failed attempt.
//!
//! A sample keeps an allow-list of headers ([`sample_headers`]): harmless ones
//! ([`SAFE_SAMPLE_HEADERS`]) and those the snapshot's matchers, keys and flags read. A
//! credential header (authorization, cookies, API-key headers) keeps only its presence: its
//! value becomes [`REDACTED`], neither the secret nor any hash of it.

use std::collections::BTreeSet;

use http::HeaderMap;
use rampart_eval::{Cohort, RequestMeta};
use rampart_model::EnumName;
use rampart_model::Snapshot;
use rampart_model::config::{Config, LoadBalancing, PolicyKind, RequestKey};
use rampart_model::flag::Attribute;
use rampart_model::wire::RequestSample;

use super::{Reject, RequestCtx};
use crate::metrics::{ReasonLabels, RolloutLabels, class};
use crate::stats::{CohortStats, Ending};

/// Headers kept per sample, and bytes per value; the rest is cut.
const SAMPLE_HEADERS: usize = 32;
const SAMPLE_VALUE_BYTES: usize = 256;

/// What a credential header's value becomes in a sample.
pub const REDACTED: &str = "[redacted]";

/// Headers every sample may keep: they carry no credentials.
pub const SAFE_SAMPLE_HEADERS: [&str; 14] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "content-length",
    "content-type",
    "host",
    "origin",
    "traceparent",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
    "x-real-ip",
];

impl RequestCtx<'_> {
    /// Phase 3: record how the request ended.
    pub(super) fn record(self, ending: Ending) {
        let (shared, active, cohort) = (self.shared, self.active, self.cohort);
        let latency = self.start.elapsed();
        let second = shared.started.elapsed().as_secs();
        let stats = match cohort {
            Cohort::Baseline => shared.stats.baseline(),
            Cohort::Candidate(i) => &active.candidates[i],
        };
        stats.record(ending, self.fallback, latency, second);
        let rollout = active.evaluator.rollout_id(cohort).unwrap_or_default();
        if self.fallback {
            self.fallback_seen(stats, rollout);
        }
        if cohort != Cohort::Baseline && shared.stats.judge(stats, second) {
            shared
                .metrics
                .guard_trips
                .get_or_create(&RolloutLabels {
                    rollout: rollout.to_owned(),
                })
                .inc();
            tracing::error!(rollout = %rollout, "local guard tripped: this gateway stops using the candidate");
        }
        let origin = if matches!(ending, Ending::Upstream(_)) {
            "upstream"
        } else {
            "gateway"
        };
        let (requests, duration) = active.metrics.handles(
            &shared.metrics,
            self.route.as_deref(),
            self.route_index,
            cohort,
            rollout,
            class(ending.status()),
            origin,
        );
        requests.inc();
        duration.observe(latency.as_secs_f64());
        if let Some(mut s) = self.sample {
            s.status = ending.status();
            shared.samples.push(s);
        }
    }

    /// Count a candidate that failed and was served by the baseline.
    fn fallback_seen(&self, stats: &CohortStats, rollout: &str) {
        self.shared
            .metrics
            .fallbacks
            .get_or_create(&RolloutLabels {
                rollout: rollout.to_owned(),
            })
            .inc();
        // One line for the first and then every thousandth, so a candidate that fails on
        // every request cannot flood the log.
        let n = stats.fallbacks();
        if n == 1 || n.is_multiple_of(1000) {
            tracing::warn!(rollout = %rollout, fallbacks = n, "candidate evaluation failed; served by the baseline");
        }
    }
}

/// Count a response the gateway produced because it failed to reach an upstream.
pub fn gateway_error(ctx: &RequestCtx<'_>, reject: &Reject<'_>) {
    ctx.shared
        .metrics
        .gateway_errors
        .get_or_create(&ReasonLabels {
            reason: reject.code().into(),
        })
        .inc();
}

/// The sample of a decided request; its status is filled in when it ends.
pub fn sample(ctx: &RequestCtx<'_>, meta: &RequestMeta<'_>, headers: &HeaderMap) -> RequestSample {
    let active = ctx.active;
    let headers = headers
        .iter()
        .filter(|(n, _)| active.sample_headers.contains(n.as_str()))
        .take(SAMPLE_HEADERS)
        .map(|(n, v)| {
            let value = if active.secret_headers.contains(n.as_str()) {
                REDACTED.to_owned()
            } else {
                let v = String::from_utf8_lossy(v.as_bytes());
                let mut end = v.len().min(SAMPLE_VALUE_BYTES);
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                v[..end].to_owned()
            };
            (n.as_str().to_owned(), value)
        })
        .collect();
    RequestSample {
        at_ms: rampart_model::clock::unix_ms(),
        method: meta.method.to_owned(),
        host: meta.host.to_owned(),
        path: meta.path.to_owned(),
        client_ip: meta.client_ip,
        headers,
        tenant: ctx.tenant.clone(),
        route: ctx.route.clone(),
        status: 0,
        outcome: ctx.disposition.as_str().to_owned(),
        rollout: active.evaluator.rollout_id(ctx.cohort).map(str::to_owned),
    }
}

/// The headers samples of `snapshot` keep: [`SAFE_SAMPLE_HEADERS`], the tenant header, and
/// every header a route, access rule, API-key policy, request key or flag of the baseline or
/// a candidate reads. Names are lowercase, as `http` gives them.
pub fn sample_headers(snapshot: &Snapshot) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = SAFE_SAMPLE_HEADERS
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    let configs =
        std::iter::once(snapshot.config()).chain(snapshot.rollouts().iter().map(|r| &r.candidate));
    for cfg in configs {
        read_headers(cfg, &mut out);
    }
    out.into_iter().map(|h| h.to_ascii_lowercase()).collect()
}

fn read_headers(cfg: &Config, out: &mut BTreeSet<String>) {
    out.insert(cfg.settings.tenant_header.clone());
    for r in &cfg.routes {
        out.extend(r.matcher.headers.iter().map(|h| h.name.clone()));
    }
    let key = |k: &RequestKey| match k {
        RequestKey::Header(h) => Some(h.clone()),
        _ => None,
    };
    for u in &cfg.upstreams {
        if let LoadBalancing::ConsistentHash { key: k } = &u.load_balancing {
            out.extend(key(k));
        }
    }
    for p in &cfg.policies {
        match &p.kind {
            PolicyKind::Access(a) => {
                for rule in &a.rules {
                    out.extend(rule.headers.iter().map(|h| h.name.clone()));
                }
            }
            PolicyKind::Auth(rampart_model::config::AuthPolicy::ApiKey(k)) => {
                out.insert(k.header.clone());
            }
            PolicyKind::RateLimit(r) => out.extend(key(&r.key)),
            _ => {}
        }
    }
    for f in &cfg.flags {
        for rule in &f.rules {
            let by = rule.percentage.as_ref().map(|p| &p.by);
            for a in rule.when.iter().map(|c| &c.attribute).chain(by) {
                if let Attribute::Header(h) = a {
                    out.insert(h.clone());
                }
            }
        }
    }
}
