-- Names are sealed under a key per person (clr_events.personal, docs/erasure.md): the
-- people table holds the sealed text, null once it is gone; subject_keys holds one key
-- per data subject, and an erased subject keeps its row without key.
ALTER TABLE {schema}.people ALTER COLUMN name DROP NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.subject_keys (
    subject text PRIMARY KEY, key bytea, created_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL)));
