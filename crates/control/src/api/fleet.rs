//! The fleet view.

use axum::Json;
use axum::extract::State;
use rampart_api::Fleet;

use super::St;
use super::auth::{Caller, may};
use super::error::ApiResult;
use super::error::doc::{BadQuery, Denied};
use super::extract::EnvQuery;

#[utoipa::path(
    get,
    path = "/v1/fleet",
    tag = "rampart",
    params(("env" = String, Query, description = "dev, staging or prod")),
    responses((status = 200, description = "every gateway of the environment, with its cell, version, hash, last-seen time and last NACK", body = Fleet), Denied, BadQuery),
    security(("bearer" = []))
)]
/// The fleet view of one environment.
pub async fn fleet(
    State(s): St,
    _: Caller<may::Read>,
    EnvQuery(env): EnvQuery,
) -> ApiResult<Json<Fleet>> {
    let gateways = s.service.fleet(env).await?;
    Ok(Json(Fleet { env, gateways }))
}
