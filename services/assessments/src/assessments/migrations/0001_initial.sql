-- The assessments service's own tables, in schema {schema} (safe to run again: an
-- installation made before the migration history is baselined by running it).
CREATE TABLE IF NOT EXISTS {schema}.assessments (
    assessment_id text PRIMARY KEY, org_id text NOT NULL, kind text NOT NULL,
    conducted_on date NOT NULL, expert_ids text[] NOT NULL,
    criteria_version text NOT NULL, approved_on date);
CREATE INDEX IF NOT EXISTS assessments_org ON {schema}.assessments (org_id, kind);
-- what the service learns from the other services' events (reference.py)
CREATE TABLE IF NOT EXISTS {schema}.known_organisations (
    org_id text PRIMARY KEY, country text NOT NULL, validated_on date);
CREATE TABLE IF NOT EXISTS {schema}.known_experts (
    person_id text PRIMARY KEY, country text NOT NULL, affiliations text[] NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.expert_certifications (
    person_id text NOT NULL, role text NOT NULL, valid_from date NOT NULL,
    valid_until date NOT NULL, revoked_on date, PRIMARY KEY (person_id, role));
