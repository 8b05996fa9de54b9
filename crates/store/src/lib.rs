//! # rampart-store
//!
//! The control plane's persistence: one store, two backends (SQLite and PostgreSQL), one set of
//! migrations, append-only history and optimistic concurrency.
//!
//! # One set of operations, two handles
//! Every operation is written once, as a provided method of one of the operation traits
//! ([`Objects`], [`Snapshots`], [`Changes`], [`Tokens`], [`AuditLog`], [`Gateways`],
//! [`Rollouts`], [`Deployments`], [`Samples`]; `use rampart_store::ops::*` brings them all).
//! They are implemented for both handles, through [`Handle`]:
//!
//! - `&Store`: each operation takes a pooled connection; one that writes several statements
//!   runs in a transaction of its own;
//! - `&mut StoreTx` ([`Store::begin`]): every operation runs in the one transaction, and
//!   nothing is visible until [`StoreTx::commit`].
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
//! (`crates/store/migrations`, embedded by `sqlx::migrate!`) serves both. That works
//! because the schema is written in the portable subset the two engines share: `TEXT` and
//! `BIGINT` columns only, no `SERIAL`/`AUTOINCREMENT` (ids are made in Rust, see [`new_id`]),
//! timestamps as `BIGINT` milliseconds since the Unix epoch, booleans as `BIGINT` 0/1, JSON as
//! `TEXT`, `INSERT ... ON CONFLICT ... DO NOTHING` (SQLite 3.24+, PostgreSQL 9.5+), and
//! placeholders written `$1, $2, ...` (PostgreSQL's native form; SQLite reads `$N` as
//! parameter N). The alternative, two dialect variants generated from one source, would
//! buy nothing this schema needs. Migrations are idempotent: connecting runs the ones not yet
//! applied, and nothing else. (sqlx embeds the directory at compile time: touch `connect.rs`
//! after adding a migration if cargo does not rebuild.)
//!
//! # Tables
//! | table | what | mutability |
//! |---|---|---|
//! | `env_heads(env, version)` | the current version of each environment | compare-and-set |
//! | `objects(env, kind, name, version, body, author, change_id, created_at)` | every version of every object; `body` is the object's JSON, `NULL` for a deletion; `version` is the environment version the write produced | append-only |
//! | `snapshots(env, version, hash, body, verified, verified_at, created_at)` | every sealed [`Snapshot`](rampart_model::Snapshot), one per environment version | append-only, except `verified` (0 → 1) |
//! | `changes(id, env, author, reason, risk, status, body, base_version, validation, created_at, updated_at, impact)` | changes; `body` is the model [`Change`](rampart_model::Change), immutable; `impact` the impact test's report | `status` by compare-and-set |
//! | `approvals(change_id, approver, at)` | one row per approver per change | append-only |
//! | `tokens(id, name, kind, role, hash, created_at, revoked)` | API and gateway tokens; `hash` is the SHA-256 of the secret | `revoked` (0 → 1) |
//! | `audit(seq, at, actor, action, subject, detail, prev_hash, hash)` | the hash-chained audit log; `seq` starts at 1 with no gaps | append-only |
//! | `locks(name, n)` | rows that serialize writers (`audit`, `deploy`) | counter |
//! | `gateways(env, id, cell, version, hash, last_seen_ms, last_nack, report)` | the fleet: each gateway's last word, and its last [`GatewayReport`](rampart_model::wire::GatewayReport) for the gates | overwritten |
//! | `deployments(env, seq, hash, body, rollout_id, cause, created_at)` | what gateways run: the newest row of an environment is streamed to it | append-only |
//! | `rollouts(id, change_id, env, risk, state, plan, stage_index, ...)` | one row per rollout: its plan, its stage, the timestamps soak time is computed from | compare-and-set on `rev` |
//! | `rollout_decisions(rollout_id, seq, at, stage_index, stage, action, actor, evidence)` | every decision with its evidence | append-only |
//! | `sample_batches(env, id, gateway, at_ms, body)` | request samples gateways upload, for the impact test | pruned to the newest |
//!
//! The configuration of an environment at version V is, for each `(kind, name)`, its newest
//! row with `version <= V`, unless that row is a deletion. Old versions stay readable
//! ([`Objects::config_at`], [`Objects::object_history`]).
//!
//! # Concurrency
//! - **Optimistic concurrency on environments.** A write carries the version it read.
//!   [`Objects::apply_edits`] runs in one transaction that first moves the head with
//!   `UPDATE env_heads SET version = base + 1 WHERE env = $env AND version = $base` and checks
//!   that exactly one row changed. Two writers with the same base cannot both succeed: in
//!   PostgreSQL the second blocks on the row lock, then re-checks its `WHERE` against the
//!   committed row and matches nothing; in SQLite writers are serialized by the database lock.
//!   The loser gets [`StoreError::Conflict`] (HTTP 409), with nothing written, and may re-read
//!   and retry on the new base. No update is lost.
//! - **Compare-and-set on change status** ([`Changes::set_change_status`]): the same pattern,
//!   `UPDATE ... WHERE id = $id AND status = $from`; [`StoreError::StatusConflict`] if it moved.
//!   Rollouts compare-and-set on their `rev` ([`Rollouts::update_rollout`]).
//! - **The audit chain** needs each row to read its predecessor's hash. Appenders first update
//!   the `audit` row of `locks`, which serializes them (row lock in PostgreSQL, write lock in
//!   SQLite), then read the last row and insert the next `seq`. Deployments serialize on the
//!   `deploy` row the same way.
//! - **SQLite transactions** start with `BEGIN IMMEDIATE`, so a transaction holds the write
//!   lock before it reads anything and never fails by upgrading a stale read snapshot; waiters
//!   queue on the busy timeout. PostgreSQL transactions run at READ COMMITTED, and every
//!   check that matters is made by a conditional write, not by an earlier read.
//! - **Several mutations atomically**: [`Store::begin`] returns a [`StoreTx`] on which every
//!   operation is available; nothing is visible until [`StoreTx::commit`]. Any error inside it
//!   poisons it (PostgreSQL aborts the transaction anyway): `commit` then rolls back and
//!   returns [`StoreError::Aborted`]. Take locks in the order environment head, then change
//!   status, then audit (append audit rows last) to stay clear of deadlocks in PostgreSQL.
//! - **Across replicas** (PostgreSQL): a deployment is announced with `NOTIFY` on
//!   [`DEPLOYED_CHANNEL`] in its transaction ([`Store::listen_deployments`] hears it), and one
//!   replica at a time may hold an [`AdvisoryLock`].
//!
//! # Settings
//! [`Config::settings`](rampart_model::Config::settings) is stored as the singleton
//! [`Object::Settings`](rampart_model::change::Object::Settings), named `settings`, like any
//! other object (the `objects` table does not constrain kinds, so no migration was needed). An
//! environment without one, such as a store written before settings were objects, reads as the
//! default settings.
//!
//! # Errors
//! Data read back from the database is checked (known enum names, non-negative numbers,
//! parseable JSON, snapshot hashes that match their content); anything else is
//! [`StoreError::Corrupt`], never a panic.

