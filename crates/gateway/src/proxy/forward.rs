//! Phase 2, forward: send an allowed request to an endpoint of its pool with the route's
//! timeouts and retries, and pass the upstream's response back with the response edits
//! applied and the total deadline enforced on its body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, Version, request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use rampart_model::config::RetryOn;

use super::headers::{self, Edit};
use super::path::Target;
use super::{BoxError, Reject, RequestCtx, RespBody, body, record, respond};
use crate::stats::Ending;
use crate::upstream::{Endpoint, InFlight, Pool, ReqBody};

/// Where and how to send an allowed request: the plan the decision phase made.
#[derive(Debug)]
pub struct Forward {
    pub pool: Arc<Pool>,
    /// The tenant header, set to the tenant the gateway established.
    pub tenant: Option<(HeaderName, HeaderValue)>,
    /// The consistent-hash key, if the pool hashes.
    pub hash_key: Option<Vec<u8>>,
    pub request_edits: Vec<Edit>,
    pub response_edits: Vec<Edit>,
    /// The route's override of the pool's total timeout.
    pub timeout_ms: Option<u32>,
    /// The route's override of the pool's retry attempts.
    pub retry_attempts: Option<u32>,
    /// The largest request body the route admits.
    pub max_body: u64,
}

/// Why one attempt upstream failed, and whether the pool's retry policy lets it be retried.
/// Its name is the `x-rampart-error` value and the `gateway_errors` reason.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum UpstreamError {
    #[error("cannot connect to the endpoint")]
    #[strum(serialize = "upstream_connect_error")]
    Connect {
        retry: bool,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("the endpoint did not answer in time")]
    #[strum(serialize = "upstream_timeout")]
    Timeout { retry: bool },
    #[error("the request to the endpoint failed")]
    #[strum(serialize = "upstream_error")]
    Failed {
        #[source]
        source: hyper_util::client::legacy::Error,
    },
}

impl UpstreamError {
    /// Whether another attempt may be made (on another endpoint when there is one).
    pub fn may_retry(&self) -> bool {
        match self {
            UpstreamError::Connect { retry, .. } | UpstreamError::Timeout { retry } => *retry,
            UpstreamError::Failed { .. } => false,
        }
    }

    /// The status the client sees when it was the last attempt.
    pub fn status(&self) -> http::StatusCode {
        match self {
            UpstreamError::Timeout { .. } => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// Phase 2, forward: the upstream's response, or the gateway's own when every attempt failed.
pub async fn forward(
    ctx: &RequestCtx<'_>,
    parts: request::Parts,
    body: Incoming,
    target: &Target<'_>,
    fwd: Forward,
) -> (Response<RespBody>, Ending) {
    if body::declared_too_large(&parts.headers, fwd.max_body) {
        return respond::fail(Reject::PayloadTooLarge);
    }
    let (body, exceeded) = body::Capped::new(body, fwd.max_body);
    match send(ctx, parts, (body, &exceeded), target, &fwd).await {
        Ok((resp, status)) => (resp, Ending::Upstream(status)),
        Err(reject) => respond::fail(reject),
    }
}

/// Attempt the request until an endpoint answers, the attempts run out, or a failure may not
/// be retried.
async fn send(
    ctx: &RequestCtx<'_>,
    mut parts: request::Parts,
    (body, exceeded): (body::Capped, &body::Exceeded),
    target: &Target<'_>,
    fwd: &Forward,
) -> Result<(Response<RespBody>, u16), Reject<'static>> {
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
    let deadline = ctx.start + total;
    let retry_on = |r: RetryOn| def.retries.retry_on.contains(&r);

    headers::upstream_request(
        &mut parts,
        &ctx.client.forwarded_for,
        ctx.tls,
        target.authority(),
        fwd.tenant.as_ref(),
        &fwd.request_edits,
    );
    let path = match parts.uri.query() {
        Some(q) => format!("{}?{q}", target.path),
        None => (*target.path).to_owned(),
    };
    let mut body = Some(body);
    let mut failed: Option<Arc<Endpoint>> = None;
    // The last failure: the response is built only if every attempt failed.
    let mut last = Reject::NoHealthyUpstream;
    for attempt in 0..attempts {
        let Some(ep) = pool.pick(fwd.hash_key.as_deref(), failed.as_deref()) else {
            record::gateway_error(ctx, &Reject::NoHealthyUpstream);
            return Err(Reject::NoHealthyUpstream);
        };
        let more = attempt + 1 < attempts;
        let req = request(&mut parts, &ep, &path, body.take(), more)?;
        let inflight = ep.start();
        let wait = read.min(deadline.saturating_duration_since(Instant::now()));
        let error = match tokio::time::timeout(wait, pool.client.request(req)).await {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                if status >= 500 && more && retry_on(RetryOn::ServerError) {
                    failed = Some(ep);
                    continue;
                }
                let resp = upstream_response(resp, &fwd.response_edits, inflight, deadline);
                return Ok((resp, status));
            }
            Ok(Err(source)) if source.is_connect() => UpstreamError::Connect {
                retry: retry_on(RetryOn::ConnectError),
                source,
            },
            Ok(Err(source)) => UpstreamError::Failed { source },
            Err(_) => UpstreamError::Timeout {
                retry: retry_on(RetryOn::Timeout),
            },
        };
        drop(inflight);
        // The client's body crossed the route's limit as it streamed: the client's fault, not
        // the upstream's, so neither counted as an upstream failure nor retried.
        if exceeded.get() {
            return Err(Reject::PayloadTooLarge);
        }
        let retry = error.may_retry();
        last = Reject::Upstream(error);
        record::gateway_error(ctx, &last);
        tracing::debug!(endpoint = %ep.addr, reason = last.code(), attempt, "upstream attempt failed");
        if !retry {
            break;
        }
        failed = Some(ep);
    }
    Err(last)
}

/// The request of one attempt to `ep`. The body goes with the first attempt only (a request
/// with a body is never retried); the headers are cloned while `more` attempts may follow.
fn request(
    parts: &mut request::Parts,
    ep: &Endpoint,
    path: &str,
    body: Option<body::Capped>,
    more: bool,
) -> Result<Request<ReqBody>, Reject<'static>> {
    let body: ReqBody = match body {
        Some(b) => b.boxed(),
        None => Empty::new().map_err(|never| match never {}).boxed(),
    };
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = if more {
        parts.headers.clone()
    } else {
        std::mem::take(&mut parts.headers)
    };
    *req.uri_mut() = format!("http://{}{}", ep.addr, path)
        .parse()
        .map_err(|_| Reject::BadRequestTarget)?;
    Ok(req)
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The upstream's response as the client gets it (pingora's `response_filter`).
fn upstream_response(
    resp: Response<Incoming>,
    edits: &[Edit],
    inflight: InFlight,
    deadline: Instant,
) -> Response<RespBody> {
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_gateway_marks(&mut parts.headers);
    headers::apply(edits, &mut parts.headers);
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
