-- rampart control-plane store, version 1.
--
-- One migration set for SQLite and PostgreSQL, run through sqlx's `Any` driver, so only
-- portable SQL is allowed here: TEXT and BIGINT columns, no SERIAL or AUTOINCREMENT (ids are
-- generated in Rust), timestamps as BIGINT milliseconds since the Unix epoch, booleans as
-- BIGINT 0/1, JSON as TEXT. See `src/store.rs` for what each table means.

-- The current version of each environment: the one row per environment that writers
-- compare-and-set (optimistic concurrency).
CREATE TABLE env_heads (
    env TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);

-- Every version of every configuration object, never updated. `version` is the environment
-- version that the write produced; a NULL body records a deletion.
CREATE TABLE objects (
    env TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT,
    author TEXT NOT NULL,
    change_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (env, kind, name, version)
);

CREATE INDEX objects_by_env_version ON objects (env, version);

-- Every sealed snapshot, one per environment version. `verified` (0/1) is set once the
-- snapshot has soaked at 100% with healthy gates; the newest verified one is the LKG.
CREATE TABLE snapshots (
    env TEXT NOT NULL,
    version BIGINT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    verified BIGINT NOT NULL DEFAULT 0,
    verified_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (env, version)
);

CREATE INDEX snapshots_by_hash ON snapshots (env, hash);

-- Changes: the body (the model `Change` as JSON) is immutable; only `status` and
-- `updated_at` move, by compare-and-set.
CREATE TABLE changes (
    id TEXT NOT NULL PRIMARY KEY,
    env TEXT NOT NULL,
    author TEXT NOT NULL,
    reason TEXT NOT NULL,
    risk TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    base_version BIGINT NOT NULL,
    validation TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX changes_by_env_created ON changes (env, created_at);

-- One approval per approver per change.
CREATE TABLE approvals (
    change_id TEXT NOT NULL REFERENCES changes (id),
    approver TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (change_id, approver)
);

-- API and gateway tokens. Only the SHA-256 of the secret is stored.
CREATE TABLE tokens (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0
);

-- The hash-chained audit log, append-only. `seq` starts at 1 and has no gaps.
CREATE TABLE audit (
    seq BIGINT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- Named lock rows. A transaction that must serialize with its peers starts by updating its
-- row: that takes SQLite's write lock, or the row lock in PostgreSQL, before anything is read.
CREATE TABLE locks (
    name TEXT NOT NULL PRIMARY KEY,
    n BIGINT NOT NULL
);

INSERT INTO locks (name, n) VALUES ('audit', 0);
