//! Responses the gateway produces itself, from named constructors. Each carries
//! `x-rampart-origin: gateway`; a refusal or failure also `x-rampart-error` and a JSON body
//! `{"error": …, "policy": …}`.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::headers::{self, Edit, GATEWAY, X_RAMPART_ERROR, X_RAMPART_ORIGIN, X_RATELIMIT_SCOPE};
use super::path::Target;
use super::{Reject, RespBody};
use crate::stats::Ending;
use rampart_eval::DenyReason;

/// A response of the gateway's own with `body`, and `x-rampart-error` if it is a refusal.
fn synthetic(
    status: StatusCode,
    error: Option<&'static str>,
    body: Bytes,
    content_type: &str,
) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(X_RAMPART_ORIGIN, GATEWAY);
    if let Some(error) = error {
        h.insert(X_RAMPART_ERROR, HeaderValue::from_static(error));
    }
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The JSON body of a refusal.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    policy: Option<&'a str>,
}

impl Reject<'_> {
    /// The response that tells the client why the gateway refused or failed its request.
    pub fn into_response(self) -> Response<RespBody> {
        let error = self.code();
        let body = ErrorBody {
            error,
            policy: self.policy(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = synthetic(
            self.status(),
            Some(error),
            Bytes::from(body),
            "application/json",
        );
        if let Reject::Denied(d) = &self
            && d.reason.is_bearer()
        {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, www_authenticate(d.reason));
        }
        if let Reject::RateLimited {
            retry_after,
            tenant,
            ..
        } = self
        {
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            if tenant {
                h.insert(X_RATELIMIT_SCOPE, HeaderValue::from_static("tenant"));
            }
        }
        resp
    }
}

/// `WWW-Authenticate` of a JWT policy's refusal (RFC 6750, section 3): the bare challenge
/// when no token came, `invalid_token` otherwise.
fn www_authenticate(reason: DenyReason) -> HeaderValue {
    if reason == DenyReason::MissingToken {
        HeaderValue::from_static("Bearer")
    } else {
        HeaderValue::from_static(r#"Bearer error="invalid_token""#)
    }
}

/// The one exit of every refusal and failure of the gateway: its response, and how the
/// request ended for the cohort's counters (pingora's `fail_to_proxy`).
pub fn fail(reject: Reject<'_>) -> (Response<RespBody>, Ending) {
    let ending = reject.ending();
    (reject.into_response(), ending)
}

/// A static response policy's answer: its body, content type and headers, then the
/// decision's response edits.
pub fn static_response(
    status: u16,
    body: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    edits: &[Edit],
) -> Response<RespBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Bytes::copy_from_slice(body.as_bytes());
    let mut resp = synthetic(status, None, body, content_type);
    let h = resp.headers_mut();
    for (n, v) in extra {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(n, v);
        }
    }
    headers::apply(edits, h);
    resp
}

/// A 307 to the canonical target of a request whose path had escaped slashes decoded
/// (`settings.paths.escaped_slashes: decode_and_redirect`): the method and body are kept.
pub fn redirect(target: &Target<'_>, query: Option<&str>) -> Response<RespBody> {
    let location = match query {
        Some(q) => format!("{}?{q}", target.path),
        None => target.path.clone().into_owned(),
    };
    let mut resp = synthetic(
        StatusCode::TEMPORARY_REDIRECT,
        None,
        Bytes::new(),
        "text/plain",
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
