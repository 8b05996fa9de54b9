//! The control plane's persistence: one store, two backends (SQLite and PostgreSQL), one set of
//! migrations, append-only history and optimistic concurrency.
//!
//! # Backends and migrations
//! [`Store::connect`] takes a URL:
//!
//! - `sqlite://path/to/control.db` (or `sqlite:path`): the embedded default. The file and its
//!   parent directory are created if missing (`mode=rwc` is added unless the URL sets a mode),
//!   and every connection runs in WAL mode with foreign keys on, `synchronous = FULL` and a
//!   5 s busy timeout. `sqlite::memory:` works too, on a single connection (for tests).
//! - `postgres://...` (or `postgresql://`): production and high availability. Several
//!   control-plane replicas may share one database; the concurrency rules below hold across
//!   them. `?options=-c%20search_path%3Dschema` selects a schema.
//!
//! Both go through sqlx's `Any` driver, and one migrations directory
//! (`crates/control/migrations`, embedded by `sqlx::migrate!`) serves both. That works
//! because the schema is written in the portable subset the two engines share: `TEXT` and
//! `BIGINT` columns only, no `SERIAL`/`AUTOINCREMENT` (ids are made in Rust, see [`new_id`]),
//! timestamps as `BIGINT` milliseconds since the Unix epoch, booleans as `BIGINT` 0/1, JSON as
//! `TEXT`, `INSERT ... ON CONFLICT ... DO NOTHING` (SQLite 3.24+, PostgreSQL 9.5+), and
//! placeholders written `$1, $2, ...` (PostgreSQL's native form; SQLite reads `$N` as
//! parameter N). The alternative, two dialect variants generated from one source, would
//! buy nothing this schema needs. Migrations are idempotent: connecting runs the ones not yet
//! applied, and nothing else. (sqlx embeds the directory at compile time: touch this file
//! after adding a migration if cargo does not rebuild.)
//!
//! # Tables
//! | table | what | mutability |
//! |---|---|---|
//! | `env_heads(env, version)` | the current version of each environment | compare-and-set |
//! | `objects(env, kind, name, version, body, author, change_id, created_at)` | every version of every object; `body` is the object's JSON, `NULL` for a deletion; `version` is the environment version the write produced | append-only |
//! | `snapshots(env, version, hash, body, verified, verified_at, created_at)` | every sealed [`Snapshot`], one per environment version | append-only, except `verified` (0 → 1) |
//! | `changes(id, env, author, reason, risk, status, body, base_version, validation, created_at, updated_at)` | changes; `body` is the model [`Change`], immutable | `status` by compare-and-set |
//! | `approvals(change_id, approver, at)` | one row per approver per change | append-only |
//! | `tokens(id, name, kind, role, hash, created_at, revoked)` | API and gateway tokens; `hash` is the SHA-256 of the secret | `revoked` (0 → 1) |
//! | `audit(seq, at, actor, action, subject, detail, prev_hash, hash)` | the hash-chained audit log; `seq` starts at 1 with no gaps | append-only |
//! | `locks(name, n)` | rows that serialize writers (only `audit` today) | counter |
//!
//! The configuration of an environment at version V is, for each `(kind, name)`, its newest
//! row with `version <= V`, unless that row is a deletion. Old versions stay readable
//! ([`Store::config_at`], [`Store::object_history`]).
//!
//! # Concurrency
//! - **Optimistic concurrency on environments.** A write carries the version it read.
//!   [`Store::apply_edits`] runs in one transaction that first moves the head with
//!   `UPDATE env_heads SET version = base + 1 WHERE env = $env AND version = $base` and checks
//!   that exactly one row changed. Two writers with the same base cannot both succeed: in
//!   PostgreSQL the second blocks on the row lock, then re-checks its `WHERE` against the
//!   committed row and matches nothing; in SQLite writers are serialized by the database lock.
//!   The loser gets [`StoreError::Conflict`] (HTTP 409), with nothing written, and may re-read
//!   and retry on the new base. No update is lost.
//! - **Compare-and-set on change status** ([`Store::set_change_status`]): the same pattern,
//!   `UPDATE ... WHERE id = $id AND status = $from`; [`StoreError::StatusConflict`] if it moved.
//! - **The audit chain** needs each row to read its predecessor's hash. Appenders first update
//!   the `audit` row of `locks`, which serializes them (row lock in PostgreSQL, write lock in
//!   SQLite), then read the last row and insert the next `seq`.
//! - **SQLite transactions** start with `BEGIN IMMEDIATE`, so a transaction holds the write
//!   lock before it reads anything and never fails by upgrading a stale read snapshot; waiters
//!   queue on the busy timeout. PostgreSQL transactions run at READ COMMITTED, and every
//!   check that matters is made by a conditional write, not by an earlier read.
//! - **Several mutations atomically**: [`Store::begin`] returns a [`StoreTx`] with the same
//!   mutating methods; nothing is visible until [`StoreTx::commit`]. Any error inside it
//!   poisons it (PostgreSQL aborts the transaction anyway): `commit` then rolls back and
//!   returns [`StoreError::Aborted`]. Take locks in the order environment head, then change
//!   status, then audit (append audit rows last) to stay clear of deadlocks in PostgreSQL.
//!
//! # Not stored
//! [`Config::settings`] is not an [`Object`] kind, so no edit can change it and
//! [`Store::config`] materializes the default [`Settings`].
//!
//! # Errors
//! Data read back from the database is checked (known enum names, non-negative numbers,
//! parseable JSON, snapshot hashes that match their content); anything else is
//! [`StoreError::Corrupt`], never a panic.

use rampart_api::{ChangeStatus, TokenKind};
use rampart_model::EnumName;
use rampart_model::clock::unix_ms;
use std::collections::HashSet;
use std::fmt;
use std::io::Read as _;
use std::path::Path;

