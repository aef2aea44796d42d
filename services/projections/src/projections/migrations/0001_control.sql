-- The projections' control schema ({schema}): each read model's active generation, and
-- the rebuilds (safe to run again: an installation made before the migration history is
-- baselined by running it).
CREATE TABLE IF NOT EXISTS {schema}.read_models (
    name        text PRIMARY KEY,
    generation  integer NOT NULL,
    swapped_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.rebuilds (
    name        text NOT NULL,
    generation  integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    applied     bigint NOT NULL DEFAULT 0,
    remaining   bigint,
    state       text NOT NULL DEFAULT 'running',
    PRIMARY KEY (name, generation)
);
