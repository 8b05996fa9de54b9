//! Distribution to gateways: the snapshot stream, ACK/NACK, reports and request samples.
//! Gateway tokens only ([`Gateway`]); each request names the gateway in its query
//! ([`GatewayQuery`]).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use rampart_api::GatewaySeen;
use rampart_model::clock::unix_ms;
use rampart_model::wire::{ConfigAck, GatewayReport, SampleBatch};

use super::St;
use super::auth::Gateway;
use super::error::doc::GatewayDenied;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, GatewayQuery};

/// The fleet row of the gateway a query names, seen now.
fn seen(q: &GatewayQuery) -> GatewaySeen {
    GatewaySeen {
        env: q.env,
        id: q.id.clone(),
        cell: q.cell.clone(),
        version: q.version.clone(),
        hash: None,
        last_seen_ms: unix_ms(),
        last_nack: None,
    }
}

#[utoipa::path(
    get,
    path = "/v1/gateways/stream",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    responses((status = 200, description = "text/event-stream of `snapshot` events (id: version, data: snapshot JSON); honours Last-Event-ID", body = String, content_type = "text/event-stream"), GatewayDenied),
    security(("bearer" = []))
)]
/// The snapshot stream of one gateway: a `snapshot` event on connect (unless the gateway's
/// `Last-Event-ID` names the newest version already) and on every new snapshot.
pub async fn gateway_stream(
    State(s): St,
    _: Gateway,
    q: GatewayQuery,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    s.service.gateway_seen(&seen(&q)).await?;
    let last: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let rx = s.subscribe(q.env);
    if rx.borrow().is_none() {
        s.publish(q.env).await;
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

#[utoipa::path(
    post,
    path = "/v1/gateways/ack",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    request_body(content = ConfigAck, description = "`{ kind: ack, hash }` or `{ kind: nack, hash, reason }`"),
    responses((status = 204, description = "recorded"), GatewayDenied),
    security(("bearer" = []))
)]
/// A gateway's ACK or NACK of a snapshot.
pub async fn gateway_ack(
    State(s): St,
    _: Gateway,
    q: GatewayQuery,
    Body(ack): Body<ConfigAck>,
) -> ApiResult<StatusCode> {
    s.service.gateway_ack(seen(&q), &ack).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/gateways/report",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    request_body(content = GatewayReport, description = "the gateway's identity, the snapshot it runs and its counters"),
    responses((status = 204, description = "recorded"), GatewayDenied),
    security(("bearer" = []))
)]
/// A gateway's report: its identity, the snapshot it runs and its counters.
pub async fn gateway_report(
    State(s): St,
    _: Gateway,
    q: GatewayQuery,
    Body(report): Body<GatewayReport>,
) -> ApiResult<StatusCode> {
    s.service.gateway_report(q.env, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/gateways/samples",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    request_body(content = SampleBatch, description = "recent request samples of the gateway"),
    responses((status = 204, description = "kept"), GatewayDenied),
    security(("bearer" = []))
)]
/// Recent request samples of a gateway (credentials already fingerprinted), for the impact test.
pub async fn gateway_samples(
    State(s): St,
    _: Gateway,
    q: GatewayQuery,
    Body(batch): Body<SampleBatch>,
) -> ApiResult<StatusCode> {
    if batch.gateway.id != q.id {
        return Err(ApiError::bad_body(format!(
            "gateway: the batch is from `{}` but the query names `{}`",
            batch.gateway.id, q.id
        )));
    }
    s.service.gateway_samples(q.env, &q.id, &batch).await?;
    Ok(StatusCode::NO_CONTENT)
}
