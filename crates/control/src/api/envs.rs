//! An environment: its config, flags and newest snapshot, and rollback to its LKG.

use axum::Json;
use axum::extract::{Path, State};
use rampart_api::{ConfigResponse, EmptyRequest, FlagsResponse, SnapshotRecord, SnapshotRef};
use rampart_model::Flag;

use super::St;
use super::auth::{Caller, may};
use super::error::ApiResult;
use super::error::doc::{BadBody, Conflict, Denied, NotFound};
use super::extract::{Body, Env};
use crate::service::ServiceError;

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/config",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the config and its version", body = ConfigResponse), Denied, NotFound),
    security(("bearer" = []))
)]
pub async fn get_config(
    State(s): St,
    _: Caller<may::Read>,
    Env(env): Env,
) -> ApiResult<Json<ConfigResponse>> {
    let (config, version) = s.service.config(env).await?;
    Ok(Json(ConfigResponse { version, config }))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/flags",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the flags and the version", body = FlagsResponse), Denied, NotFound),
    security(("bearer" = []))
)]
pub async fn get_flags(
    State(s): St,
    _: Caller<may::Read>,
    Env(env): Env,
) -> ApiResult<Json<FlagsResponse>> {
    let (config, version) = s.service.config(env).await?;
    Ok(Json(FlagsResponse {
        version,
        flags: config.flags,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/flags/{name}",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod"), ("name" = String, Path, description = "the flag's name")),
    responses((status = 200, description = "the flag", body = Flag), Denied, NotFound),
    security(("bearer" = []))
)]
pub async fn get_flag(
    State(s): St,
    _: Caller<may::Read>,
    Env(env): Env,
    Path((_env, name)): Path<(String, String)>,
) -> ApiResult<Json<Flag>> {
    let (config, _) = s.service.config(env).await?;
    let flag = config
        .flags
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| ServiceError::NotFound(format!("flag `{name}` in {env}")))?;
    Ok(Json(flag))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/snapshot",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the newest snapshot", body = SnapshotRecord), Denied, NotFound),
    security(("bearer" = []))
)]
pub async fn get_snapshot(
    State(s): St,
    _: Caller<may::Read>,
    Env(env): Env,
) -> ApiResult<Json<SnapshotRecord>> {
    let snap = s.service.latest_snapshot(env).await?;
    Ok(Json(snap))
}

#[utoipa::path(
    post,
    path = "/v1/envs/{env}/rollback",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    request_body = EmptyRequest,
    responses((status = 200, description = "the snapshot now current: the LKG", body = SnapshotRef), Denied, NotFound, Conflict, BadBody),
    security(("bearer" = []))
)]
pub async fn rollback(
    State(s): St,
    caller: Caller<may::Rollback>,
    Env(env): Env,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<SnapshotRef>> {
    let snap = s.service.rollback(env, &caller.name).await?;
    s.publish(env).await;
    Ok(Json(snap.to_ref()))
}
