//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/cohorts`, `/samples`, `/config`.
//!
//! It binds loopback unless an admin token is set (the gateway refuses to start otherwise),
//! and with a token every endpoint but the probes (`/healthz`, `/readyz`) needs
//! `Authorization: Bearer <token>`, compared in constant time ([`AdminToken`]).
//!
//! `/cohorts` serves a [`GatewayReport`](rampart_model::wire::GatewayReport): cumulative
//! per-cohort counters (requests, upstream 5xx, gateway errors, fallbacks, a latency
//! histogram over `LATENCY_BOUNDS_MS`, and whether the local guard tripped). `/samples` serves
//! the recent request samples, whose headers are allow-listed (see `proxy::record`).
//! `/config` serves the active snapshot with every credential hash redacted
//! ([`redact_credentials`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::live::Shared;

/// What replaces a credential hash in `/config`.
pub const REDACTED: &str = "[redacted]";

/// Fields of a snapshot that hold credential material: their values never leave the gateway.
const CREDENTIAL_FIELDS: [&str; 3] = ["sha256", "secret", "secrets"];

/// The admin listener's bearer token. Only its SHA-256 is kept; a presented token is hashed
/// and the digests compared in constant time.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the admin token must be 16 to 4096 visible ASCII characters; it has {0}")]
pub struct WeakAdminToken(String);

impl AdminToken {
    /// A token from its text (a file's content is trimmed by the caller).
    pub fn new(token: &str) -> Result<AdminToken, WeakAdminToken> {
        let visible = token.bytes().all(|b| b.is_ascii_graphic());
        if !(16..=4096).contains(&token.len()) || !visible {
            let what = if visible {
                format!("{} characters", token.len())
            } else {
                "a character that is not visible ASCII".to_owned()
            };
            return Err(WeakAdminToken(what));
        }
        Ok(AdminToken(Sha256::digest(token.as_bytes()).into()))
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        self.0.ct_eq(&digest).into()
    }
}

pub fn router(shared: Arc<Shared>, token: Option<AdminToken>) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/cohorts", get(cohorts))
        .route("/samples", get(samples))
        .route("/config", get(config))
        .layer(middleware::from_fn_with_state(token, require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(shared)
}

/// Let a request through if no token is set, or if it carries it as a bearer token.
async fn require_token(
    State(token): State<Option<AdminToken>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(p) if token.matches(p) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "admin token required\n",
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.refresh_gauges();
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &shared.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.current() {
        Some(a) => format!("ready {}\n", a.snapshot.hash()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n").into_response(),
    }
}

async fn cohorts(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.report()).into_response()
}

async fn samples(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.samples.snapshot()).into_response()
}

async fn config(State(shared): State<Arc<Shared>>) -> Response {
    let Some(a) = shared.current() else {
        return (StatusCode::NOT_FOUND, "no snapshot yet\n").into_response();
    };
    match serde_json::to_value(&a.snapshot) {
        Ok(mut v) => {
            redact_credentials(&mut v);
            Json(v).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the snapshot");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Replace the value of every credential field (API keys' `sha256` and any `secret`), at
/// any depth (rollout candidates included), with [`REDACTED`].
pub fn redact_credentials(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if CREDENTIAL_FIELDS.contains(&k.as_str()) {
                    *child = serde_json::Value::String(REDACTED.to_owned());
                } else {
                    redact_credentials(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_credentials),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let t = AdminToken::new("a-long-enough-admin-token").unwrap();
        assert!(t.matches(b"a-long-enough-admin-token"));
        for wrong in [
            &b""[..],
            b"a-long-enough-admin-toke",
            b"a-long-enough-admin-token ",
            b"A-LONG-ENOUGH-ADMIN-TOKEN",
        ] {
            assert!(!t.matches(wrong));
        }
        assert!(!format!("{t:?}").contains("a-long"));
    }

    #[test]
    fn short_or_invisible_tokens_are_refused() {
        for bad in [
            "",
            "short",
            "has a space in it, long enough",
            "tab\tinside-long-enough",
        ] {
            assert!(AdminToken::new(bad).is_err(), "{bad:?}");
        }
        assert!(AdminToken::new(&"x".repeat(4097)).is_err());
    }

    #[test]
    fn credential_fields_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({
            "config": {"policies": [{"auth": {"api_key": {"keys": [{"id": "a", "sha256": "ab12"}]}}}]},
            "rollouts": [{"candidate": {"policies": [{"x": {"secret": "s", "sha256": "cd34"}}]}}],
        });
        redact_credentials(&mut v);
        let text = v.to_string();
        assert!(!text.contains("ab12") && !text.contains("cd34") && !text.contains("\"s\""));
        assert!(text.contains("\"id\":\"a\""));
    }
}