// The operation traits use `async fn`: their futures are `Send` whenever the handle is, which
// callers see because they always call them on a concrete handle (`&Store`, `&mut StoreTx`).
#![allow(async_fn_in_trait)]

mod audit;
mod changes;
mod codec;
mod connect;
mod deployments;
mod error;
mod gateways;
mod handle;
mod objects;
mod rollouts;
mod samples;
mod snapshots;
mod tokens;

pub use audit::{AuditLog, AuditRecord, GENESIS_HASH, NewAuditRecord};
pub use changes::{Approval, Changes, NewChange};
pub use codec::{hash_secret, new_id};
pub use connect::{AdvisoryLock, Backend, DEPLOYED_CHANNEL, DeploymentListener};
pub use deployments::{Deployment, Deployments};
pub use error::StoreError;
pub use gateways::{GatewayState, Gateways};
pub use handle::{Handle, Store, StoreTx};
pub use objects::{ObjectVersion, Objects};
pub use rollouts::{GatewayWindow, Mark, Marks, RolloutRecord, Rollouts};
pub use samples::Samples;
pub use snapshots::Snapshots;
pub use tokens::{TOKEN_PREFIX, Tokens};

/// Every operation trait, to bring all operations into scope: `use rampart_store::ops::*`.
pub mod ops {
    pub use crate::{
        AuditLog as _, Changes as _, Deployments as _, Gateways as _, Objects as _, Rollouts as _,
        Samples as _, Snapshots as _, Tokens as _,
    };
}

type Result<T, E = StoreError> = std::result::Result<T, E>;
