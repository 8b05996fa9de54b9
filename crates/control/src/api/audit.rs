//! The audit log and its verification.

use axum::Json;
use axum::extract::State;
use rampart_api::{AuditLog, AuditReport};

use super::St;
use super::auth::{Caller, may};
use super::error::ApiResult;
use crate::service::views;

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "rampart",
    responses((status = 200, description = "every audit entry", body = AuditLog))
)]
pub async fn get_audit(State(s): St, _: Caller<may::ReadAudit>) -> ApiResult<Json<AuditLog>> {
    let entries = s.service.audit_entries().await?;
    Ok(Json(AuditLog {
        entries: entries.into_iter().map(views::audit_entry).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "rampart",
    responses((status = 200, description = "the verification report", body = AuditReport))
)]
pub async fn verify_audit(State(s): St, _: Caller<may::ReadAudit>) -> ApiResult<Json<AuditReport>> {
    Ok(Json(s.service.verify_audit().await?))
}
