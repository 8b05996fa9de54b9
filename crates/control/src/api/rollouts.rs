//! Rollouts: list, read, and pause, resume or abort.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use rampart_api::{ControlRequest, RolloutAction, RolloutList, RolloutView};
use rampart_model::parse_name;

use super::auth::Caller;
use super::auth::{User, may};
use super::error::doc::{Conflict, NotFound};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Env};
use crate::rules::Permission;

#[utoipa::path(get, path = "/v1/envs/{env}/rollouts", tag = "rollouts", params(Env), responses((status = 200, description = "the newest rollouts, newest first", body = RolloutList), NotFound))]
/// The newest rollouts of an environment.
pub async fn list_rollouts(c: Caller<may::Read>, Env(env): Env) -> ApiResult<Json<RolloutList>> {
    let rollouts = c.service().rollouts().views(env, 50).await?;
    Ok(Json(RolloutList { rollouts }))
}

#[utoipa::path(get, path = "/v1/rollouts/{id}", tag = "rollouts", params(("id" = String, Path, description = "the rollout id")), responses((status = 200, description = "the rollout: plan, stage, soak, last evaluation of the gates, decisions with evidence", body = RolloutView), NotFound))]
/// One rollout.
pub async fn get_rollout(
    c: Caller<may::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(c.service().rollouts().view(&id).await?))
}

#[utoipa::path(post, path = "/v1/rollouts/{id}/{action}", tag = "rollouts", params(("id" = String, Path, description = "the rollout id"), ("action" = RolloutAction, Path, description = "pause, resume or abort")), request_body = ControlRequest, responses((status = 200, description = "the rollout after the action", body = RolloutView), NotFound, Conflict))]
/// Pause, resume or abort a rollout. Abort returns the environment to its LKG at once, and
/// needs the rollback permission; pause and resume need apply's.
pub async fn control_rollout(
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
    let service = caller.service();
    let view = match action {
        RolloutAction::Pause => service.rollouts().pause(&id, &caller.name, reason).await?,
        RolloutAction::Resume => service.rollouts().resume(&id, &caller.name, reason).await?,
        RolloutAction::Abort => {
            let v = service.rollouts().abort(&id, &caller.name, reason).await?;
            caller.app.publish(v.env).await;
            v
        }
    };
    Ok(Json(view))
}

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/envs/{env}/rollouts", get(list_rollouts))
        .route("/v1/rollouts/{id}", get(get_rollout))
        .route("/v1/rollouts/{id}/{action}", post(control_rollout))
}
