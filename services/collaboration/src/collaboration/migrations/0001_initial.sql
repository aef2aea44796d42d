-- The collaboration service's own tables, in schema {schema} (safe to run again: an
-- installation made before the migration history is baselined by running it).
CREATE TABLE IF NOT EXISTS {schema}.organisations (
    org_id text PRIMARY KEY, name text NOT NULL, country text NOT NULL,
    sector text NOT NULL, validated_on date);
CREATE INDEX IF NOT EXISTS organisations_country ON {schema}.organisations (country);
CREATE TABLE IF NOT EXISTS {schema}.organisation_labels (
    org_id text NOT NULL, level text NOT NULL, valid_until date NOT NULL,
    withdrawn_on date, expired boolean NOT NULL DEFAULT false,
    stream_version int NOT NULL, PRIMARY KEY (org_id, level));
ALTER TABLE {schema}.organisation_labels ADD COLUMN IF NOT EXISTS renewal_deadline date;
