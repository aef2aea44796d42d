-- One event appended to one stream in one statement, for a writer with nothing queued:
-- the append function's per-call cost (a PL/pgSQL call and six statements, each started
-- anew in every transaction) was about a third of a lone writer's time.
--
-- The UPDATE takes the head row lock and, if another transaction moved the head while
-- it waited, works from the head as committed (READ COMMITTED re-reads the locked row):
-- positions stay contiguous and the chain unbroken. The stream's version is read from the
-- statement's snapshot, which may predate that wait. A version read too early shows as
-- either a unique violation on (stream_id, version) or a refusal; the client treats both
-- as "decide again under the lock" and calls the append function, which reads after
-- locking. Parameters: stream, expected version (NULL: any), event id, type, schema
-- version, data, metadata, recorded at, content digest.
WITH stream AS (
    SELECT version FROM {schema}.event_store_versions(ARRAY[$1::text], ARRAY[$2::integer])
), head AS (
    UPDATE {schema}.event_store_head h
       SET position = h.position + 1,
           hash = {schema}.event_store_link(h.hash, h.position + 1, stream.version + 1, $9)
      FROM stream
     WHERE h.singleton AND ($2::integer IS NULL OR $2 = stream.version)
    RETURNING h.position, h.hash, stream.version + 1 AS version,
              pg_notify('{channel}', h.position::text)
), written AS (
    INSERT INTO {schema}.event_store
    SELECT head.position, $1, head.version, $3, $4, $5, $6::json, $7::json, $8, head.hash
      FROM head
    RETURNING position, version
)
SELECT written.position, coalesce(written.version, stream.version)
  FROM stream LEFT JOIN written ON true
