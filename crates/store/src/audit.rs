//! The audit log's rows: appended under a lock so that each reads its predecessor's hash. The
//! hash function itself belongs to the control plane's `audit` module, which the store asks
//! for each new row's hash.

use rampart_api::AuditAction;
use rampart_model::EnumName;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{arg_i64, corrupt, now_ms, stored_u64};
use crate::{Handle, Result};

/// The `prev_hash` of the first audit row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the caller says about a new audit row; the store adds `seq`, `at` and `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditRecord {
    pub actor: String,
    pub action: AuditAction,
    pub subject: String,
    /// The detail as JSON text, kept exactly as given.
    pub detail: String,
}

/// A stored audit row, as stored: everything its hash covers, and the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: u64,
    pub actor: String,
    /// `None` when the stored name is no [`AuditAction`]: the row was edited, and its chain's
    /// verification reports it (it is not [`StoreError::Corrupt`](crate::StoreError), so
    /// that the rest of the log stays readable).
    pub action: Option<AuditAction>,
    pub subject: String,
    pub detail: String,
    /// The previous row's hash, or [`GENESIS_HASH`] for the first row.
    pub prev_hash: String,
    /// Empty while the row is being sealed (see [`AuditLog::append_audit_row`]).
    pub hash: String,
}

/// The audit log, on any [`Handle`].
pub trait AuditLog: Handle {
    /// Append an audit row: the store assigns the next `seq`, the time and the previous row's
    /// hash, then asks `hash` for this row's hash (given the row with its `hash` still empty).
    async fn append_audit_row<F>(self, new: &NewAuditRecord, hash: F) -> Result<AuditRecord>
    where
        F: FnOnce(&AuditRecord) -> String + Send,
    {
        self.atomic(async |c| {
            // Serialize appenders before reading the tail of the chain.
            let locked = sqlx::query("UPDATE locks SET n = n + 1 WHERE name = $1")
                .bind("audit")
                .execute(&mut *c)
                .await?;
            if locked.rows_affected() != 1 {
                return Err(corrupt("locks", "the `audit` lock row is missing"));
            }
            let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *c)
                .await?;
            let (seq, prev_hash) = match last {
                None => (1, GENESIS_HASH.to_owned()),
                Some(last) => {
                    let seq = stored_u64(last.try_get("seq")?, "audit.seq")?;
                    let next = seq
                        .checked_add(1)
                        .ok_or_else(|| corrupt("audit.seq", "the sequence overflowed"))?;
                    (next, last.try_get("hash")?)
                }
            };
            let at = now_ms();
            let mut record = AuditRecord {
                seq,
                at_ms: stored_u64(at, "audit.at")?,
                actor: new.actor.clone(),
                action: Some(new.action),
                subject: new.subject.clone(),
                detail: new.detail.clone(),
                prev_hash,
                hash: String::new(),
            };
            record.hash = hash(&record);
            sqlx::query(
                "INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(arg_i64(seq, "audit seq")?)
            .bind(at)
            .bind(record.actor.as_str())
            .bind(new.action.as_str())
            .bind(record.subject.as_str())
            .bind(record.detail.as_str())
            .bind(record.prev_hash.as_str())
            .bind(record.hash.as_str())
            .execute(&mut *c)
            .await?;
            Ok(record)
        })
        .await
    }

    /// Every audit row, in `seq` order.
    async fn audit_rows(self) -> Result<Vec<AuditRecord>> {
        self.run(async |c| {
            let rows = sqlx::query(
                "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit \
                 ORDER BY seq",
            )
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(audit_from).collect()
        })
        .await
    }
}

impl<H: Handle> AuditLog for H {}

fn audit_from(row: &AnyRow) -> Result<AuditRecord> {
    let action: String = row.try_get("action")?;
    Ok(AuditRecord {
        seq: stored_u64(row.try_get("seq")?, "audit.seq")?,
        at_ms: stored_u64(row.try_get("at")?, "audit.at")?,
        actor: row.try_get("actor")?,
        action: action.parse().ok(),
        subject: row.try_get("subject")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
