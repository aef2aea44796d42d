-- Results of keyed commands, per actor and key (clr_events.application.postgres).
CREATE TABLE IF NOT EXISTS {schema}.idempotency_keys (
    actor text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,
    status int, body jsonb, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);
