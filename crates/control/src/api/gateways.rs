//! Distribution to gateways: the snapshot stream, ACK/NACK, reports and request samples.
//! Gateway tokens only ([`Gateway`]); each request names the gateway in its query
//! ([`GatewayQuery`]).

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use rampart_model::wire::{ConfigAck, GatewayReport, SampleBatch};

use super::auth::Gateway;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, GatewayQuery};
use super::openapi::GATEWAYS_TAG;
use rampart_api::GatewaySeen;

/// The fleet row of the gateway a query names, seen now.
fn seen(gw: &Gateway) -> GatewaySeen {
    let q = &gw.q;
    GatewaySeen {
        env: q.env,
        id: q.id.clone(),
        cell: q.cell.clone(),
        version: q.version.clone(),
        hash: None,
        last_seen_ms: gw.app.service.now_ms(),
        last_nack: None,
    }
}

#[utoipa::path(get, path = "/v1/gateways/stream", tag = GATEWAYS_TAG, params(GatewayQuery), responses((status = 200, description = "text/event-stream of `snapshot` events (id: version, data: snapshot JSON); honours Last-Event-ID", body = String, content_type = "text/event-stream")))]
/// The snapshot stream of one gateway: a `snapshot` event on connect (unless the gateway's
/// `Last-Event-ID` names the newest version already) and on every new snapshot.
pub async fn gateway_stream(gw: Gateway, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    gw.app.service.gateway_seen(&seen(&gw)).await?;
    let last: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let rx = gw.app.subscribe(gw.q.env);
    if rx.borrow().is_none() {
        gw.app.publish(gw.q.env).await;
    }
    let stream = futures_util::stream::unfold((rx, last), |(mut rx, mut last)| async move {
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(p) = current
                && last != Some(p.version)
            {
                last = Some(p.version);
                let event = Event::default()
                    .event("snapshot")
                    .id(p.version.to_string())
                    .data(p.json.as_str());
                return Some((Ok::<_, std::convert::Infallible>(event), (rx, last)));
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(10))))
}

#[utoipa::path(post, path = "/v1/gateways/ack", tag = GATEWAYS_TAG, params(GatewayQuery), request_body(content = ConfigAck, description = "`{ kind: ack, hash }` or `{ kind: nack, hash, reason }`"), responses((status = 204, description = "recorded")))]
/// A gateway's ACK or NACK of a snapshot.
pub async fn gateway_ack(gw: Gateway, Body(ack): Body<ConfigAck>) -> ApiResult<StatusCode> {
    gw.app.service.gateway_ack(seen(&gw), &ack).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/gateways/report", tag = GATEWAYS_TAG, params(GatewayQuery), request_body(content = GatewayReport, description = "the gateway's identity, the snapshot it runs and its counters"), responses((status = 204, description = "recorded")))]
/// A gateway's report: its identity, the snapshot it runs and its counters.
pub async fn gateway_report(
    gw: Gateway,
    Body(report): Body<GatewayReport>,
) -> ApiResult<StatusCode> {
    gw.app.service.gateway_report(gw.q.env, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/gateways/samples", tag = GATEWAYS_TAG, params(GatewayQuery), request_body(content = SampleBatch, description = "recent request samples of the gateway"), responses((status = 204, description = "kept")))]
/// Recent request samples of a gateway, for the impact test. Gateways send only allow-listed
/// headers with credentials redacted; any header that still looks like a credential is
/// redacted here before it is stored.
pub async fn gateway_samples(
    gw: Gateway,
    Body(mut batch): Body<SampleBatch>,
) -> ApiResult<StatusCode> {
    if batch.gateway.id != gw.q.id {
        return Err(ApiError::bad_body(format!(
            "gateway: the batch is from `{}` but the query names `{}`",
            batch.gateway.id, gw.q.id
        )));
    }
    batch
        .samples
        .iter_mut()
        .for_each(rampart_model::wire::RequestSample::redact_credentials);
    gw.app
        .service
        .gateway_samples(gw.q.env, &gw.q.id, &batch)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This resource's routes, all under `/v1/gateways`.
pub(super) fn routes() -> Router<Arc<AppState>> {
    let distribution = Router::new()
        .route("/stream", get(gateway_stream))
        .route("/ack", post(gateway_ack))
        .route("/report", post(gateway_report))
        .route("/samples", post(gateway_samples));
    Router::new().nest("/v1/gateways", distribution)
}
