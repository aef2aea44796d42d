-- The store's transparency log (clr_events.transparency): the signed checkpoints, and
-- every verifier key the log has signed with (kept for ever: old checkpoints). Safe to run
-- again: installations made before this migration had the tables by idempotent DDL.
CREATE TABLE IF NOT EXISTS {schema}.tlog_checkpoints (
    tree_size  bigint      PRIMARY KEY,
    root_hash  bytea       NOT NULL,
    note       text        NOT NULL,
    signed_at  timestamptz NOT NULL,
    published  boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS tlog_checkpoints_unpublished
    ON {schema}.tlog_checkpoints (tree_size) WHERE NOT published;
CREATE TABLE IF NOT EXISTS {schema}.tlog_keys (
    vkey       text        PRIMARY KEY,
    first_used timestamptz NOT NULL
);
