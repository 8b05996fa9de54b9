//! The request path: evaluate, enforce, forward, count.
//!
//! All routing and policy logic is in `rampart-eval`; this module turns a decision into HTTP:
//! it applies rate limits, answers denials and static responses itself, and forwards allowed
//! requests to a pool endpoint with the route's timeouts and retries. Gateway-originated
//! responses carry `x-rampart-origin: gateway`, and failures also `x-rampart-error: <reason>`.

use rampart_model::EnumName;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use rampart_eval::{Cohort, Decision, HeaderEdit, Headers, LimitKey, Outcome, RequestMeta};
use rampart_model::config::{LoadBalancing, RequestKey, RetryOn};
use rampart_model::wire::RequestSample;
use sha2::{Digest, Sha256};

use crate::live::{Active, Shared};
use crate::metrics::{ReasonLabels, RolloutLabels, class};
use crate::stats::Ending;
use crate::upstream::{InFlight, Pool, ReqBody};

/// Errors of a response body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends.
pub type RespBody = BoxBody<Bytes, BoxError>;

/// Request headers, as `eval` reads them.
struct HeaderView<'a>(&'a HeaderMap);

impl Headers for HeaderView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Headers that describe one connection, never forwarded (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&listed) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// A header edit with parsed names and values.
#[derive(Debug)]
enum Edit {
    Set(HeaderName, HeaderValue),
    Remove(HeaderName),
}

