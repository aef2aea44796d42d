-- The event store of one service, in schema {schema}: its tables and the append-only
-- trigger. Safe to run again (an installation made before the migration history is
-- baselined by running it).
--
-- Positions are contiguous and commit-ordered: they are assigned under the row lock of
-- event_store_head, which is held until the appending transaction commits, so position
-- N+1 cannot be handed out before the transaction holding N has committed (or rolled
-- back, handing N out again). A sequence or identity column would burn numbers on
-- conflicts and rollbacks and let a later position commit first.

CREATE TABLE IF NOT EXISTS {schema}.event_store (
    position       bigint      PRIMARY KEY,
    stream_id      text        NOT NULL,
    version        integer     NOT NULL CHECK (version > 0),
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    schema_version integer     NOT NULL,
    data           json        NOT NULL,  -- json, not jsonb: the exact bytes that were hashed
    metadata       json        NOT NULL,
    recorded_at    timestamptz NOT NULL,
    hash           bytea       NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE TABLE IF NOT EXISTS {schema}.event_store_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL,
    hash      bytea   NOT NULL
);
INSERT INTO {schema}.event_store_head (singleton, position, hash)
VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT DO NOTHING;

-- Append-only (R15): stored events are never updated or deleted.
CREATE OR REPLACE FUNCTION {schema}.event_store_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event store is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS event_store_append_only ON {schema}.event_store;
CREATE TRIGGER event_store_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON {schema}.event_store FOR EACH STATEMENT EXECUTE FUNCTION {schema}.event_store_refuse_change();
