-- The training and certification service's own tables, in schema {schema} (safe to run
-- again: an installation made before the migration history is baselined by running it).
CREATE TABLE IF NOT EXISTS {schema}.people (
    person_id text PRIMARY KEY, name text NOT NULL, country text NOT NULL,
    affiliations text[] NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.certifications (
    person_id text NOT NULL, role text NOT NULL, valid_from date NOT NULL,
    valid_until date NOT NULL, revoked_on date, PRIMARY KEY (person_id, role));
