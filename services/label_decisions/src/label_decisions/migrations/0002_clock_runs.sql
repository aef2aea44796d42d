-- Each run of a clock job (the expiry run): its id is the causation id of the events it
-- appends, so a clock-made event names its cause like a command's does.
CREATE TABLE IF NOT EXISTS {schema}.clock_runs (
    run_id text PRIMARY KEY, job text NOT NULL, actor text NOT NULL, today date NOT NULL,
    started_at timestamptz NOT NULL, events int NOT NULL);