use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::config::{Config, Environment, Settings};
use rampart_model::{Change, ContentHash, Risk, Snapshot};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

mod rollouts;
pub use rollouts::{Decision, Deployment, GatewayState, GatewayWindow, Mark, Marks, RolloutRecord};

/// The embedded migrations, shared by both backends.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Run on every new SQLite connection.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 5000",
];

/// The `prev_hash` of the first audit row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The PostgreSQL channel every deployment is announced on (payload: the environment), in the
/// deploying transaction, so other replicas stream it at once.
pub const DEPLOYED_CHANNEL: &str = "rampart_deployments";

/// The prefix of every token secret.
pub const TOKEN_PREFIX: &str = "rpt_";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write was based on a version of the environment that is no longer current (HTTP 409).
    #[error(
        "version conflict: the write was based on version {expected}, but the environment is at version {actual}; re-read and retry"
    )]
    Conflict { expected: u64, actual: u64 },
    /// A change's status moved since it was read (HTTP 409).
    #[error("change `{id}` is `{actual}`, not `{expected}`: its status moved; re-read and retry")]
    StatusConflict {
        id: String,
        expected: ChangeStatus,
        actual: ChangeStatus,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    Duplicate { what: String },
    /// The caller asked for something the store cannot record as such.
    #[error("invalid store request: {reason}")]
    Invalid { reason: String },
    /// The database holds something this version cannot read.
    #[error("corrupt data in the store: {what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// A [`StoreTx`] had an error and was rolled back instead of committed.
    #[error("the transaction was rolled back because an operation inside it failed")]
    Aborted,
    #[error("unsupported database URL scheme `{scheme}`: expected sqlite:// or postgres://")]
    UnsupportedUrl { scheme: String },
    #[error("cannot create the database directory `{path}`: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(#[source] std::io::Error),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the caller lost a race and may re-read and retry (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. } | StoreError::StatusConflict { .. }
        )
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One stored version of one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectVersion {
    pub kind: ObjectKind,
    pub name: String,
    /// The environment version this write produced.
    pub version: u64,
    /// `None` records a deletion.
    pub object: Option<Object>,
    pub author: String,
    pub change_id: String,
    pub created_at_ms: u64,
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRecord {
    pub env: Environment,
    pub version: u64,
    pub hash: ContentHash,
    pub snapshot: Snapshot,
    pub verified: bool,
    pub verified_at_ms: Option<u64>,
    pub created_at_ms: u64,
}

/// One gateway as the fleet view knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewaySeen {
    pub env: Environment,
    pub id: String,
    pub cell: String,
    /// The gateway's software version.
    pub version: String,
    /// The snapshot hash it last said it runs.
    pub hash: Option<String>,
    pub last_seen_ms: u64,
    /// Its last NACK: `<hash>: <reason>`.
    pub last_nack: Option<String>,
}

/// A change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    /// See [`new_id`].
    pub id: String,
    pub change: Change,
    pub risk: Risk,
    pub status: ChangeStatus,
    /// The environment version the change was written against.
    pub base_version: u64,
    /// Validation errors as JSON, if validation ran and found any.
    pub validation: Option<serde_json::Value>,
}

/// A stored change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRecord {
    pub id: String,
    pub env: Environment,
    pub author: String,
    pub reason: String,
    pub risk: Risk,
    pub status: ChangeStatus,
    pub change: Change,
    pub base_version: u64,
    pub validation: Option<serde_json::Value>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// One approval of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub change_id: String,
    pub approver: String,
    pub at_ms: u64,
}

/// A stored token, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub kind: TokenKind,
    pub role: String,
    pub created_at_ms: u64,
    pub revoked: bool,
}

/// What the caller says about a new audit entry; the store adds `seq`, `at` and `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditRow {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// An audit entry: everything its hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: u64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    /// The previous row's hash, or [`GENESIS_HASH`] for the first row.
    pub prev_hash: String,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub entry: AuditEntry,
    pub hash: String,
}

/// The control plane's store. Cheap to clone (it is a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The PostgreSQL URL, for what needs a connection of its own (LISTEN).
    pg_url: Option<String>,
}

