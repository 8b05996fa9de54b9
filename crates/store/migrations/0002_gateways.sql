-- rampart control-plane store, version 2: the fleet view.
--
-- One row per gateway per environment, upserted on every ACK, NACK and report. This is a
-- view of the fleet's last known state, not history: the audit log keeps the NACKs.
CREATE TABLE gateways (
    env TEXT NOT NULL,
    id TEXT NOT NULL,
    cell TEXT NOT NULL,
    version TEXT NOT NULL,
    hash TEXT,
    last_seen_ms BIGINT NOT NULL,
    last_nack TEXT,
    PRIMARY KEY (env, id)
);
