-- The label decisions service's own tables, in schema {schema} (safe to run again: an
-- installation made before the migration history is baselined by running it).
CREATE TABLE IF NOT EXISTS {schema}.records (
    org_id text NOT NULL, level text NOT NULL, valid_until date, withdrawn_on date,
    expired_until date, stream_version int NOT NULL, PRIMARY KEY (org_id, level));
CREATE INDEX IF NOT EXISTS records_due ON {schema}.records (valid_until)
    WHERE withdrawn_on IS NULL;
