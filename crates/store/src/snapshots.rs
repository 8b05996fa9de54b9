//! Sealed snapshots, one per environment version, and which of them are verified.

use rampart_api::SnapshotRecord;
use rampart_model::EnumName;
use rampart_model::config::Environment;
use rampart_model::{ContentHash, Snapshot};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::codec::{arg_i64, corrupt, json, now_ms, opt_u64, stored_bool, stored_u64};
use crate::objects::head;
use crate::{Handle, Result, StoreError};

const SNAPSHOT_COLUMNS: &str =
    "SELECT version, hash, body, verified, verified_at, created_at FROM snapshots";

/// Snapshots, on any [`Handle`].
pub trait Snapshots: Handle {
    /// Record the snapshot of `env` at `version`. Storing the same snapshot again is a no-op;
    /// a different one at the same version is [`StoreError::Duplicate`].
    async fn put_snapshot(self, env: Environment, version: u64, snapshot: &Snapshot) -> Result<()> {
        self.atomic(async |c| put_snapshot(c, env, version, snapshot).await)
            .await
    }

    /// The snapshot of `env` at `version`, if one was stored.
    async fn snapshot(self, env: Environment, version: u64) -> Result<Option<SnapshotRecord>> {
        self.run(async |c| {
            let version = arg_i64(version, "version")?;
            let row = sqlx::query(&format!(
                "{SNAPSHOT_COLUMNS} WHERE env = $1 AND version = $2"
            ))
            .bind(env.as_str())
            .bind(version)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| snapshot_from(env, &r)).transpose()
        })
        .await
    }

    /// The newest snapshot of `env` with this hash.
    async fn snapshot_by_hash(
        self,
        env: Environment,
        hash: ContentHash,
    ) -> Result<Option<SnapshotRecord>> {
        self.run(async |c| {
            let row = sqlx::query(&format!(
                "{SNAPSHOT_COLUMNS} WHERE env = $1 AND hash = $2 ORDER BY version DESC LIMIT 1"
            ))
            .bind(env.as_str())
            .bind(hash.to_string())
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| snapshot_from(env, &r)).transpose()
        })
        .await
    }

    /// The snapshot of `env` with the highest version.
    async fn latest_snapshot(self, env: Environment) -> Result<Option<SnapshotRecord>> {
        self.run(async |c| newest(c, env, "").await).await
    }

    /// The last known good snapshot: the verified one with the highest version.
    async fn last_verified(self, env: Environment) -> Result<Option<SnapshotRecord>> {
        self.run(async |c| newest(c, env, "AND verified = 1").await)
            .await
    }

    /// Mark every snapshot of `env` with this hash as verified (soaked at 100% with healthy
    /// gates). Idempotent; [`StoreError::NotFound`] if no snapshot has the hash.
    async fn mark_verified(self, env: Environment, hash: ContentHash) -> Result<()> {
        let hash = hash.to_string();
        self.atomic(async |c| {
            let marked = sqlx::query(
                "UPDATE snapshots SET verified = 1, verified_at = $1 \
                 WHERE env = $2 AND hash = $3 AND verified = 0",
            )
            .bind(now_ms())
            .bind(env.as_str())
            .bind(&hash)
            .execute(&mut *c)
            .await?;
            if marked.rows_affected() == 0 {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM snapshots WHERE env = $1 AND hash = $2",
                )
                .bind(env.as_str())
                .bind(&hash)
                .fetch_one(&mut *c)
                .await?;
                if count == 0 {
                    return Err(StoreError::NotFound {
                        what: format!("a snapshot of {env} with hash {hash}"),
                    });
                }
            }
            Ok(())
        })
        .await
    }
}

impl<H: Handle> Snapshots for H {}

/// The snapshot of `env` with the highest version among those `filter` (SQL after the
/// environment's condition) keeps.
async fn newest(
    c: &mut AnyConnection,
    env: Environment,
    filter: &str,
) -> Result<Option<SnapshotRecord>> {
    let row = sqlx::query(&format!(
        "{SNAPSHOT_COLUMNS} WHERE env = $1 {filter} ORDER BY version DESC LIMIT 1"
    ))
    .bind(env.as_str())
    .fetch_optional(&mut *c)
    .await?;
    row.map(|r| snapshot_from(env, &r)).transpose()
}

async fn put_snapshot(
    c: &mut AnyConnection,
    env: Environment,
    version: u64,
    snapshot: &Snapshot,
) -> Result<()> {
    if snapshot.config().environment != env {
        return Err(StoreError::Invalid {
            reason: format!(
                "a snapshot of {} cannot be stored as one of {env}",
                snapshot.config().environment
            ),
        });
    }
    let v = arg_i64(version, "version")?;
    let hash = snapshot.hash().to_string();
    let body = json(snapshot, "the snapshot")?;
    let inserted = sqlx::query(
        "INSERT INTO snapshots (env, version, hash, body, verified, verified_at, created_at) \
         VALUES ($1, $2, $3, $4, 0, NULL, $5) ON CONFLICT (env, version) DO NOTHING",
    )
    .bind(env.as_str())
    .bind(v)
    .bind(&hash)
    .bind(body)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    if inserted.rows_affected() == 0 {
        let stored: String =
            sqlx::query_scalar("SELECT hash FROM snapshots WHERE env = $1 AND version = $2")
                .bind(env.as_str())
                .bind(v)
                .fetch_one(&mut *c)
                .await?;
        if stored != hash {
            return Err(StoreError::Duplicate {
                what: format!("a different snapshot of {env} at version {version} (hash {stored})"),
            });
        }
        return Ok(());
    }
    let current = head(c, env).await?;
    if version > current {
        return Err(StoreError::Invalid {
            reason: format!(
                "a snapshot of {env} at version {version}, beyond its current version {current}"
            ),
        });
    }
    Ok(())
}

fn snapshot_from(env: Environment, row: &AnyRow) -> Result<SnapshotRecord> {
    let version = stored_u64(row.try_get("version")?, "snapshots.version")?;
    let what = || format!("snapshot of {env} at version {version}");
    let hash_text: String = row.try_get("hash")?;
    let hash = ContentHash::try_from(hash_text).map_err(|e| corrupt(what(), e))?;
    let body: String = row.try_get("body")?;
    let snapshot = Snapshot::from_json(&body).map_err(|e| corrupt(what(), e))?;
    if snapshot.hash() != hash {
        return Err(corrupt(
            what(),
            format!(
                "stored under hash {hash} but its content is {}",
                snapshot.hash()
            ),
        ));
    }
    if snapshot.config().environment != env {
        return Err(corrupt(
            what(),
            format!("it holds the config of {}", snapshot.config().environment),
        ));
    }
    Ok(SnapshotRecord {
        env,
        version,
        hash,
        snapshot,
        verified: stored_bool(row.try_get("verified")?, "snapshots.verified")?,
        verified_at_ms: opt_u64(row.try_get("verified_at")?, "snapshots.verified_at")?,
        created_at_ms: stored_u64(row.try_get("created_at")?, "snapshots.created_at")?,
    })
}
