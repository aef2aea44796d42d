-- Webhook subscriptions (projections.webhooks): where to deliver, which event types, the
-- signing secrets (the previous one kept while a rotation overlaps), the delivery state.
-- Safe to run again: installations made before it had the table by idempotent DDL.
CREATE TABLE IF NOT EXISTS {schema}.webhook_subscriptions (
    id text PRIMARY KEY,
    url text NOT NULL,
    description text NOT NULL DEFAULT '',
    types text[],
    secret text NOT NULL,
    previous_secret text,
    previous_secret_expires_at timestamptz,
    state text NOT NULL CHECK (state IN ('active', 'paused', 'dead')),
    position bigint NOT NULL CHECK (position >= 0),
    revision bigint NOT NULL DEFAULT 1,
    delivered bigint NOT NULL DEFAULT 0,
    failures integer NOT NULL DEFAULT 0,
    failing_since timestamptz,
    last_status integer,
    last_error text,
    last_attempt_at timestamptz,
    next_attempt_at timestamptz,
    last_delivered_at timestamptz,
    dead_reason text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
