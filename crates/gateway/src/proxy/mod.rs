//! The request path, as named phases (pingora's `request_filter` / `upstream_peer` /
//! `response_filter` / `logging` are the model):
//!
//! 1. **route and decide** ([`RequestCtx::decide`]): read the target ([`path`]) and the
//!    client ([`client`]: its address, with `X-Forwarded-For` believed only from trusted
//!    proxies, and the tenant header taken out), establish the tenant from credentials
//!    (`Evaluator::identify`), choose the cohort, evaluate (all routing and policy logic is in `rampart-eval`), take rate-limit
//!    tokens, and [`Plan`] the request: answered here, or forwarded;
//! 2. **respond or forward**: a synthetic response ([`respond`]), or the upstream call with
//!    the route's timeouts and retries ([`forward`]);
//! 3. **record** ([`record`]): cohort counters and the local guard, metrics, request samples.
//!
//! One [`RequestCtx`] carries a request through the phases. Every refusal or failure of the
//! gateway itself is a [`Reject`] and leaves through [`respond::fail`], which maps it to its
//! status and `x-rampart-error` ([`reject`]). Gateway-originated responses carry
//! `x-rampart-origin: gateway` ([`headers`] names every header the path reads or writes).

// No function on the request path grows past 80 lines (`too-many-lines-threshold` in
// `.clippy.toml`).
#![warn(clippy::too_many_lines)]

pub mod body;
pub mod client;
pub mod forward;
pub mod headers;
pub mod path;
pub mod record;
pub mod reject;
pub mod respond;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use rampart_eval::{Cohort, Decision, LimitKey, Outcome, RequestMeta};
use rampart_model::config::{LoadBalancing, RequestKey};
use rampart_model::wire::RequestSample;

use crate::live::{Active, Shared};
use crate::stats::Ending;
use crate::upstream::Pool;
use forward::Forward;
use headers::HeaderView;
use path::Target;
pub use reject::{Denial, Disposition, Reject};

/// Errors of a response body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends.
pub type RespBody = BoxBody<Bytes, BoxError>;

/// What the gateway will do with a decided request.
#[derive(Debug)]
enum Plan {
    /// Answer it here: a static response, or a refusal.
    Respond(Response<RespBody>, Ending),
    /// Send it upstream.
    Forward(Forward),
}

/// One request as it goes through the phases: what it arrived with, then what the decision
/// found out that recording needs.
#[derive(Debug)]
pub struct RequestCtx<'r> {
    shared: &'r Shared,
    active: &'r Active,
    start: Instant,
    /// The client as decided before evaluation.
    client: client::Client,
    tls: bool,
    /// The cohort chosen for the request (its counters and metrics).
    cohort: Cohort,
    /// Whether the candidate failed and the baseline served it.
    fallback: bool,
    route: Option<String>,
    route_index: Option<usize>,
    tenant: Option<String>,
    disposition: Disposition,
    sample: Option<RequestSample>,
}

/// Serve one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Result<Response<RespBody>, Infallible> {
    let start = Instant::now();
    let Some(active) = shared.current() else {
        return Ok(respond::fail(Reject::NoConfig).0);
    };
    let (mut parts, body) = req.into_parts();
    let uri = parts.uri.clone(); // shares its bytes
    // Refused or redirected before any decision: counted against no route or cohort.
    let settings = &active.snapshot.config().settings.paths;
    let target = match Target::read(parts.version, &parts.headers, &uri, settings) {
        // Sent to its canonical path before any decision (`decode_and_redirect`).
        Ok(target) if target.redirect => return Ok(respond::redirect(&target, uri.query())),
        Ok(target) => target,
        Err(reject) => return Ok(respond::fail(reject).0),
    };
    let client = match client::Client::read(peer, &mut parts.headers, &active.trust) {
        Ok(client) => client,
        Err(reject) => return Ok(respond::fail(reject).0),
    };
    let mut ctx = RequestCtx::new(&shared, &active, start, client, tls);
    // Phase 1: everything that borrows the request head happens here, before any await.
    let plan = ctx.decide(&parts, &target);
    // Phase 2.
    let (resp, ending) = match plan {
        Plan::Respond(resp, ending) => (resp, ending),
        Plan::Forward(fwd) => forward::forward(&ctx, parts, body, &target, fwd).await,
    };
    // Phase 3.
    ctx.record(ending);
    Ok(resp)
}