impl Store {
    /// Open (creating if needed) the database at `url` and run the pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let target = Target::parse(url)?;
        let mut options = AnyPoolOptions::new();
        match target.backend {
            Backend::Sqlite => {
                options = if target.memory {
                    // Every connection to `:memory:` is its own database: keep exactly one.
                    options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    options.max_connections(8)
                };
                options = options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                });
            }
            Backend::Postgres => options = options.max_connections(10),
        }
        let pool = options.connect(&target.url).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            backend: target.backend,
            pg_url: (target.backend == Backend::Postgres).then(|| target.url.clone()),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The PostgreSQL URL this store connected with (None on SQLite): replicas LISTEN on it
    /// for deployments made elsewhere (see [`DEPLOYED_CHANNEL`]).
    pub fn pg_url(&self) -> Option<&str> {
        self.pg_url.as_deref()
    }

    /// The connection pool, for what the store does not wrap (advisory locks, LISTEN/NOTIFY,
    /// tests). Writes through it bypass the store's guarantees.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Close every connection; pending operations finish first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Start a transaction for several mutations at once; see [`StoreTx`].
    pub async fn begin(&self) -> Result<StoreTx> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(StoreTx {
            tx,
            failed: false,
            backend: self.backend,
        })
    }

    // ---- environments and objects ----

    /// The current version of `env`: 0 before its first write.
    pub async fn head(&self, env: Environment) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        head(&mut conn, env).await
    }

    /// Append `edits` to `env` as version `base_version + 1`, if `env` is still at
    /// `base_version`; else [`StoreError::Conflict`] and nothing is written. Returns the new
    /// version. Deleting an object that does not exist is [`StoreError::NotFound`]; naming
    /// one object twice, or no edits at all, is [`StoreError::Invalid`].
    pub async fn apply_edits(
        &self,
        env: Environment,
        base_version: u64,
        edits: &[Edit],
        author: &str,
        change_id: &str,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let version = tx
            .apply_edits(env, base_version, edits, author, change_id)
            .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// The current configuration of `env` and its version. Each list is ordered by name (byte
    /// order), the same on both backends.
    pub async fn config(&self, env: Environment) -> Result<(Config, u64)> {
        let mut conn = self.pool.acquire().await?;
        let version = head(&mut conn, env).await?;
        let objects = objects_at(&mut conn, env, version).await?;
        Ok((config_from(env, objects), version))
    }

    /// The configuration of `env` as it was at `version`.
    pub async fn config_at(&self, env: Environment, version: u64) -> Result<Config> {
        let mut conn = self.pool.acquire().await?;
        let current = head(&mut conn, env).await?;
        if version > current {
            return Err(StoreError::NotFound {
                what: format!("version {version} of {env} (its current version is {current})"),
            });
        }
        let objects = objects_at(&mut conn, env, version).await?;
        Ok(config_from(env, objects))
    }

    /// The live objects of `env` at `version`, ordered by kind then name, with their history
    /// metadata.
    pub async fn objects_at(&self, env: Environment, version: u64) -> Result<Vec<ObjectVersion>> {
        let mut conn = self.pool.acquire().await?;
        objects_at(&mut conn, env, version).await
    }

    /// Every stored version of one object, oldest first (deletions included).
    pub async fn object_history(
        &self,
        env: Environment,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Vec<ObjectVersion>> {
        let rows = sqlx::query(
            "SELECT kind, name, version, body, author, change_id, created_at FROM objects \
             WHERE env = $1 AND kind = $2 AND name = $3 ORDER BY version",
        )
        .bind(env.as_str())
        .bind(kind_name(kind))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| object_version_from(env, r)).collect()
    }

    // ---- snapshots ----

    /// Record the snapshot of `env` at `version`. Storing the same snapshot again is a no-op;
    /// a different one at the same version is [`StoreError::Duplicate`].
    pub async fn put_snapshot(
        &self,
        env: Environment,
        version: u64,
        snapshot: &Snapshot,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.put_snapshot(env, version, snapshot).await?;
        tx.commit().await
    }

    /// The snapshot of `env` at `version`, if one was stored.
    pub async fn snapshot(&self, env: Environment, version: u64) -> Result<Option<SnapshotRecord>> {
        let version = arg_i64(version, "version")?;
        let row = sqlx::query(&format!(
            "{SNAPSHOT_COLUMNS} WHERE env = $1 AND version = $2"
        ))
        .bind(env.as_str())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| snapshot_from(env, &r)).transpose()
    }

    /// The newest snapshot of `env` with this hash.
    pub async fn snapshot_by_hash(
        &self,
        env: Environment,
        hash: ContentHash,
    ) -> Result<Option<SnapshotRecord>> {
        let row = sqlx::query(&format!(
            "{SNAPSHOT_COLUMNS} WHERE env = $1 AND hash = $2 ORDER BY version DESC LIMIT 1"
        ))
        .bind(env.as_str())
        .bind(hash.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| snapshot_from(env, &r)).transpose()
    }

    /// The snapshot of `env` with the highest version.
    pub async fn latest_snapshot(&self, env: Environment) -> Result<Option<SnapshotRecord>> {
        let row = sqlx::query(&format!(
            "{SNAPSHOT_COLUMNS} WHERE env = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(env.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| snapshot_from(env, &r)).transpose()
    }

    /// Mark every snapshot of `env` with this hash as verified (soaked at 100% with healthy
    /// gates). Idempotent; [`StoreError::NotFound`] if no snapshot has the hash.
    pub async fn mark_verified(&self, env: Environment, hash: ContentHash) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.mark_verified(env, hash).await?;
        tx.commit().await
    }

    /// The last known good snapshot: the verified one with the highest version.
    pub async fn last_verified(&self, env: Environment) -> Result<Option<SnapshotRecord>> {
        let row = sqlx::query(&format!(
            "{SNAPSHOT_COLUMNS} WHERE env = $1 AND verified = 1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(env.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| snapshot_from(env, &r)).transpose()
    }

    // ---- changes and approvals ----

    /// Record a change. Its id must be new ([`StoreError::Duplicate`]).
    pub async fn insert_change(&self, change: &NewChange) -> Result<ChangeRecord> {
        let mut tx = self.begin().await?;
        let record = tx.insert_change(change).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn change(&self, id: &str) -> Result<Option<ChangeRecord>> {
        let mut conn = self.pool.acquire().await?;
        change(&mut conn, id).await
    }

    /// The newest changes first, of one environment or of all.
    pub async fn list_changes(
        &self,
        env: Option<Environment>,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        let limit = i64::from(limit);
        let rows = match env {
            Some(env) => {
                sqlx::query(&format!(
                    "{CHANGE_COLUMNS} WHERE env = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(env.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{CHANGE_COLUMNS} ORDER BY created_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(change_from).collect()
    }

    /// Move a change from `from` to `to`, if it is still at `from`
    /// ([`StoreError::StatusConflict`] otherwise).
    pub async fn set_change_status(
        &self,
        id: &str,
        from: ChangeStatus,
        to: ChangeStatus,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_change_status(id, from, to).await?;
        tx.commit().await
    }

    /// Record `approver`'s approval of a change. A second approval by the same approver is
    /// [`StoreError::Duplicate`]; an unknown change is [`StoreError::NotFound`]. Who may
    /// approve is for the risk rules to decide, not the store.
    pub async fn add_approval(&self, change_id: &str, approver: &str) -> Result<Approval> {
        let mut tx = self.begin().await?;
        let approval = tx.add_approval(change_id, approver).await?;
        tx.commit().await?;
        Ok(approval)
    }

    /// The approvals of a change, oldest first.
    pub async fn approvals(&self, change_id: &str) -> Result<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT change_id, approver, at FROM approvals WHERE change_id = $1 \
             ORDER BY at, approver",
        )
        .bind(change_id)
        .fetch_all(&self.pool)
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
    }

    // ---- tokens ----

    /// Create a token and return it with its secret (`rpt_` and 32 hex digits, from
    /// /dev/urandom). Only the secret's SHA-256 is stored: the secret cannot be shown again.
    pub async fn create_token(
        &self,
        name: &str,
        kind: TokenKind,
        role: &str,
    ) -> Result<(TokenRecord, String)> {
        let mut tx = self.begin().await?;
        let created = tx.create_token(name, kind, role).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The live (not revoked) token with this secret, if any.
    pub async fn token_by_secret(&self, secret: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!("{TOKEN_COLUMNS} WHERE hash = $1 AND revoked = 0"))
            .bind(hash_secret(secret))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    /// Revoke a token; idempotent. [`StoreError::NotFound`] if there is no such token.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.revoke_token(id).await?;
        tx.commit().await
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(&format!("{TOKEN_COLUMNS} ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from).collect()
    }

    // ---- the fleet ----

    /// Record what a gateway said: its identity and the time, and (when given) the snapshot
    /// it runs and its last NACK. Fields given as `None` keep their stored value.
    pub async fn upsert_gateway(&self, seen: &GatewaySeen) -> Result<()> {
        sqlx::query(
            "INSERT INTO gateways (env, id, cell, version, hash, last_seen_ms, last_nack) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (env, id) DO UPDATE SET cell = excluded.cell, \
             version = excluded.version, hash = COALESCE(excluded.hash, gateways.hash), \
             last_seen_ms = excluded.last_seen_ms, \
             last_nack = COALESCE(excluded.last_nack, gateways.last_nack)",
        )
        .bind(seen.env.as_str())
        .bind(&seen.id)
        .bind(&seen.cell)
        .bind(&seen.version)
        .bind(seen.hash.clone())
        .bind(arg_i64(seen.last_seen_ms, "last_seen_ms")?)
        .bind(seen.last_nack.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every gateway of `env`, by id.
    pub async fn gateways(&self, env: Environment) -> Result<Vec<GatewaySeen>> {
        let rows = sqlx::query(
            "SELECT id, cell, version, hash, last_seen_ms, last_nack FROM gateways \
             WHERE env = $1 ORDER BY id",
        )
        .bind(env.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GatewaySeen {
                    env,
                    id: r.try_get("id")?,
                    cell: r.try_get("cell")?,
                    version: r.try_get("version")?,
                    hash: r.try_get("hash")?,
                    last_seen_ms: stored_u64(r.try_get("last_seen_ms")?, "gateways.last_seen_ms")?,
                    last_nack: r.try_get("last_nack")?,
                })
            })
            .collect()
    }

    // ---- audit ----

    /// Append an audit row: the store assigns the next `seq`, the time and the previous row's
    /// hash, then asks `hash` for this row's hash (the chain's hash function lives in
    /// [`crate::audit`]).
    pub async fn append_audit_row<F>(&self, row: &NewAuditRow, hash: F) -> Result<AuditRow>
    where
        F: FnOnce(&AuditEntry) -> String + Send,
    {
        let mut tx = self.begin().await?;
        let appended = tx.append_audit_row(row, hash).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// Every audit row, in `seq` order.
    pub async fn audit_rows(&self) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit \
             ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from).collect()
    }
}

/// A transaction over the store: several mutations that commit together or not at all.
///
/// Dropping it without [`commit`](StoreTx::commit) rolls it back. After any error from one of
/// its methods it is poisoned: `commit` rolls back and returns [`StoreError::Aborted`]. On
/// SQLite it holds the database's write lock from the start, so keep it short.
pub struct StoreTx {
    tx: Transaction<'static, Any>,
    failed: bool,
    backend: Backend,
}

impl fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTx")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl StoreTx {
    /// Commit, unless an operation failed (then roll back and return [`StoreError::Aborted`]).
    pub async fn commit(self) -> Result<()> {
        if self.failed {
            self.tx.rollback().await?;
            return Err(StoreError::Aborted);
        }
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }

    fn track<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// See [`Store::head`].
    pub async fn head(&mut self, env: Environment) -> Result<u64> {
        let r = head(&mut self.tx, env).await;
        self.track(r)
    }

    /// See [`Store::config`].
    pub async fn config(&mut self, env: Environment) -> Result<(Config, u64)> {
        let r = async {
            let version = head(&mut self.tx, env).await?;
            let objects = objects_at(&mut self.tx, env, version).await?;
            Ok((config_from(env, objects), version))
        }
        .await;
        self.track(r)
    }

    /// See [`Store::apply_edits`].
    pub async fn apply_edits(
        &mut self,
        env: Environment,
        base_version: u64,
        edits: &[Edit],
        author: &str,
        change_id: &str,
    ) -> Result<u64> {
        let r = apply_edits(&mut self.tx, env, base_version, edits, author, change_id).await;
        self.track(r)
    }

    /// See [`Store::put_snapshot`].
    pub async fn put_snapshot(
        &mut self,
        env: Environment,
        version: u64,
        snapshot: &Snapshot,
    ) -> Result<()> {
        let r = put_snapshot(&mut self.tx, env, version, snapshot).await;
        self.track(r)
    }

    /// See [`Store::mark_verified`].
    pub async fn mark_verified(&mut self, env: Environment, hash: ContentHash) -> Result<()> {
        let r = mark_verified(&mut self.tx, env, hash).await;
        self.track(r)
    }

    /// See [`Store::insert_change`].
    pub async fn insert_change(&mut self, change: &NewChange) -> Result<ChangeRecord> {
        let r = insert_change(&mut self.tx, change).await;
        self.track(r)
    }

    /// See [`Store::change`].
    pub async fn change(&mut self, id: &str) -> Result<Option<ChangeRecord>> {
        let r = change(&mut self.tx, id).await;
        self.track(r)
    }

    /// See [`Store::set_change_status`].
    pub async fn set_change_status(
        &mut self,
        id: &str,
        from: ChangeStatus,
        to: ChangeStatus,
    ) -> Result<()> {
        let r = set_change_status(&mut self.tx, id, from, to).await;
        self.track(r)
    }

    /// See [`Store::add_approval`].
    pub async fn add_approval(&mut self, change_id: &str, approver: &str) -> Result<Approval> {
        let r = add_approval(&mut self.tx, change_id, approver).await;
        self.track(r)
    }

    /// See [`Store::create_token`].
    pub async fn create_token(
        &mut self,
        name: &str,
        kind: TokenKind,
        role: &str,
    ) -> Result<(TokenRecord, String)> {
        let r = create_token(&mut self.tx, name, kind, role).await;
        self.track(r)
    }

    /// See [`Store::revoke_token`].
    pub async fn revoke_token(&mut self, id: &str) -> Result<()> {
        let r = revoke_token(&mut self.tx, id).await;
        self.track(r)
    }

    /// See [`Store::append_audit_row`].
    pub async fn append_audit_row<F>(&mut self, row: &NewAuditRow, hash: F) -> Result<AuditRow>
    where
        F: FnOnce(&AuditEntry) -> String + Send,
    {
        let r = append_audit_row(&mut self.tx, row, hash).await;
        self.track(r)
    }
}

// ---- helpers: ids, secrets, time ----

/// A fresh id: `prefix`, `_`, 12 hex digits of the time in milliseconds (so ids sort by
/// creation), then 16 random hex digits.
pub fn new_id(prefix: &str) -> Result<String> {
    let random: [u8; 8] = random_bytes()?;
    Ok(format!(
        "{prefix}_{:012x}{}",
        now_ms().max(0),
        hex::encode(random)
    ))
}

/// The stored form of a token secret: lowercase hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(StoreError::Random)?;
    Ok(buf)
}

/// The time as the store's columns hold it.
fn now_ms() -> i64 {
    i64::try_from(unix_ms()).unwrap_or(i64::MAX)
}

fn arg_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid {
        reason: format!("{what} {v} is out of range"),
    })
}

fn stored_u64(v: i64, column: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        what: column.to_owned(),
        reason: format!("negative value {v}"),
    })
}

