"""The migration runner on the real PostgreSQL: history, order, refusals, baseline, lock."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from clr_events.migrations import Migration, MigrationError, events_migrations, history, migrate
from clr_events.pg import Pool
from clr_events.store.base import NewEvent
from clr_events.store.postgres import PostgresEventStore
from clr_events.transparency.log import TransparencyLog

FIRST = Migration(1, "first", "CREATE TABLE IF NOT EXISTS {schema}.t (x int);")
SECOND = Migration(2, "second", "ALTER TABLE {schema}.t ADD COLUMN y int;")
VIEW = Migration(None, "view", "CREATE OR REPLACE VIEW {schema}.v AS SELECT x FROM {schema}.t;")


async def columns(pool: Pool, schema: str, table: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        schema,
        table,
    )
    return [row[0] for row in rows]


async def test_pending_migrations_are_applied_once_in_order_with_their_history(
    pool: Pool, schema: str
) -> None:
    first = await migrate(pool, schema, "app", [FIRST])
    assert (first.versions, first.baseline) == ([1], False)
    later = await migrate(pool, schema, "app", [FIRST, SECOND, VIEW])
    assert (later.versions, later.repeatables) == ([2], ["view"])
    again = await migrate(pool, schema, "app", [FIRST, SECOND, VIEW])
    assert not again  # nothing pending
    assert await columns(pool, schema, "t") == ["x", "y"]
    rows = await history(pool, schema)
    assert [(r["component"], r["version"], r["name"]) for r in rows] == [
        ("app", 1, "first"),
        ("app", 2, "second"),
        ("app", None, "view"),
    ]
    assert rows[0]["checksum"] == FIRST.checksum
    assert all(r["applied_at"] is not None and not r["baseline"] for r in rows)


async def test_a_changed_applied_migration_is_refused_and_nothing_else_runs(
    pool: Pool, schema: str
) -> None:
    await migrate(pool, schema, "app", [FIRST])
    edited = Migration(1, "first", FIRST.text.replace("x int", "x bigint"))
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(pool, schema, "app", [edited, SECOND])
    assert await columns(pool, schema, "t") == ["x"]  # 0002 did not run


async def test_a_database_newer_than_the_code_is_refused(pool: Pool, schema: str) -> None:
    await migrate(pool, schema, "app", [FIRST, SECOND])
    with pytest.raises(MigrationError, match="newer than the code"):
        await migrate(pool, schema, "app", [FIRST])


async def test_a_repeatable_migration_runs_again_when_it_changes(pool: Pool, schema: str) -> None:
    await migrate(pool, schema, "app", [FIRST, SECOND, VIEW])
    changed = Migration(None, "view", VIEW.text.replace("SELECT x", "SELECT x, y"))
    assert (await migrate(pool, schema, "app", [FIRST, SECOND, changed])).repeatables == ["view"]
    assert await columns(pool, schema, "v") == ["x", "y"]


async def test_a_failing_migration_leaves_nothing_behind(pool: Pool, schema: str) -> None:
    broken = Migration(2, "broken", "ALTER TABLE {schema}.t ADD COLUMN y int; SELECT 1/0;")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(pool, schema, "app", [FIRST, broken])
    # the whole run was one transaction: not even 0001 or the history is there
    assert await pool.fetchval("SELECT to_regclass($1)", f"{schema}.t") is None
    assert await migrate(pool, schema, "app", [FIRST, SECOND])


async def test_instances_starting_together_apply_each_migration_once(
    pool: Pool, schema: str
) -> None:
    results = await asyncio.gather(
        *(migrate(pool, schema, "app", [FIRST, SECOND, VIEW]) for _ in range(4))
    )
    assert sorted(len(r.versions) for r in results) == [0, 0, 0, 2]
    assert len(await history(pool, schema)) == 3


async def test_an_installation_made_before_the_history_is_baselined(
    pool: Pool, schema: str
) -> None:
    # given an event store as the idempotent DDL of earlier versions left it, with events
    await pool.execute(f"CREATE SCHEMA {schema}")
    for migration in events_migrations("event_store"):
        await pool.execute(migration.sql(schema))
    store = PostgresEventStore(pool, schema=schema)
    for n in range(3):
        await store.append(f"s-{n}", 0, [NewEvent("test.Happened.v1", {"n": n})])
    await store.close()

    # when it starts with the migrations
    await store.migrate()

    # then 0001 is recorded as a baseline, the data is untouched, and it goes on as usual
    rows = await history(pool, schema)
    assert [(r["version"], r["name"], r["baseline"]) for r in rows] == [
        (1, "event_store", True),
        (None, "functions", False),
    ]
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.event_store") == 3
    assert (await store.verify()).checked == 3
    assert (await store.verify()).ok
    fresh = f"{schema}_fresh"
    try:
        await PostgresEventStore(pool, schema=fresh).migrate()
        assert not any(r["baseline"] for r in await history(pool, fresh))
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {fresh} CASCADE")


async def test_a_transparency_log_made_before_its_migrations_is_baselined(
    pool: Pool, schema: str
) -> None:
    # given the log's tables as the DDL at start of earlier versions left them, with a row
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    await pool.execute(events_migrations("transparency")[0].sql(schema))
    await pool.execute(f"INSERT INTO {schema}.tlog_keys VALUES ('key', now())")
    log = TransparencyLog(pool, store, schema, "test/origin")

    # when the service starts with the migrations, twice
    await log.migrate()
    await log.migrate()

    # then the log's 0001 is recorded as a baseline, once, and the row is kept
    rows = [r for r in await history(pool, schema) if r["component"] == "transparency"]
    assert [(r["version"], r["baseline"]) for r in rows] == [(1, True)]
    assert await log.keys() == ["key"]
    await store.close()


async def test_the_relay_subjects_are_keyed_by_subject_first_their_versions_kept(
    pool: Pool, schema: str
) -> None:
    # given the relay's tables as the first two migrations made them, with versions
    relay = events_migrations("relay")
    await migrate(pool, schema, "relay", relay[:2])
    await pool.execute(
        f"INSERT INTO {schema}.relay_subjects VALUES ('r', 'org-1', 3), ('r', 'org-2', 1)"
    )
    # when the third runs, then the key starts with the subject (a list of subjects is the
    # index condition of every plan) and nothing recorded is lost
    await migrate(pool, schema, "relay", relay[:3])
    key = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'p'",
        f"{schema}.relay_subjects",
    )
    assert key == "PRIMARY KEY (subject, relay)"
    rows = await pool.fetch(f"SELECT relay, subject, version FROM {schema}.relay_subjects")
    assert sorted(tuple(r) for r in rows) == [("r", "org-1", 3), ("r", "org-2", 1)]
