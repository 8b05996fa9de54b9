//! Changes, their status (compare-and-set), their approvals and their impact reports.

use rampart_api::{ChangeRecord, ChangeStatus};
use rampart_model::config::Environment;
use rampart_model::{Change, EnumName, Risk};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{arg_i64, corrupt, from_json, json, now_ms, stored_name, stored_u64};
use crate::{Handle, Result, StoreError};

/// A change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    /// See [`new_id`](crate::new_id).
    pub id: String,
    pub change: Change,
    pub risk: Risk,
    pub status: ChangeStatus,
    /// The environment version the change was written against.
    pub base_version: u64,
    /// Validation errors as JSON, if validation ran and found any.
    pub validation: Option<serde_json::Value>,
}

/// One approval of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub change_id: String,
    pub approver: String,
    pub at_ms: u64,
}

const CHANGE_COLUMNS: &str = "SELECT id, env, author, reason, risk, status, body, base_version, \
     validation, created_at, updated_at FROM changes";

/// Changes and approvals, on any [`Handle`].
pub trait Changes: Handle {
    /// Record a change. Its id must be new ([`StoreError::Duplicate`]).
    async fn insert_change(self, new: &NewChange) -> Result<ChangeRecord> {
        self.run(async |c| {
            let body = json(&new.change, "the change")?;
            let validation = new.validation.as_ref().map(serde_json::Value::to_string);
            let base_version = arg_i64(new.base_version, "base version")?;
            let now = now_ms();
            let inserted = sqlx::query(
                "INSERT INTO changes (id, env, author, reason, risk, status, body, \
                 base_version, validation, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(new.id.as_str())
            .bind(new.change.environment.as_str())
            .bind(new.change.author.as_str())
            .bind(new.change.reason.as_str())
            .bind(new.risk.as_str())
            .bind(new.status.as_str())
            .bind(body)
            .bind(base_version)
            .bind(validation)
            .bind(now)
            .bind(now)
            .execute(&mut *c)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::Duplicate {
                    what: format!("change `{}`", new.id),
                });
            }
            let now = stored_u64(now, "changes.created_at")?;
            Ok(ChangeRecord {
                id: new.id.clone(),
                env: new.change.environment,
                author: new.change.author.clone(),
                reason: new.change.reason.clone(),
                risk: new.risk,
                status: new.status,
                change: new.change.clone(),
                base_version: new.base_version,
                validation: new.validation.clone(),
                created_at_ms: now,
                updated_at_ms: now,
            })
        })
        .await
    }

    async fn change(self, id: &str) -> Result<Option<ChangeRecord>> {
        self.run(async |c| {
            let row = sqlx::query(&format!("{CHANGE_COLUMNS} WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *c)
                .await?;
            row.as_ref().map(change_from).transpose()
        })
        .await
    }

    /// The newest changes first, of one environment or of all.
    async fn list_changes(self, env: Option<Environment>, limit: u32) -> Result<Vec<ChangeRecord>> {
        let limit = i64::from(limit);
        self.run(async |c| {
            let rows =
                match env {
                    Some(env) => sqlx::query(&format!(
                        "{CHANGE_COLUMNS} WHERE env = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                    ))
                    .bind(env.as_str())
                    .bind(limit)
                    .fetch_all(&mut *c)
                    .await?,
                    None => {
                        sqlx::query(&format!(
                            "{CHANGE_COLUMNS} ORDER BY created_at DESC, id DESC LIMIT $1"
                        ))
                        .bind(limit)
                        .fetch_all(&mut *c)
                        .await?
                    }
                };
            rows.iter().map(change_from).collect()
        })
        .await
    }

    /// Move a change from `from` to `to`, if it is still at `from`
    /// ([`StoreError::StatusConflict`] otherwise).
    async fn set_change_status(self, id: &str, from: ChangeStatus, to: ChangeStatus) -> Result<()> {
        self.atomic(async |c| {
            let moved = sqlx::query(
                "UPDATE changes SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            )
            .bind(to.as_str())
            .bind(now_ms())
            .bind(id)
            .bind(from.as_str())
            .execute(&mut *c)
            .await?;
            if moved.rows_affected() == 1 {
                return Ok(());
            }
            let actual: Option<String> =
                sqlx::query_scalar("SELECT status FROM changes WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?;
            match actual {
                None => Err(StoreError::NotFound {
                    what: format!("change `{id}`"),
                }),
                Some(actual) => Err(StoreError::StatusConflict {
                    id: id.to_owned(),
                    expected: from,
                    actual: stored_name("changes.status", "change status", &actual)?,
                }),
            }
        })
        .await
    }

    /// Record `approver`'s approval of a change. A second approval by the same approver is
    /// [`StoreError::Duplicate`]; an unknown change is [`StoreError::NotFound`]. Who may
    /// approve is for the risk rules to decide, not the store.
    async fn add_approval(self, change_id: &str, approver: &str) -> Result<Approval> {
        let at = now_ms();
        self.atomic(async |c| {
            // One statement, no error on either failure: a failed statement would abort a
            // PostgreSQL transaction.
            let inserted = sqlx::query(
                "INSERT INTO approvals (change_id, approver, at) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM changes WHERE id = $1) \
                 ON CONFLICT (change_id, approver) DO NOTHING",
            )
            .bind(change_id)
            .bind(approver)
            .bind(at)
            .execute(&mut *c)
            .await?;
            if inserted.rows_affected() == 0 {
                let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes WHERE id = $1")
                    .bind(change_id)
                    .fetch_one(&mut *c)
                    .await?;
                return Err(if exists == 0 {
                    StoreError::NotFound {
                        what: format!("change `{change_id}`"),
                    }
                } else {
                    StoreError::Duplicate {
                        what: format!("an approval of change `{change_id}` by `{approver}`"),
                    }
                });
            }
            Ok(Approval {
                change_id: change_id.to_owned(),
                approver: approver.to_owned(),
                at_ms: stored_u64(at, "approvals.at")?,
            })
        })
        .await
    }

    /// The approvals of a change, oldest first.
    async fn approvals(self, change_id: &str) -> Result<Vec<Approval>> {
        self.run(async |c| {
            let rows = sqlx::query(
                "SELECT change_id, approver, at FROM approvals WHERE change_id = $1 \
                 ORDER BY at, approver",
            )
            .bind(change_id)
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Approval {
                        change_id: r.try_get("change_id")?,
                        approver: r.try_get("approver")?,
                        at_ms: stored_u64(r.try_get("at")?, "approvals.at")?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Store a change's impact report.
    async fn set_change_impact(self, change_id: &str, impact: &serde_json::Value) -> Result<()> {
        self.run(async |c| {
            sqlx::query("UPDATE changes SET impact = $1 WHERE id = $2")
                .bind(impact.to_string())
                .bind(change_id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
        .await
    }

    /// A change's impact report, if the impact test ran.
    async fn change_impact(self, change_id: &str) -> Result<Option<serde_json::Value>> {
        self.run(async |c| {
            let raw: Option<Option<String>> =
                sqlx::query_scalar("SELECT impact FROM changes WHERE id = $1")
                    .bind(change_id)
                    .fetch_optional(&mut *c)
                    .await?;
            raw.flatten()
                .map(|s| from_json(&s, format!("impact of change {change_id}")))
                .transpose()
        })
        .await
    }
}

impl<H: Handle> Changes for H {}

fn change_from(row: &AnyRow) -> Result<ChangeRecord> {
    let id: String = row.try_get("id")?;
    let what = || format!("change `{id}`");
    let env: Environment = stored_name(
        "changes.env",
        "environment",
        &row.try_get::<String, _>("env")?,
    )?;
    let change: Change = from_json(&row.try_get::<String, _>("body")?, what())?;
    if change.environment != env {
        return Err(corrupt(
            what(),
            format!(
                "filed under {env} but its body is for {}",
                change.environment
            ),
        ));
    }
    let validation = row
        .try_get::<Option<String>, _>("validation")?
        .map(|v| from_json(&v, what()))
        .transpose()?;
    Ok(ChangeRecord {
        env,
        author: row.try_get("author")?,
        reason: row.try_get("reason")?,
        risk: stored_name("changes.risk", "risk", &row.try_get::<String, _>("risk")?)?,
        status: stored_name(
            "changes.status",
            "change status",
            &row.try_get::<String, _>("status")?,
        )?,
        change,
        base_version: stored_u64(row.try_get("base_version")?, "changes.base_version")?,
        validation,
        created_at_ms: stored_u64(row.try_get("created_at")?, "changes.created_at")?,
        updated_at_ms: stored_u64(row.try_get("updated_at")?, "changes.updated_at")?,
        id,
    })
}