fn stored_bool(v: i64, column: &str) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(StoreError::Corrupt {
            what: column.to_owned(),
            reason: format!("expected 0 or 1, found {other}"),
        }),
    }
}

fn corrupt(what: impl Into<String>, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

// ---- URLs ----

struct Target {
    backend: Backend,
    url: String,
    memory: bool,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target {
                backend: Backend::Postgres,
                url: url.to_owned(),
                memory: false,
            });
        }
        let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(StoreError::UnsupportedUrl {
                scheme: url.split(':').next().unwrap_or_default().to_owned(),
            });
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let memory = path.is_empty()
            || path == ":memory:"
            || query.is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"));
        if memory {
            return Ok(Target {
                backend: Backend::Sqlite,
                url: url.to_owned(),
                memory: true,
            });
        }
        // Percent-encoded paths are left for SQLite to decode and must already exist.
        if !path.contains('%')
            && let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
        let url = match (query, has_mode) {
            (_, true) => url.to_owned(),
            (Some(_), false) => format!("{url}&mode=rwc"),
            (None, false) => format!("{url}?mode=rwc"),
        };
        Ok(Target {
            backend: Backend::Sqlite,
            url,
            memory: false,
        })
    }
}

// ---- names ----

/// The name an object kind is stored under.
pub fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Product => "product",
        ObjectKind::Upstream => "upstream",
        ObjectKind::Policy => "policy",
        ObjectKind::Route => "route",
        ObjectKind::Flag => "flag",
    }
}

