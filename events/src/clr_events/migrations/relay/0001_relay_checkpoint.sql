-- Per relay: the last position read and the last published (clr_events.outbox.relay).
CREATE TABLE IF NOT EXISTS {schema}.relay_checkpoint (
    relay text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL
);
ALTER TABLE {schema}.relay_checkpoint ADD COLUMN IF NOT EXISTS published bigint;
