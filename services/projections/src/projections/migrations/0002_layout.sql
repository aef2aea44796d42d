-- The layout version of each read model's active generation (the read model's ``layout``
-- when it was made): code with another layout rebuilds the read model before it writes
-- to it. Generations made before layouts were kept are layout 1 (NULL).
ALTER TABLE {schema}.read_models ADD COLUMN layout integer;
