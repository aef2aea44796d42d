-- Per consumer group: the last processed offset per partition, and the inbox of event
-- ids already handled (clr_events.consumers.runner).
CREATE TABLE IF NOT EXISTS {schema}.consumer_checkpoints (
    consumer_group text    NOT NULL,
    topic          text    NOT NULL,
    partition      integer NOT NULL,
    "offset"       bigint  NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);
CREATE TABLE IF NOT EXISTS {schema}.consumer_inbox (
    consumer_group text        NOT NULL,
    source         text        NOT NULL,
    event_id       text        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, source, event_id)
);
