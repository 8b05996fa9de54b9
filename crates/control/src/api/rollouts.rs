//! Rollouts: list, read, and pause, resume or abort.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use rampart_api::{ControlRequest, RolloutAction, RolloutList, RolloutView};
use rampart_model::parse_name;

use super::St;
use super::auth::Caller;
use super::auth::{User, may};
use super::error::doc::{Conflict, Denied, NotFound};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Env};
use crate::rules::Permission;

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/rollouts",
    tag = "rollouts",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the newest rollouts, newest first", body = RolloutList), Denied, NotFound),
    security(("bearer" = []))
)]
/// The newest rollouts of an environment.
pub async fn list_rollouts(
    State(s): St,
    _: Caller<may::Read>,
    Env(env): Env,
) -> ApiResult<Json<RolloutList>> {
    let rollouts = s.service.rollouts().views(env, 50).await?;
    Ok(Json(RolloutList { rollouts }))
}

#[utoipa::path(
    get,
    path = "/v1/rollouts/{id}",
    tag = "rollouts",
    params(("id" = String, Path, description = "the rollout id")),
    responses((status = 200, description = "the rollout: plan, stage, soak, last evaluation of the gates, decisions with evidence", body = RolloutView), Denied, NotFound),
    security(("bearer" = []))
)]
/// One rollout.
pub async fn get_rollout(
    State(s): St,
    _: Caller<may::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(s.service.rollouts().view(&id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/rollouts/{id}/{action}",
    tag = "rollouts",
    params(("id" = String, Path, description = "the rollout id"), ("action" = RolloutAction, Path, description = "pause, resume or abort")),
    request_body = ControlRequest,
    responses((status = 200, description = "the rollout after the action", body = RolloutView), Denied, NotFound, Conflict),
    security(("bearer" = []))
)]
/// Pause, resume or abort a rollout. Abort returns the environment to its LKG at once, and
/// needs the rollback permission; pause and resume need apply's.
pub async fn control_rollout(
    State(s): St,
    user: User,
    Path((id, action)): Path<(String, String)>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RolloutView>> {
    let needed = if action == RolloutAction::Abort.to_string() {
        Permission::Rollback
    } else {
        Permission::Apply
    };
    let caller: Caller<()> = user.may(needed)?;
    let Body(b) = Body::<ControlRequest>::parse(bytes)?;
    let action = parse_name::<RolloutAction>("rollout action", &action).map_err(|e| {
        ApiError::not_found(format!(
            "no rollout action `{}`: use pause, resume or abort",
            e.value
        ))
    })?;
    let reason = b.reason.as_deref();
    let service = &s.service;
    let view = match action {
        RolloutAction::Pause => service.rollouts().pause(&id, &caller.name, reason).await?,
        RolloutAction::Resume => service.rollouts().resume(&id, &caller.name, reason).await?,
        RolloutAction::Abort => {
            let v = service.rollouts().abort(&id, &caller.name, reason).await?;
            s.publish(v.env).await;
            v
        }
    };
    Ok(Json(view))
}
