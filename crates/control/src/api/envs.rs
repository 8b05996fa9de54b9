//! An environment: its config, flags and newest snapshot, and rollback to its LKG.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use axum::Json;
use axum::extract::Path;
use rampart_api::{ConfigResponse, EmptyRequest, FlagsResponse, SnapshotRecord, SnapshotRef};
use rampart_model::Flag;

use super::auth::{Caller, may};
use super::error::ApiResult;
use super::error::doc::{Conflict, NotFound};
use super::extract::{Body, Env};
use crate::service::ServiceError;

#[utoipa::path(get, path = "/v1/envs/{env}/config", tag = "rampart", params(Env), responses((status = 200, description = "the config and its version", body = ConfigResponse), NotFound))]
pub async fn get_config(c: Caller<may::Read>, Env(env): Env) -> ApiResult<Json<ConfigResponse>> {
    let (config, version) = c.service().config(env).await?;
    Ok(Json(ConfigResponse { version, config }))
}

#[utoipa::path(get, path = "/v1/envs/{env}/flags", tag = "rampart", params(Env), responses((status = 200, description = "the flags and the version", body = FlagsResponse), NotFound))]
pub async fn get_flags(c: Caller<may::Read>, Env(env): Env) -> ApiResult<Json<FlagsResponse>> {
    let (config, version) = c.service().config(env).await?;
    Ok(Json(FlagsResponse {
        version,
        flags: config.flags,
    }))
}

// Both path parameters are named here, for utoipa to match them with the `Path` tuple.
#[utoipa::path(get, path = "/v1/envs/{env}/flags/{name}", tag = "rampart", params(("env" = String, Path, description = "dev, staging or prod"), ("name" = String, Path, description = "the flag's name")), responses((status = 200, description = "the flag", body = Flag), NotFound))]
pub async fn get_flag(
    c: Caller<may::Read>,
    Env(env): Env,
    Path((_env, name)): Path<(String, String)>,
) -> ApiResult<Json<Flag>> {
    let (config, _) = c.service().config(env).await?;
    let flag = config
        .flags
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| ServiceError::NotFound(format!("flag `{name}` in {env}")))?;
    Ok(Json(flag))
}

#[utoipa::path(get, path = "/v1/envs/{env}/snapshot", tag = "rampart", params(Env), responses((status = 200, description = "the newest snapshot", body = SnapshotRecord), NotFound))]
pub async fn get_snapshot(c: Caller<may::Read>, Env(env): Env) -> ApiResult<Json<SnapshotRecord>> {
    let snap = c.service().latest_snapshot(env).await?;
    Ok(Json(snap))
}

#[utoipa::path(post, path = "/v1/envs/{env}/rollback", tag = "rampart", params(Env), request_body = EmptyRequest, responses((status = 200, description = "the snapshot now current: the LKG", body = SnapshotRef), NotFound, Conflict))]
pub async fn rollback(
    caller: Caller<may::Rollback>,
    Env(env): Env,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<SnapshotRef>> {
    let snap = caller.service().rollback(env, &caller.name).await?;
    caller.app.publish(env).await;
    Ok(Json(snap.to_ref()))
}

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/envs/{env}/config", get(get_config))
        .route("/v1/envs/{env}/flags", get(get_flags))
        .route("/v1/envs/{env}/flags/{name}", get(get_flag))
        .route("/v1/envs/{env}/snapshot", get(get_snapshot))
        .route("/v1/envs/{env}/rollback", post(rollback))
}
