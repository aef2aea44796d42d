-- Which dead letters' originals a group has had redelivered (clr_events.consumers.dlq).
CREATE TABLE IF NOT EXISTS {schema}.dlq_replays (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    dlq_offset     bigint      NOT NULL,
    replayed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition, "offset")
);
