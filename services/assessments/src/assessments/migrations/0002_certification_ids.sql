-- The certification a decision relies on: the id of the ExpertCertified event that made
-- it (named in ApprovedForDecision's certifications) and the training_certification
-- position its row reflects. Rows learned before stay NULL until the next event of
-- their certification.
ALTER TABLE {schema}.expert_certifications
    ADD COLUMN IF NOT EXISTS certification_id text,
    ADD COLUMN IF NOT EXISTS as_of_position bigint;