impl<'r> RequestCtx<'r> {
    fn new(
        shared: &'r Shared,
        active: &'r Active,
        start: Instant,
        client: client::Client,
        tls: bool,
    ) -> Self {
        RequestCtx {
            shared,
            active,
            start,
            client,
            tls,
            cohort: Cohort::Baseline,
            fallback: false,
            route: None,
            route_index: None,
            tenant: None,
            disposition: Disposition::Allow,
            sample: None,
        }
    }

    /// Phase 1, route and decide: evaluate the request in its cohort and plan it.
    fn decide(&mut self, parts: &http::request::Parts, target: &Target<'_>) -> Plan {
        let view = HeaderView(&parts.headers);
        let proxy_tenant = self.client.proxy_tenant.take();
        let unidentified = RequestMeta {
            method: parts.method.as_str(),
            host: target.host(),
            path: &target.path,
            client_ip: self.client.ip,
            headers: &view,
            tenant: proxy_tenant.as_deref(),
            now_ms: rampart_model::clock::unix_ms(),
            attributes: &[],
            gateway: &self.shared.identity,
        };
        // Credentials name the tenant before the cohort is chosen; they win over a proxy's.
        let identified = self.active.evaluator.identify(&unidentified);
        let meta = RequestMeta {
            tenant: identified.as_deref().or(unidentified.tenant),
            ..unidentified
        };
        let decision = self.evaluate(&meta);
        // `served` is the cohort whose configuration produced the decision.
        let served = if self.fallback {
            Cohort::Baseline
        } else {
            self.cohort
        };
        let planned = self.plan(served, &decision, &meta);
        self.route = decision.route.map(|r| r.id.to_owned());
        self.route_index = decision.route.map(|r| r.index);
        self.tenant = decision.tenant.map(str::to_owned);
        self.disposition = Disposition::of(&planned);
        if self.shared.samples.wants() {
            self.sample = Some(record::sample(self, &meta, &parts.headers));
        }
        planned.unwrap_or_else(|reject| {
            let (resp, ending) = respond::fail(reject);
            Plan::Respond(resp, ending)
        })
    }

    /// Choose the cohort and evaluate in it; a candidate that panics is replaced by the
    /// baseline (a fallback). A shadow candidate is evaluated beside it and only counted.
    fn evaluate<'a>(&mut self, meta: &'a RequestMeta<'a>) -> Decision<'a>
    where
        'r: 'a,
    {
        let active = self.active;
        let mut cohort = active.evaluator.cohort(meta);
        if let Cohort::Candidate(i) = cohort
            && active.candidates[i].is_tripped()
        {
            cohort = Cohort::Baseline;
        }
        self.cohort = cohort;
        let decision = if cohort == Cohort::Baseline {
            active.evaluator.evaluate(meta, cohort)
        } else {
            let candidate = catch_unwind(AssertUnwindSafe(|| {
                fail_candidate();
                active.evaluator.evaluate(meta, cohort)
            }));
            candidate.unwrap_or_else(|_| {
                self.fallback = true;
                active.evaluator.evaluate(meta, Cohort::Baseline)
            })
        };
        if let Some(i) = active.evaluator.shadow(meta) {
            shadow(active, meta, &decision, i);
        }
        decision
    }