fn parse_kind(s: &str) -> Option<ObjectKind> {
    Some(match s {
        "product" => ObjectKind::Product,
        "upstream" => ObjectKind::Upstream,
        "policy" => ObjectKind::Policy,
        "route" => ObjectKind::Route,
        "flag" => ObjectKind::Flag,
        _ => return None,
    })
}

/// An object's kind and its name (the `id` of routes and policies).
pub fn object_key(object: &Object) -> (ObjectKind, &str) {
    object.key()
}

fn object_body(object: &Object) -> serde_json::Result<String> {
    match object {
        Object::Product(p) => serde_json::to_string(p),
        Object::Upstream(u) => serde_json::to_string(u),
        Object::Policy(p) => serde_json::to_string(p),
        Object::Route(r) => serde_json::to_string(r),
        Object::Flag(f) => serde_json::to_string(f),
    }
}

fn decode_object(kind: ObjectKind, body: &str) -> serde_json::Result<Object> {
    Ok(match kind {
        ObjectKind::Product => Object::Product(serde_json::from_str(body)?),
        ObjectKind::Upstream => Object::Upstream(serde_json::from_str(body)?),
        ObjectKind::Policy => Object::Policy(serde_json::from_str(body)?),
        ObjectKind::Route => Object::Route(serde_json::from_str(body)?),
        ObjectKind::Flag => Object::Flag(serde_json::from_str(body)?),
    })
}

