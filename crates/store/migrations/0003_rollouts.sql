-- rampart control-plane store, version 3: rollouts.
--
-- `deployments`: what gateways run, append-only; the newest row of an environment is streamed
-- to its gateways. A rollout stage deploys the baseline config plus the candidate in scope;
-- a finished rollout deploys the candidate alone; a rollback deploys the LKG.
CREATE TABLE deployments (
    env TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    rollout_id TEXT,
    cause TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (env, seq)
);

-- Writers of deployments take this lock row first, so two transactions never pick the same
-- `seq` (PostgreSQL runs them concurrently at READ COMMITTED; SQLite serializes them anyway).
INSERT INTO locks (name, n) VALUES ('deploy', 0);

-- One row per rollout: its plan, where it is, and the timestamps soak time is computed from.
-- Moved by compare-and-set on `rev`.
CREATE TABLE rollouts (
    id TEXT NOT NULL PRIMARY KEY,
    change_id TEXT NOT NULL REFERENCES changes (id),
    env TEXT NOT NULL,
    risk TEXT NOT NULL,
    state TEXT NOT NULL,
    plan TEXT NOT NULL,
    stage_index BIGINT NOT NULL,
    stage_started_ms BIGINT NOT NULL,
    paused_at_ms BIGINT,
    paused_total_ms BIGINT NOT NULL,
    marks TEXT NOT NULL,
    baseline_version BIGINT NOT NULL,
    candidate_version BIGINT NOT NULL,
    baseline_hash TEXT NOT NULL,
    candidate_hash TEXT NOT NULL,
    last_eval TEXT,
    reason TEXT,
    rev BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE INDEX rollouts_by_env ON rollouts (env, created_at);
CREATE INDEX rollouts_by_state ON rollouts (state);

-- Every decision of every rollout, with its evidence. Append-only.
CREATE TABLE rollout_decisions (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    stage_index BIGINT NOT NULL,
    stage TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    evidence TEXT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);

-- Request samples uploaded by gateways for the impact test; pruned to the newest batches.
CREATE TABLE sample_batches (
    env TEXT NOT NULL,
    id TEXT NOT NULL,
    gateway TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (env, id)
);

CREATE INDEX sample_batches_by_time ON sample_batches (env, at_ms);

-- The last report of each gateway (its cohort counters), for the gates.
ALTER TABLE gateways ADD COLUMN report TEXT;

-- The impact-test report of a change, once it ran.
ALTER TABLE changes ADD COLUMN impact TEXT;
