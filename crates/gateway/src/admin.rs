//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/cohorts`, `/samples`, `/config`.
//!
//! `/cohorts` serves a [`GatewayReport`](rampart_model::wire::GatewayReport): cumulative
//! per-cohort counters (requests, upstream 5xx, gateway errors, fallbacks, a latency
//! histogram over `LATENCY_BOUNDS_MS`, and whether the local guard tripped). `/samples` serves
//! the recent request samples, credentials replaced by fingerprints.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use crate::live::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/cohorts", get(cohorts))
        .route("/samples", get(samples))
        .route("/config", get(config))
        .with_state(shared)
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
    match shared.current() {
        Some(a) => Json(&a.snapshot).into_response(),
        None => (StatusCode::NOT_FOUND, "no snapshot yet\n").into_response(),
    }
}
