//! Changes: list, submit, read, approve, reject, withdraw and apply.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use rampart_api::{
    ApplyResponse, ChangeList, ChangeRecord, ChangeView, EmptyRequest, FieldError, RejectRequest,
    SubmitRequest,
};

use super::auth::{Caller, may};
use super::error::doc::{BadBody, BadQuery, Conflict, Denied, Invalid, NotFound};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Env};
use super::{MAX_LIST, St};
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

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/changes",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod"), ("limit" = Option<u32>, Query, description = "1 to 500; 100 by default")),
    responses((status = 200, description = "the newest changes", body = ChangeList), Denied, NotFound, BadQuery),
    security(("bearer" = []))
)]
pub async fn list_changes(
    State(s): St,
    _: Caller<may::Read>,
    Env(env): Env,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ChangeList>> {
    let limit = list_limit(query.as_deref())?;
    let changes = s.service.list(Some(env), limit).await?;
    Ok(Json(ChangeList { changes }))
}

#[utoipa::path(
    post,
    path = "/v1/envs/{env}/changes",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    request_body = SubmitRequest,
    responses((status = 201, description = "the change, approved or awaiting approval", body = ChangeView), Denied, BadBody, Conflict, Invalid),
    security(("bearer" = []))
)]
pub async fn submit(
    State(s): St,
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
    let view = s.service.submit(&caller.name, submission).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/v1/changes/{id}",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    responses((status = 200, description = "the change, its approvals and what it lacks", body = ChangeView), Denied, NotFound),
    security(("bearer" = []))
)]
pub async fn get_change(
    State(s): St,
    _: Caller<may::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeView>> {
    Ok(Json(s.service.view(&id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/approve",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    request_body = EmptyRequest,
    responses((status = 200, description = "the change after the approval", body = ChangeView), Denied, NotFound, Conflict, BadBody),
    security(("bearer" = []))
)]
pub async fn approve(
    State(s): St,
    caller: Caller<may::Approve>,
    Path(id): Path<String>,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<ChangeView>> {
    Ok(Json(
        s.service.approve(&id, &caller.name, caller.role).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/reject",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    request_body = RejectRequest,
    responses((status = 200, description = "the rejected change", body = ChangeRecord), Denied, NotFound, Conflict, BadBody),
    security(("bearer" = []))
)]
pub async fn reject(
    State(s): St,
    caller: Caller<may::Reject>,
    Path(id): Path<String>,
    Body(b): Body<RejectRequest>,
) -> ApiResult<Json<ChangeRecord>> {
    let record = s.service.reject(&id, &caller.name, &b.reason).await?;
    Ok(Json(record))
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/withdraw",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    request_body = EmptyRequest,
    responses((status = 200, description = "the withdrawn change", body = ChangeRecord), Denied, NotFound, Conflict, BadBody),
    security(("bearer" = []))
)]
pub async fn withdraw(
    State(s): St,
    caller: Caller<may::Withdraw>,
    Path(id): Path<String>,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<ChangeRecord>> {
    let record = s.service.withdraw(&id, &caller.name, caller.role).await?;
    Ok(Json(record))
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/apply",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    request_body = EmptyRequest,
    responses((status = 200, description = "the change (rolling out), its candidate snapshot, its rollout, and the hash gateways are now told to run (the first stage; the config itself for an environment's first change)", body = ApplyResponse), Denied, NotFound, Conflict, BadBody),
    security(("bearer" = []))
)]
pub async fn apply(
    State(s): St,
    caller: Caller<may::Apply>,
    Path(id): Path<String>,
    Body(EmptyRequest {}): Body<EmptyRequest>,
) -> ApiResult<Json<ApplyResponse>> {
    let (change, snapshot) = s.service.apply(&id, &caller.name).await?;
    s.publish(snapshot.env).await;
    Ok(Json(s.service.apply_outcome(change, &snapshot).await?))
}
