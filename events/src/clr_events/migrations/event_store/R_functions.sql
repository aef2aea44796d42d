-- The event store's functions, in schema {schema}: applied again whenever this file
-- changes (CREATE OR REPLACE).

-- The hash chain's one formula (clr_events.store.hashing.chain computes the same in
-- Python): an inlinable SQL function, so the append function and the single-append
-- statement (append_one.sql) use it at no cost.
CREATE OR REPLACE FUNCTION {schema}.event_store_link(
    previous bytea, at_position bigint, at_version bigint, digest bytea
) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN sha256(previous || int8send(at_position) || int8send(at_version) || digest);

-- The version each append of a batch finds its stream at (ord: its place in the batch).
-- A stream's versions run 1, 2, 3 ... with no gap, so "the stream is at N" is two probes
-- of the (stream_id, version) index: N is there (or is 0) and N + 1 is not. Only an
-- append that expects any version, or whose probes fail, reads the stream's last version,
-- a backward scan that reads a page of the stream's index entries. An inlinable SQL
-- function, shared by the append function and the single-append statement at no cost.
CREATE OR REPLACE FUNCTION {schema}.event_store_versions(a_stream_ids text[], a_expected integer[])
RETURNS TABLE (ord bigint, version integer) LANGUAGE sql STABLE AS $$
    SELECT u.ord,
           CASE WHEN u.expected IS NOT NULL
                 AND (u.expected = 0 OR EXISTS (
                      SELECT FROM {schema}.event_store s
                       WHERE s.stream_id = u.stream_id AND s.version = u.expected))
                 AND NOT EXISTS (
                      SELECT FROM {schema}.event_store s
                       WHERE s.stream_id = u.stream_id AND s.version = u.expected + 1)
                THEN u.expected
                ELSE coalesce((SELECT max(s.version) FROM {schema}.event_store s
                                WHERE s.stream_id = u.stream_id), 0)
           END
      FROM unnest(a_stream_ids, a_expected) WITH ORDINALITY AS u(stream_id, expected, ord)
$$;

-- Appends a batch of appends in one round trip (group commit). Per append: a stream, the
-- version it expects (NULL: any) and how many of the flattened events are its own. Each
-- stream appears at most once per batch (the client keeps later appends for the next
-- batch). An append whose expected version is not current is refused alone; the others
-- are written with one version lookup and one INSERT for the whole batch.
-- Out: per append the last position written (NULL when refused) and the stream version
-- (the new one, or the current one when refused).
CREATE OR REPLACE FUNCTION {schema}.event_store_append(
    a_stream_ids      text[],
    a_expected        integer[],
    a_counts          integer[],
    e_event_ids       uuid[],
    e_types           text[],
    e_schema_versions integer[],
    e_data            text[],
    e_metadata        text[],
    e_recorded_at     timestamptz[],
    e_digests         bytea[],
    OUT positions     bigint[],
    OUT versions      integer[]
) LANGUAGE plpgsql
-- Generic plans: with array parameters PostgreSQL would otherwise keep re-planning these
-- statements per call (custom plans), which costs a lone writer about a fifth of its rate.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    head_position bigint;
    head_hash     bytea;
    first_written bigint;
    currents      integer[];
    current       integer;
    offs          integer := 0;
    i             integer;
    j             integer;
    w_positions   bigint[] := '{{}}';
    w_streams     text[] := '{{}}';
    w_versions    integer[] := '{{}}';
    w_events      integer[] := '{{}}';
    w_hashes      bytea[] := '{{}}';
BEGIN
    IF cardinality(a_stream_ids) > 1
       AND cardinality(a_stream_ids) <> (SELECT count(DISTINCT u) FROM unnest(a_stream_ids) u) THEN
        RAISE EXCEPTION 'a stream appears twice in one batch' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT h.position, h.hash INTO head_position, head_hash
      FROM {schema}.event_store_head h WHERE h.singleton FOR UPDATE;
    first_written := head_position;
    SELECT array_agg(v.version ORDER BY v.ord) INTO currents
      FROM {schema}.event_store_versions(a_stream_ids, a_expected) v;
    positions := '{{}}';
    versions := '{{}}';
    FOR i IN 1 .. cardinality(a_stream_ids) LOOP
        current := currents[i];
        IF a_expected[i] IS NOT NULL AND a_expected[i] <> current THEN
            positions := positions || NULL::bigint;
            versions := versions || current;
        ELSE
            FOR j IN 1 .. a_counts[i] LOOP
                head_position := head_position + 1;
                head_hash := {schema}.event_store_link(head_hash, head_position, current + j,
                                                       e_digests[offs + j]);
                w_positions := w_positions || head_position;
                w_streams := w_streams || a_stream_ids[i];
                w_versions := w_versions || (current + j);
                w_events := w_events || (offs + j);
                w_hashes := w_hashes || head_hash;
            END LOOP;
            positions := positions || head_position;
            versions := versions || (current + a_counts[i]);
        END IF;
        offs := offs + a_counts[i];
    END LOOP;
    IF head_position > first_written THEN
        INSERT INTO {schema}.event_store
        SELECT w.position, w.stream_id, w.version, e_event_ids[w.e], e_types[w.e],
               e_schema_versions[w.e], e_data[w.e]::json, e_metadata[w.e]::json,
               e_recorded_at[w.e], w.hash
          FROM unnest(w_positions, w_streams, w_versions, w_events, w_hashes)
               AS w(position, stream_id, version, e, hash);
        UPDATE {schema}.event_store_head SET position = head_position, hash = head_hash
         WHERE singleton;
        -- a wake-up for tailing readers, delivered on commit; never the source of truth
        PERFORM pg_notify('event_store_{schema}', head_position::text);
    END IF;
END $$;

-- The same append, all or nothing within the statement that calls it: when any append is
-- refused it raises (SQLSTATE P0001, the DETAIL a JSON object of what it would have
-- returned: positions and versions) instead of returning, so the whole statement is undone. A unit of work then
-- writes its own rows and its appends in ONE statement (its rows in WITH clauses around
-- this call) and one round trip, committed on its own.
CREATE OR REPLACE FUNCTION {schema}.event_store_append_or_fail(
    a_stream_ids      text[],
    a_expected        integer[],
    a_counts          integer[],
    e_event_ids       uuid[],
    e_types           text[],
    e_schema_versions integer[],
    e_data            text[],
    e_metadata        text[],
    e_recorded_at     timestamptz[],
    e_digests         bytea[],
    OUT positions     bigint[],
    OUT versions      integer[]
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    SELECT a.positions, a.versions INTO positions, versions
      FROM {schema}.event_store_append(a_stream_ids, a_expected, a_counts, e_event_ids, e_types,
                                       e_schema_versions, e_data, e_metadata, e_recorded_at,
                                       e_digests) a;
    IF array_position(positions, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'event_store_append_refused'
              USING DETAIL = json_build_object('positions', positions, 'versions', versions)::text;
    END IF;
END $$;