fn parse_env(s: &str) -> Result<Environment> {
    match s {
        "dev" => Ok(Environment::Dev),
        "staging" => Ok(Environment::Staging),
        "prod" => Ok(Environment::Prod),
        other => Err(corrupt("environment", format!("unknown `{other}`"))),
    }
}

fn risk_name(risk: Risk) -> &'static str {
    match risk {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
        Risk::Critical => "critical",
    }
}

fn parse_risk(s: &str) -> Result<Risk> {
    match s {
        "low" => Ok(Risk::Low),
        "medium" => Ok(Risk::Medium),
        "high" => Ok(Risk::High),
        "critical" => Ok(Risk::Critical),
        other => Err(corrupt("changes.risk", format!("unknown risk `{other}`"))),
    }
}

fn parse_status(s: &str, what: &str) -> Result<ChangeStatus> {
    s.parse().map_err(|e| corrupt(what, e))
}

fn parse_token_kind(s: &str) -> Result<TokenKind> {
    match s {
        "user" => Ok(TokenKind::User),
        "gateway" => Ok(TokenKind::Gateway),
        other => Err(corrupt("tokens.kind", format!("unknown kind `{other}`"))),
    }
}

// ---- operations on one connection (a pooled connection or a transaction) ----

async fn head(conn: &mut AnyConnection, env: Environment) -> Result<u64> {
    let version: Option<i64> = sqlx::query_scalar("SELECT version FROM env_heads WHERE env = $1")
        .bind(env.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    version.map_or(Ok(0), |v| stored_u64(v, "env_heads.version"))
}

async fn apply_edits(
    conn: &mut AnyConnection,
    env: Environment,
    base_version: u64,
    edits: &[Edit],
    author: &str,
    change_id: &str,
) -> Result<u64> {
    if edits.is_empty() {
        return Err(StoreError::Invalid {
            reason: "a write needs at least one edit".to_owned(),
        });
    }
    // Check and encode everything before touching the database.
    let mut seen = HashSet::with_capacity(edits.len());
    let mut rows = Vec::with_capacity(edits.len());
    for edit in edits {
        let (kind, name, body) = match edit {
            Edit::Upsert(object) => {
                let (kind, name) = object_key(object);
                let body = object_body(object).map_err(|e| StoreError::Invalid {
                    reason: format!("{} `{name}` does not serialize: {e}", kind_name(kind)),
                })?;
                (kind, name, Some(body))
            }
            Edit::Delete { kind, name } => (*kind, name.as_str(), None),
        };
        if !seen.insert((kind_name(kind), name)) {
            return Err(StoreError::Invalid {
                reason: format!("{} `{name}` is edited twice in one write", kind_name(kind)),
            });
        }
        rows.push((kind, name, body));
    }
    let base = arg_i64(base_version, "base version")?;
    let new = base.checked_add(1).ok_or_else(|| StoreError::Invalid {
        reason: "the environment version overflowed".to_owned(),
    })?;

    // Make sure the head row exists, then move it by compare-and-set. The first statement is
    // a write, so on every backend the transaction holds its lock before it reads anything.
    sqlx::query(
        "INSERT INTO env_heads (env, version) VALUES ($1, $2) ON CONFLICT (env) DO NOTHING",
    )
    .bind(env.as_str())
    .bind(0_i64)
    .execute(&mut *conn)
    .await?;
    let moved = sqlx::query("UPDATE env_heads SET version = $1 WHERE env = $2 AND version = $3")
        .bind(new)
        .bind(env.as_str())
        .bind(base)
        .execute(&mut *conn)
        .await?;
    if moved.rows_affected() != 1 {
        let actual = head(conn, env).await?;
        return Err(StoreError::Conflict {
            expected: base_version,
            actual,
        });
    }

    let now = now_ms();
    for (kind, name, body) in rows {
        if body.is_none() {
            let current: Option<Option<String>> = sqlx::query_scalar(
                "SELECT body FROM objects WHERE env = $1 AND kind = $2 AND name = $3 \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(env.as_str())
            .bind(kind_name(kind))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
            if !matches!(current, Some(Some(_))) {
                return Err(StoreError::NotFound {
                    what: format!("{} `{name}` in {env}", kind_name(kind)),
                });
            }
        }
        sqlx::query(
            "INSERT INTO objects (env, kind, name, version, body, author, change_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(env.as_str())
        .bind(kind_name(kind))
        .bind(name)
        .bind(new)
        .bind(body)
        .bind(author)
        .bind(change_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(base_version + 1)
}

async fn objects_at(
    conn: &mut AnyConnection,
    env: Environment,
    version: u64,
) -> Result<Vec<ObjectVersion>> {
    let version = arg_i64(version, "version")?;
    let rows = sqlx::query(
        "SELECT o.kind, o.name, o.version, o.body, o.author, o.change_id, o.created_at \
         FROM objects o \
         WHERE o.env = $1 AND o.body IS NOT NULL AND o.version = ( \
             SELECT MAX(i.version) FROM objects i \
             WHERE i.env = o.env AND i.kind = o.kind AND i.name = o.name AND i.version <= $2)",
    )
    .bind(env.as_str())
    .bind(version)
    .fetch_all(&mut *conn)
    .await?;
    let mut objects = rows
        .iter()
        .map(|r| object_version_from(env, r))
        .collect::<Result<Vec<_>>>()?;
    // Sorted here, not by SQL: PostgreSQL's text order follows the database's collation.
    objects.sort_by(|a, b| {
        (kind_name(a.kind), a.name.as_bytes()).cmp(&(kind_name(b.kind), b.name.as_bytes()))
    });
    Ok(objects)
}

fn object_version_from(env: Environment, row: &AnyRow) -> Result<ObjectVersion> {
    let kind_text: String = row.try_get("kind")?;
    let name: String = row.try_get("name")?;
    let version = stored_u64(row.try_get("version")?, "objects.version")?;
    let kind = parse_kind(&kind_text)
        .ok_or_else(|| corrupt("objects.kind", format!("unknown kind `{kind_text}`")))?;
    let body: Option<String> = row.try_get("body")?;
    let object = body
        .map(|body| {
            decode_object(kind, &body).map_err(|e| {
                corrupt(
                    format!("{kind_text} `{name}` version {version} in {env}"),
                    e,
                )
            })
        })
        .transpose()?;
    if let Some(object) = &object
        && object_key(object).1 != name
    {
        return Err(corrupt(
            format!("{kind_text} `{name}` version {version} in {env}"),
            format!("its body names `{}`", object_key(object).1),
        ));
    }
    Ok(ObjectVersion {
        kind,
        name,
        version,
        object,
        author: row.try_get("author")?,
        change_id: row.try_get("change_id")?,
        created_at_ms: stored_u64(row.try_get("created_at")?, "objects.created_at")?,
    })
}

fn config_from(env: Environment, objects: Vec<ObjectVersion>) -> Config {
    let mut config = Config {
        environment: env,
        settings: Settings::default(),
        products: Vec::new(),
        upstreams: Vec::new(),
        policies: Vec::new(),
        routes: Vec::new(),
        flags: Vec::new(),
    };
    for object in objects.into_iter().filter_map(|o| o.object) {
        config.push(object);
    }
    config
}

const SNAPSHOT_COLUMNS: &str =
    "SELECT version, hash, body, verified, verified_at, created_at FROM snapshots";

async fn put_snapshot(
    conn: &mut AnyConnection,
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
    let body = serde_json::to_string(snapshot).map_err(|e| StoreError::Invalid {
        reason: format!("the snapshot does not serialize: {e}"),
    })?;
    let inserted = sqlx::query(
        "INSERT INTO snapshots (env, version, hash, body, verified, verified_at, created_at) \
         VALUES ($1, $2, $3, $4, 0, NULL, $5) ON CONFLICT (env, version) DO NOTHING",
    )
    .bind(env.as_str())
    .bind(v)
    .bind(&hash)
    .bind(body)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        let stored: String =
            sqlx::query_scalar("SELECT hash FROM snapshots WHERE env = $1 AND version = $2")
                .bind(env.as_str())
                .bind(v)
                .fetch_one(&mut *conn)
                .await?;
        if stored != hash {
            return Err(StoreError::Duplicate {
                what: format!("a different snapshot of {env} at version {version} (hash {stored})"),
            });
        }
        return Ok(());
    }
    let current = head(conn, env).await?;
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
    let verified_at: Option<i64> = row.try_get("verified_at")?;
    Ok(SnapshotRecord {
        env,
        version,
        hash,
        snapshot,
        verified: stored_bool(row.try_get("verified")?, "snapshots.verified")?,
        verified_at_ms: verified_at
            .map(|v| stored_u64(v, "snapshots.verified_at"))
            .transpose()?,
        created_at_ms: stored_u64(row.try_get("created_at")?, "snapshots.created_at")?,
    })
}

async fn mark_verified(
    conn: &mut AnyConnection,
    env: Environment,
    hash: ContentHash,
) -> Result<()> {
    let hash = hash.to_string();
    let marked = sqlx::query(
        "UPDATE snapshots SET verified = 1, verified_at = $1 \
         WHERE env = $2 AND hash = $3 AND verified = 0",
    )
    .bind(now_ms())
    .bind(env.as_str())
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    if marked.rows_affected() == 0 {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM snapshots WHERE env = $1 AND hash = $2")
                .bind(env.as_str())
                .bind(&hash)
                .fetch_one(&mut *conn)
                .await?;
        if count == 0 {
            return Err(StoreError::NotFound {
                what: format!("a snapshot of {env} with hash {hash}"),
            });
        }
    }
    Ok(())
}

const CHANGE_COLUMNS: &str = "SELECT id, env, author, reason, risk, status, body, base_version, \
     validation, created_at, updated_at FROM changes";

async fn insert_change(conn: &mut AnyConnection, new: &NewChange) -> Result<ChangeRecord> {
    let body = serde_json::to_string(&new.change).map_err(|e| StoreError::Invalid {
        reason: format!("the change does not serialize: {e}"),
    })?;
    let validation = new.validation.as_ref().map(serde_json::Value::to_string);
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO changes (id, env, author, reason, risk, status, body, base_version, \
         validation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
    )
    .bind(new.id.as_str())
    .bind(new.change.environment.as_str())
    .bind(new.change.author.as_str())
    .bind(new.change.reason.as_str())
    .bind(risk_name(new.risk))
    .bind(new.status.as_str())
    .bind(body)
    .bind(arg_i64(new.base_version, "base version")?)
    .bind(validation)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
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
}

async fn change(conn: &mut AnyConnection, id: &str) -> Result<Option<ChangeRecord>> {
    let row = sqlx::query(&format!("{CHANGE_COLUMNS} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(change_from).transpose()
}

fn change_from(row: &AnyRow) -> Result<ChangeRecord> {
    let id: String = row.try_get("id")?;
    let what = || format!("change `{id}`");
    let env = parse_env(&row.try_get::<String, _>("env")?)?;
    let body: String = row.try_get("body")?;
    let change: Change = serde_json::from_str(&body).map_err(|e| corrupt(what(), e))?;
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
        .map(|v| serde_json::from_str(&v).map_err(|e| corrupt(what(), e)))
        .transpose()?;
    Ok(ChangeRecord {
        env,
        author: row.try_get("author")?,
        reason: row.try_get("reason")?,
        risk: parse_risk(&row.try_get::<String, _>("risk")?)?,
        status: parse_status(&row.try_get::<String, _>("status")?, "changes.status")?,
        change,
        base_version: stored_u64(row.try_get("base_version")?, "changes.base_version")?,
        validation,
        created_at_ms: stored_u64(row.try_get("created_at")?, "changes.created_at")?,
        updated_at_ms: stored_u64(row.try_get("updated_at")?, "changes.updated_at")?,
        id,
    })
}

async fn set_change_status(
    conn: &mut AnyConnection,
    id: &str,
    from: ChangeStatus,
    to: ChangeStatus,
) -> Result<()> {
    let moved = sqlx::query(
        "UPDATE changes SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now_ms())
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 1 {
        return Ok(());
    }
    let actual: Option<String> = sqlx::query_scalar("SELECT status FROM changes WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match actual {
        None => Err(StoreError::NotFound {
            what: format!("change `{id}`"),
        }),
        Some(actual) => Err(StoreError::StatusConflict {
            id: id.to_owned(),
            expected: from,
            actual: parse_status(&actual, "changes.status")?,
        }),
    }
}

async fn add_approval(
    conn: &mut AnyConnection,
    change_id: &str,
    approver: &str,
) -> Result<Approval> {
    let at = now_ms();
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
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes WHERE id = $1")
            .bind(change_id)
            .fetch_one(&mut *conn)
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
}

const TOKEN_COLUMNS: &str = "SELECT id, name, kind, role, created_at, revoked FROM tokens";

async fn create_token(
    conn: &mut AnyConnection,
    name: &str,
    kind: TokenKind,
    role: &str,
) -> Result<(TokenRecord, String)> {
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(random_bytes::<16>()?));
    let id = new_id("tok")?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO tokens (id, name, kind, role, hash, created_at, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(kind.as_str())
    .bind(role)
    .bind(hash_secret(&secret))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let record = TokenRecord {
        id,
        name: name.to_owned(),
        kind,
        role: role.to_owned(),
        created_at_ms: stored_u64(now, "tokens.created_at")?,
        revoked: false,
    };
    Ok((record, secret))
}

fn token_from(row: &AnyRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: parse_token_kind(&row.try_get::<String, _>("kind")?)?,
        role: row.try_get("role")?,
        created_at_ms: stored_u64(row.try_get("created_at")?, "tokens.created_at")?,
        revoked: stored_bool(row.try_get("revoked")?, "tokens.revoked")?,
    })
}

async fn revoke_token(conn: &mut AnyConnection, id: &str) -> Result<()> {
    let revoked = sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if revoked.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: format!("token `{id}`"),
        });
    }
    Ok(())
}

async fn append_audit_row<F>(
    conn: &mut AnyConnection,
    row: &NewAuditRow,
    hash: F,
) -> Result<AuditRow>
where
    F: FnOnce(&AuditEntry) -> String + Send,
{
    // Serialize appenders before reading the tail of the chain.
    let locked = sqlx::query("UPDATE locks SET n = n + 1 WHERE name = $1")
        .bind("audit")
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() != 1 {
        return Err(corrupt("locks", "the `audit` lock row is missing"));
    }
    let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
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
    let entry = AuditEntry {
        seq,
        at_ms: stored_u64(at, "audit.at")?,
        actor: row.actor.clone(),
        action: row.action.clone(),
        subject: row.subject.clone(),
        detail: row.detail.clone(),
        prev_hash,
    };
    let hash = hash(&entry);
    sqlx::query(
        "INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(arg_i64(seq, "audit seq")?)
    .bind(at)
    .bind(entry.actor.as_str())
    .bind(entry.action.as_str())
    .bind(entry.subject.as_str())
    .bind(entry.detail.as_str())
    .bind(entry.prev_hash.as_str())
    .bind(hash.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(AuditRow { entry, hash })
}

fn audit_from(row: &AnyRow) -> Result<AuditRow> {
    Ok(AuditRow {
        entry: AuditEntry {
            seq: stored_u64(row.try_get("seq")?, "audit.seq")?,
            at_ms: stored_u64(row.try_get("at")?, "audit.at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            subject: row.try_get("subject")?,
            detail: row.try_get("detail")?,
            prev_hash: row.try_get("prev_hash")?,
        },
        hash: row.try_get("hash")?,
    })
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/c.db", dir.path().display());
        let t = Target::parse(&url).unwrap();
        assert_eq!(t.backend, Backend::Sqlite);
        assert!(t.url.ends_with("?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
        let t = Target::parse("sqlite://x.db?mode=ro").unwrap();
        assert_eq!(t.url, "sqlite://x.db?mode=ro");
        assert!(Target::parse("sqlite::memory:").unwrap().memory);
        assert!(matches!(
            Target::parse("mysql://h/db"),
            Err(StoreError::UnsupportedUrl { scheme }) if scheme == "mysql"
        ));
        let t = Target::parse("postgres://u@h/db").unwrap();
        assert_eq!(t.backend, Backend::Postgres);
    }

    #[test]
    fn statuses_round_trip() {
        for s in ChangeStatus::VARIANTS.iter().copied() {
            assert_eq!(s.as_str().parse::<ChangeStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().to_owned())
            );
        }
        assert!("nope".parse::<ChangeStatus>().is_err());
    }

    #[test]
    fn ids_are_distinct_and_prefixed() {
        let a = new_id("chg").unwrap();
        let b = new_id("chg").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("chg_"));
        assert_eq!(a.len(), 4 + 12 + 16);
    }
}
