//! Changes: list, submit, read, approve, reject, withdraw and apply.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use rampart_api::{
    ApplyResponse, ChangeList, ChangeRecord, ChangeView, EmptyRequest, FieldError, RejectRequest,
    SubmitRequest,
};

use super::MAX_LIST;
use super::auth::{Caller, may};
use super::error::doc::{BadQuery, Conflict, Invalid, NotFound};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Env};
use crate::service::Submission;

/// `?limit=N`: 1 to [`MAX_LIST`], 100 by default; nothing else.
fn list_limit(query: Option<&str>) -> ApiResult<u32> {
    let mut limit = 100;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("limit", v)) => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIST).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_query("invalid `limit`").with_fields(vec![FieldError::new(
                            "limit",
                            format!("expected a number from 1 to {MAX_LIST}"),
                        )])
                    })?;
            }
            _ => {
                return Err(ApiError::bad_query(format!(
                    "unknown query parameter in `{pair}` (only `limit`)"
                )));
            }
        }
    }
    Ok(limit)
}

#[utoipa::path(get, path = "/v1/envs/{env}/changes", tag = "rampart", params(Env, ("limit" = Option<u32>, Query, description = "1 to 500; 100 by default")), responses((status = 200, description = "the newest changes", body = ChangeList), NotFound, BadQuery))]
pub async fn list_changes(
    c: Caller<may::Read>,
    Env(env): Env,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ChangeList>> {
    let limit = list_limit(query.as_deref())?;
    let changes = c.service().list(Some(env), limit).await?;
    Ok(Json(ChangeList { changes }))
}

#[utoipa::path(post, path = "/v1/envs/{env}/changes", tag = "rampart", params(Env), request_body = SubmitRequest, responses((status = 201, description = "the change, approved or awaiting approval", body = ChangeView), Conflict, Invalid))]
pub async fn submit(
    caller: Caller<may::Submit>,
    Env(env): Env,
    Body(b): Body<SubmitRequest>,
) -> ApiResult<(StatusCode, Json<ChangeView>)> {
    let submission = Submission {
        env,
        reason: b.reason,
        declared_impact: b.declared_impact,
        edits: b.edits,
        base_version: b.base_version,
    };
    let view = caller.service().submit(&caller.name, submission).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/v1/changes/{id}", tag = "rampart", params(("id" = String, Path, description = "the change id")), responses((status = 200, description = "the change, its approvals and what it lacks", body = ChangeView), NotFound))]
pub async fn get_change(
    c: Caller<may::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeView>> {
    Ok(Json(c.service().view(&id).await?))
}

#[utoipa::path(post, path = "/v1/changes/{id}/approve", tag = "rampart", params(("id" = String, Path, description = "the change id")), request_body = EmptyRequest, responses((status = 200, description = "the change after the approval", body = ChangeView), NotFound, Conflict))]
pub async fn approve(
    caller: Caller<may::Approve>,
    Path(id): Path<String>,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<ChangeView>> {
    Ok(Json(
        caller
            .service()
            .approve(&id, &caller.name, caller.role)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/changes/{id}/reject", tag = "rampart", params(("id" = String, Path, description = "the change id")), request_body = RejectRequest, responses((status = 200, description = "the rejected change", body = ChangeRecord), NotFound, Conflict))]
pub async fn reject(
    caller: Caller<may::Reject>,
    Path(id): Path<String>,
    Body(b): Body<RejectRequest>,
) -> ApiResult<Json<ChangeRecord>> {
    let record = caller
        .service()
        .reject(&id, &caller.name, &b.reason)
        .await?;
    Ok(Json(record))
}

#[utoipa::path(post, path = "/v1/changes/{id}/withdraw", tag = "rampart", params(("id" = String, Path, description = "the change id")), request_body = EmptyRequest, responses((status = 200, description = "the withdrawn change", body = ChangeRecord), NotFound, Conflict))]
pub async fn withdraw(
    caller: Caller<may::Withdraw>,
    Path(id): Path<String>,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<ChangeRecord>> {
    let record = caller
        .service()
        .withdraw(&id, &caller.name, caller.role)
        .await?;
    Ok(Json(record))
}

#[utoipa::path(post, path = "/v1/changes/{id}/apply", tag = "rampart", params(("id" = String, Path, description = "the change id")), request_body = EmptyRequest, responses((status = 200, description = "the change (rolling out), its candidate snapshot, its rollout, and the hash gateways are now told to run (the first stage; the config itself for an environment's first change)", body = ApplyResponse), NotFound, Conflict))]
pub async fn apply(
    caller: Caller<may::Apply>,
    Path(id): Path<String>,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<ApplyResponse>> {
    let (change, snapshot) = caller.service().apply(&id, &caller.name).await?;
    caller.app.publish(snapshot.env).await;
    Ok(Json(
        caller.service().apply_outcome(change, &snapshot).await?,
    ))
}

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/envs/{env}/changes", get(list_changes).post(submit))
        .route("/v1/changes/{id}", get(get_change))
        .route("/v1/changes/{id}/approve", post(approve))
        .route("/v1/changes/{id}/reject", post(reject))
        .route("/v1/changes/{id}/withdraw", post(withdraw))
        .route("/v1/changes/{id}/apply", post(apply))
}
