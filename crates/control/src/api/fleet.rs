//! The fleet view.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::AppState;
use axum::Json;
use rampart_api::Fleet;

use super::auth::{Caller, may};
use super::error::ApiResult;
use super::error::doc::BadQuery;
use super::extract::EnvQuery;

#[utoipa::path(get, path = "/v1/fleet", tag = "rampart", params(EnvQuery), responses((status = 200, description = "every gateway of the environment, with its cell, version, hash, last-seen time and last NACK", body = Fleet), BadQuery))]
/// The fleet view of one environment.
pub async fn fleet(c: Caller<may::Read>, EnvQuery(env): EnvQuery) -> ApiResult<Json<Fleet>> {
    let gateways = c.service().fleet(env).await?;
    Ok(Json(Fleet { env, gateways }))
}

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/fleet", get(fleet))
}
