-- The form of the snapshots last published on label_decisions.current (projections.current):
-- a newer form republishes every organisation's snapshot once. Safe to run again.
CREATE TABLE IF NOT EXISTS {schema}.current_format (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    format integer NOT NULL
);