fn edits(list: &[HeaderEdit<'_>]) -> Vec<Edit> {
    list.iter()
        .filter_map(|e| match e {
            HeaderEdit::Set(n, v) => Some(Edit::Set(
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            )),
            HeaderEdit::Remove(n) => HeaderName::from_bytes(n.as_bytes()).ok().map(Edit::Remove),
        })
        .collect()
}

fn apply(edits: &[Edit], headers: &mut HeaderMap) {
    for e in edits {
        match e {
            Edit::Set(n, v) => {
                headers.insert(n.clone(), v.clone());
            }
            Edit::Remove(n) => {
                headers.remove(n);
            }
        }
    }
}

/// What to do with a request, owned so the request can be taken apart.
#[derive(Debug)]
enum Action {
    Respond(Response<RespBody>),
    Forward(Forward),
}

#[derive(Debug)]
struct Forward {
    pool: Arc<Pool>,
    /// The tenant header, set to the tenant the gateway established (an API key's tenant
    /// overrides what the client sent), so the upstream can trust it.
    tenant: Option<(HeaderName, HeaderValue)>,
    hash_key: Option<Vec<u8>>,
    request_edits: Vec<Edit>,
    response_edits: Vec<Edit>,
    timeout_ms: Option<u32>,
    retry_attempts: Option<u32>,
}

/// The facts about a request that outlive its decision.
#[derive(Debug)]
struct Facts {
    route: Option<String>,
    route_index: Option<usize>,
    tenant: Option<String>,
    outcome: &'static str,
}

fn gateway_response(
    status: u16,
    error: Option<&str>,
    body: Bytes,
    content_type: &str,
) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert("x-rampart-origin", HeaderValue::from_static("gateway"));
    if let Some(error) = error
        && let Ok(v) = HeaderValue::from_str(error)
    {
        h.insert("x-rampart-error", v);
    }
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// A JSON error produced by the gateway.
pub fn error_response(status: u16, reason: &str, policy: Option<&str>) -> Response<RespBody> {
    let body = serde_json::json!({ "error": reason, "policy": policy }).to_string();
    gateway_response(status, Some(reason), Bytes::from(body), "application/json")
}

/// Evaluate against the cohort; a candidate that panics is replaced by the baseline.
fn decide<'a>(
    active: &'a Active,
    meta: &'a RequestMeta<'a>,
    cohort: Cohort,
) -> (Decision<'a>, bool) {
    if cohort == Cohort::Baseline {
        return (active.evaluator.evaluate(meta, cohort), false);
    }
    let candidate = catch_unwind(AssertUnwindSafe(|| {
        fail_candidate();
        active.evaluator.evaluate(meta, cohort)
    }));
    match candidate {
        Ok(d) => (d, false),
        Err(_) => (active.evaluator.evaluate(meta, Cohort::Baseline), true),
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

/// `served` is the cohort whose configuration produced `d` (the baseline after a fallback).
fn plan(
    shared: &Shared,
    active: &Active,
    served: Cohort,
    d: &Decision<'_>,
    meta: &RequestMeta<'_>,
    now: Instant,
) -> (Action, Facts) {
    let mut facts = Facts {
        route: d.route.map(|r| r.id.to_owned()),
        route_index: d.route.map(|r| r.index),
        tenant: d.tenant.map(str::to_owned),
        outcome: "allow",
    };
    let action = match &d.outcome {
        Outcome::Deny {
            status,
            reason,
            policy,
        } => {
            facts.outcome = reason.as_str();
            Action::Respond(error_response(*status, reason.as_str(), *policy))
        }
        Outcome::Static {
            status,
            body,
            content_type,
            headers,
            ..
        } => {
            facts.outcome = "static";
            let mut resp = gateway_response(
                *status,
                None,
                Bytes::copy_from_slice(body.as_bytes()),
                content_type,
            );
            for (n, v) in headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    resp.headers_mut().insert(n, v);
                }
            }
            apply(&edits(&d.response_headers), resp.headers_mut());
            Action::Respond(resp)
        }
        Outcome::Allow => {
            if let Some(limit) = d
                .rate_limits
                .iter()
                .find(|l| !shared.limiter.try_acquire(l, now))
            {
                facts.outcome = "rate_limited";
                shared.metrics.rate_limited.inc();
                let mut resp = error_response(429, "rate_limited", Some(limit.policy));
                let retry = (1.0 / f64::from(limit.per_second.max(1))).ceil().max(1.0);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry as u64));
                if let LimitKey::Tenant(_) = limit.key {
                    resp.headers_mut()
                        .insert("x-ratelimit-scope", HeaderValue::from_static("tenant"));
                }
                Action::Respond(resp)
            } else {
                // An allowed request always has a route and its pool exists in a compiled
                // snapshot; refuse rather than panic if that ever breaks.
                let Some(pool) = d
                    .route
                    .and_then(|route| active.upstreams(served).pools.get(route.upstream_index))
                else {
                    // Cannot happen with a compiled snapshot; refuse rather than panic.
                    facts.outcome = "no_upstream";
                    return (
                        Action::Respond(error_response(502, "no_upstream", None)),
                        facts,
                    );
                };
                let tenant_header = &active.snapshot.config().settings.tenant_header;
                let tenant = d.tenant.and_then(|t| {
                    Some((
                        HeaderName::from_bytes(tenant_header.as_bytes()).ok()?,
                        HeaderValue::from_str(t).ok()?,
                    ))
                });
                Action::Forward(Forward {
                    pool: pool.clone(),
                    tenant,
                    hash_key: hash_key(pool, d, meta),
                    request_edits: edits(&d.request_headers),
                    response_edits: edits(&d.response_headers),
                    timeout_ms: d.timeout_ms,
                    retry_attempts: d.retry_attempts,
                })
            }
        }
    };
    (action, facts)
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
        return Ok(error_response(503, "no_config", None));
    };
    let (parts, body) = req.into_parts();
    // Two Host headers could route by one and reach the upstream with the other
    // (RFC 9112, section 3.2: answer 400).
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    if hosts.next().is_some() && hosts.next().is_some() {
        return Ok(error_response(400, "duplicate_host", None));
    }
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    // Routing and forwarding both use the path with dot-segments resolved, so `/a/../admin`
    // cannot take the policies of `/a/` and still reach `/admin` upstream.
    let uri = parts.uri.clone(); // shares its bytes
    let Some(path) = normalize_path(uri.path()) else {
        return Ok(error_response(400, "bad_request_target", None));
    };
    // Everything that borrows the request head happens here, before any await.
    let (action, facts, cohort, fallback, sample) = {
        let view = HeaderView(&parts.headers);
        let meta = RequestMeta {
            method: parts.method.as_str(),
            host: &host,
            path: &path,
            client_ip: peer.ip(),
            headers: &view,
            attributes: &[],
            gateway: &shared.identity,
        };
        let mut cohort = active.evaluator.cohort(&meta);
        if let Cohort::Candidate(i) = cohort
            && active.candidates[i].is_tripped()
        {
            cohort = Cohort::Baseline;
        }
        let (decision, fallback) = decide(&active, &meta, cohort);
        if let Some(i) = active.evaluator.shadow(&meta) {
            shadow(&active, &meta, &decision, i);
        }
        let served = if fallback { Cohort::Baseline } else { cohort };
        let (action, facts) = plan(&shared, &active, served, &decision, &meta, start);
        let sample = shared
            .samples
            .wants()
            .then(|| sample_of(&active, &meta, &parts.headers, &facts, cohort));
        (action, facts, cohort, fallback, sample)
    };

    let (resp, ending) = match action {
        Action::Respond(resp) => {
            let status = resp.status().as_u16();
            (
                resp,
                Ending::Gateway {
                    status,
                    failure: false,
                },
            )
        }
        Action::Forward(fwd) => {
            forward(&shared, parts, body, peer, tls, &host, &path, fwd, start).await
        }
    };

    let latency = start.elapsed();
    let second = shared.started.elapsed().as_secs();
    let stats = match cohort {
        Cohort::Baseline => shared.stats.baseline(),
        Cohort::Candidate(i) => &active.candidates[i],
    };
    stats.record(ending, fallback, latency, second);
    let rollout = active
        .evaluator
        .rollout_id(cohort)
        .unwrap_or_default()
        .to_owned();
    if fallback {
        shared
            .metrics
            .fallbacks
            .get_or_create(&RolloutLabels {
                rollout: rollout.clone(),
            })
            .inc();
        // One line for the first and then every thousandth, so a candidate that fails on
        // every request cannot flood the log.
        let n = stats.fallbacks();
        if n == 1 || n.is_multiple_of(1000) {
            tracing::warn!(rollout = %rollout, fallbacks = n, "candidate evaluation failed; served by the baseline");
        }
    }
    if cohort != Cohort::Baseline && shared.stats.judge(stats, second) {
        shared
            .metrics
            .guard_trips
            .get_or_create(&RolloutLabels {
                rollout: rollout.clone(),
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
        facts.route.as_deref(),
        facts.route_index,
        cohort,
        &rollout,
        class(ending.status()),
        origin,
    );
    requests.inc();
    duration.observe(latency.as_secs_f64());
    if let Some(mut s) = sample {
        s.status = ending.status();
        shared.samples.push(s);
    }
    Ok(resp)
}

/// Headers kept per sample, and bytes per value; the rest is cut.
const SAMPLE_HEADERS: usize = 32;
const SAMPLE_VALUE_BYTES: usize = 256;

fn sample_of(
    active: &Active,
    meta: &RequestMeta<'_>,
    headers: &HeaderMap,
    facts: &Facts,
    cohort: Cohort,
) -> RequestSample {
    let headers = headers
        .iter()
        .take(SAMPLE_HEADERS)
        .map(|(n, v)| {
            let value = if active.secret_headers.contains(n.as_str()) {
                fingerprint(v.as_bytes())
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
        tenant: facts.tenant.clone(),
        route: facts.route.clone(),
        status: 0,
        outcome: facts.outcome.to_owned(),
        rollout: active.evaluator.rollout_id(cohort).map(str::to_owned),
    }
}

/// Fingerprint a credential: enough to tell keys apart, useless to present.
pub fn fingerprint(secret: &[u8]) -> String {
    format!("sha256:{}", hex::encode(&Sha256::digest(secret)[..8]))
}

/// Resolve `.` and `..` segments (also percent-encoded) as RFC 3986 section 5.2.4 does.
/// `None` for a path that is not absolute.
pub fn normalize_path(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !path.starts_with('/') {
        return (path == "*").then_some(std::borrow::Cow::Borrowed("/"));
    }
    let dotty = |seg: &str| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        match lower.as_str() {
            "." => Some(false),
            ".." => Some(true),
            _ => None,
        }
    };
    let suspicious = path.contains("/.") || path.to_ascii_lowercase().contains("/%2e");
    if !suspicious {
        return Some(std::borrow::Cow::Borrowed(path));
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match dotty(seg) {
            Some(up) => {
                if up {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            None => out.push(seg),
        }
    }
    Some(std::borrow::Cow::Owned(format!("/{}", out.join("/"))))
}

/// HTTP/2 lets clients split cookies over several fields; HTTP/1.1 upstreams need one
/// (RFC 9113, section 8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let values: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if values.len() > 1
        && let Ok(v) = HeaderValue::from_str(&values.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

fn more_attempts(attempt: u32, attempts: u32) -> bool {
    attempt + 1 < attempts
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    shared: &Shared,
    parts: http::request::Parts,
    body: Incoming,
    peer: SocketAddr,
    tls: bool,
    host: &str,
    path: &str,
    fwd: Forward,
    start: Instant,
) -> (Response<RespBody>, Ending) {
    let pool = &fwd.pool;
    let def = &pool.def;
    let replayable = idempotent(&parts.method) && body.is_end_stream();
    let attempts = if replayable {
        1 + fwd.retry_attempts.unwrap_or(def.retries.attempts)
    } else {
        1
    };
    let total = Duration::from_millis(u64::from(fwd.timeout_ms.unwrap_or(def.timeouts.total_ms)));
    let read = Duration::from_millis(u64::from(def.timeouts.read_ms));
    let deadline = start + total;

    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let client_ip = crate::server::ip_text(peer.ip());
    let prior: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let xff = if prior.is_empty() {
        client_ip
    } else {
        format!("{}, {client_ip}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert("x-forwarded-host", v.clone());
        headers.insert(header::HOST, v);
    }
    if parts.version == Version::HTTP_2 {
        join_cookies(&mut headers);
    }
    if let Some((name, value)) = &fwd.tenant {
        headers.insert(name.clone(), value.clone());
    }
    apply(&fwd.request_edits, &mut headers);
    let path = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };

    let mut body = Some(body);
    let mut failed: Option<Arc<crate::upstream::Endpoint>> = None;
    // The last failure: the response is built only if every attempt failed.
    let mut last: (u16, &'static str) = (503, "no_healthy_upstream");
    for attempt in 0..attempts {
        let Some(ep) = pool.pick(fwd.hash_key.as_deref(), failed.as_deref()) else {
            shared
                .metrics
                .gateway_errors
                .get_or_create(&ReasonLabels {
                    reason: "no_healthy_upstream".into(),
                })
                .inc();
            return (
                error_response(503, "no_healthy_upstream", None),
                Ending::Gateway {
                    status: 503,
                    failure: true,
                },
            );
        };
        let req_body: ReqBody = match body.take() {
            Some(b) if attempt == 0 => b.boxed(),
            _ => Empty::new().map_err(|never| match never {}).boxed(),
        };
        let mut req = Request::new(req_body);
        *req.method_mut() = parts.method.clone();
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = if more_attempts(attempt, attempts) {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        match format!("http://{}{}", ep.addr, path).parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => {
                return (
                    error_response(400, "bad_request_target", None),
                    Ending::Gateway {
                        status: 400,
                        failure: false,
                    },
                );
            }
        }
        let inflight = ep.start();
        let wait = read.min(deadline.saturating_duration_since(Instant::now()));
        let more = more_attempts(attempt, attempts);
        let retry_on = |r: RetryOn| def.retries.retry_on.contains(&r);
        let (reason, status, retry) =
            match tokio::time::timeout(wait, pool.client.request(req)).await {
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    if status >= 500 && more && retry_on(RetryOn::ServerError) {
                        failed = Some(ep.clone());
                        continue;
                    }
                    return (
                        upstream_response(resp, &fwd.response_edits, inflight, deadline),
                        Ending::Upstream(status),
                    );
                }
                Ok(Err(e)) if e.is_connect() => (
                    "upstream_connect_error",
                    502,
                    retry_on(RetryOn::ConnectError),
                ),
                Ok(Err(_)) => ("upstream_error", 502, false),
                Err(_) => ("upstream_timeout", 504, retry_on(RetryOn::Timeout)),
            };
        drop(inflight);
        shared
            .metrics
            .gateway_errors
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
        tracing::debug!(endpoint = %ep.addr, reason, attempt, "upstream attempt failed");
        last = (status, reason);
        if !retry {
            break;
        }
        failed = Some(ep);
    }
    let (status, reason) = last;
    (
        error_response(status, reason, None),
        Ending::Gateway {
            status,
            failure: true,
        },
    )
}

fn upstream_response(
    resp: Response<Incoming>,
    edits: &[Edit],
    inflight: InFlight,
    deadline: Instant,
) -> Response<RespBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // Only the gateway says a response is its own.
    parts.headers.remove("x-rampart-origin");
    parts.headers.remove("x-rampart-error");
    apply(edits, &mut parts.headers);
    let body = Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
        _inflight: inflight,
    };
    Response::from_parts(parts, body.boxed())
}

/// An upstream body that fails once the request's total deadline passes, and keeps the
/// endpoint's in-flight count until it ends.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    _inflight: InFlight,
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err("upstream body exceeded the total timeout".into())));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn dot_segments_are_resolved() {
        for (input, want) in [
            ("/a/b", "/a/b"),
            ("/public/../admin/x", "/admin/x"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2e/admin", "/admin"),
            ("/a/./b/.", "/a/b/"),
            ("/../../etc", "/etc"),
            ("/a/..", "/"),
            ("/a/b/../", "/a/"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a/.hidden", "/a/.hidden"),
            ("/", "/"),
        ] {
            assert_eq!(normalize_path(input).unwrap(), want, "{input}");
        }
        assert!(normalize_path("relative").is_none());
    }
}
