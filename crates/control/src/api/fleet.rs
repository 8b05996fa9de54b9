//! The fleet view.

use axum::Json;
use axum::extract::State;
use rampart_api::Fleet;

use super::St;
use super::auth::{Caller, may};
use super::error::ApiResult;
use super::error::doc::BadQuery;
use super::extract::EnvQuery;
use crate::service::views;

#[utoipa::path(
    get,
    path = "/v1/fleet",
    tag = "rampart",
    params(EnvQuery),
    responses((status = 200, description = "every gateway of the environment, with its cell, version, hash, last-seen time and last NACK", body = Fleet), BadQuery)
)]
/// The fleet view of one environment.
pub async fn fleet(
    State(s): St,
    _: Caller<may::Read>,
    EnvQuery(env): EnvQuery,
) -> ApiResult<Json<Fleet>> {
    let gateways = s.service.fleet(env).await?;
    Ok(Json(Fleet {
        env,
        gateways: gateways.into_iter().map(views::gateway_seen).collect(),
    }))
}