    /// What to do with a decided request: refuse it, answer it, or forward it to its pool
    /// once its rate limits let it through.
    fn plan<'a>(
        &self,
        served: Cohort,
        d: &Decision<'a>,
        meta: &RequestMeta<'_>,
    ) -> Result<Plan, Reject<'a>> {
        match &d.outcome {
            Outcome::Deny {
                status,
                reason,
                policy,
            } => Err(Reject::Denied(Denial {
                reason: *reason,
                status: *status,
                policy: *policy,
            })),
            Outcome::Static {
                status,
                body,
                content_type,
                headers,
                ..
            } => {
                let edits = headers::edits(&d.response_headers);
                let resp = respond::static_response(*status, body, content_type, headers, &edits);
                let status = resp.status().as_u16();
                let ending = Ending::Gateway {
                    status,
                    failure: false,
                };
                Ok(Plan::Respond(resp, ending))
            }
            Outcome::Allow => {
                self.take_tokens(d)?;
                self.forward_plan(served, d, meta).map(Plan::Forward)
            }
        }
    }

    /// Take a token from each of the decision's rate limits, or refuse with the first empty one.
    fn take_tokens<'a>(&self, d: &Decision<'a>) -> Result<(), Reject<'a>> {
        let Some(limit) = d
            .rate_limits
            .iter()
            .find(|l| !self.shared.limiter.try_acquire(l, self.start))
        else {
            return Ok(());
        };
        self.shared.metrics.rate_limited.inc();
        let retry = (1.0 / f64::from(limit.per_second.max(1))).ceil().max(1.0);
        Err(Reject::RateLimited {
            policy: limit.policy,
            retry_after: retry as u64,
            tenant: matches!(limit.key, LimitKey::Tenant(_)),
        })
    }

    /// The pool and upstream settings of an allowed request.
    fn forward_plan(
        &self,
        served: Cohort,
        d: &Decision<'_>,
        meta: &RequestMeta<'_>,
    ) -> Result<Forward, Reject<'static>> {
        // An allowed request always has a route and its pool exists in a compiled snapshot;
        // refuse rather than panic if that ever breaks.
        let max_body = d
            .route
            .map_or(rampart_model::body::RequestLimits::DEFAULT_MAX_BODY, |r| {
                self.active.body_limit(served, r.index)
            });
        let pool = d
            .route
            .and_then(|route| {
                self.active
                    .upstreams(served)
                    .pools
                    .get(route.upstream_index)
            })
            .ok_or(Reject::NoUpstream)?;
        // The tenant the gateway established (a credential's, else a trusted proxy's; a
        // client's own header was removed), so the upstream can trust it.
        let tenant = d.tenant.and_then(|t| {
            let name = self.active.trust.tenant_header.clone()?;
            Some((name, http::HeaderValue::from_str(t).ok()?))
        });
        Ok(Forward {
            pool: pool.clone(),
            tenant,
            hash_key: hash_key(pool, d, meta),
            request_edits: headers::edits(&d.request_headers),
            response_edits: headers::edits(&d.response_headers),
            timeout_ms: d.timeout_ms,
            retry_attempts: d.retry_attempts,
            max_body,
        })
    }
}

/// Evaluate the candidate of shadow rollout `i` beside the baseline's decision and count how
/// its outcome differs; the request is served by the baseline whatever happens here.
fn shadow(active: &Active, meta: &RequestMeta<'_>, baseline: &Decision<'_>, i: usize) {
    let stats = &active.candidates[i];
    if stats.is_tripped() {
        return;
    }
    let candidate = catch_unwind(AssertUnwindSafe(|| {
        fail_candidate();
        let c = active.evaluator.evaluate(meta, Cohort::Candidate(i));
        rampart_eval::diff::classify(baseline, &c)
    }));
    match candidate {
        Ok(class) => stats.record_shadow(class),
        Err(_) => stats.record_shadow_failure(),
    }
}

/// A fault-injection point for tests and drills: `FAILPOINTS=gateway::candidate=panic`.
#[cfg(feature = "failpoints")]
fn fail_candidate() {
    fail::fail_point!("gateway::candidate");
}

#[cfg(not(feature = "failpoints"))]
fn fail_candidate() {}

/// The consistent-hash key of a request, if its pool hashes.
fn hash_key(pool: &Pool, d: &Decision<'_>, meta: &RequestMeta<'_>) -> Option<Vec<u8>> {
    let LoadBalancing::ConsistentHash { key } = &pool.def.load_balancing else {
        return None;
    };
    let ip = || meta.client_ip.to_string().into_bytes();
    Some(match key {
        RequestKey::Tenant => d.tenant.map_or_else(ip, |t| t.as_bytes().to_vec()),
        RequestKey::ClientIp => ip(),
        RequestKey::Route => d
            .route
            .map(|r| r.id.as_bytes().to_vec())
            .unwrap_or_default(),
        RequestKey::Header(h) => meta
            .headers
            .get(h)
            .map_or_else(ip, |v| v.as_bytes().to_vec()),
    })
}
