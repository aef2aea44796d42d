"""A generation made by an earlier version gets the columns the read model now writes, and
its views show them (the register's queries read ``renewal_deadline`` through the views);
the expert register's loses the names it once kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from clr_events.pg import Pool
from projections.core import CONTROL, ReadModel, ensure_generation, generation_schema
from projections.read_models.experts import ExpertRegister
from projections.read_models.labels import LabelRegister


class Before(LabelRegister):
    """The label register as it was: no renewal deadline, no upgrades."""

    upgrades: tuple[str, ...] = ()


@asynccontextmanager
async def generations(
    pool: Pool, before: ReadModel, now: ReadModel, prefix: str
) -> AsyncIterator[tuple[str, str]]:
    """``before`` and ``now`` as one read model under a fresh name, and the schema of its
    first generation; its views, schema and registration dropped afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    before.name = now.name = name
    schema = generation_schema(now, 1)
    try:
        yield name, schema
    finally:
        async with pool.acquire() as conn:
            for table in (*now.tables, "checkpoint"):
                await conn.execute(f"DROP VIEW IF EXISTS {CONTROL}.{name}_{table}")
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.execute(f"DELETE FROM {CONTROL}.read_models WHERE name = $1", name)


async def test_an_older_generation_gets_the_renewal_deadline_column_and_views(
    pool: Pool,
) -> None:
    before = Before()
    before.tables = {
        **LabelRegister.tables,
        "labels": LabelRegister.tables["labels"].replace(" renewal_deadline date,", ""),
    }
    now = LabelRegister()
    columns = (
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema || '.' || table_name = $1"
    )
    async with generations(pool, before, now, "labels") as (name, _):
        view = f"{CONTROL}.{name}_labels"
        assert await ensure_generation(pool, before) == 1
        assert "renewal_deadline" not in {r[0] for r in await pool.fetch(columns, view)}
        assert await ensure_generation(pool, now) == 1
        assert "renewal_deadline" in {r[0] for r in await pool.fetch(columns, view)}
        assert await ensure_generation(pool, now) == 1  # again: nothing to do


class Unversioned(LabelRegister):
    """The label register before segment versions and recorded times."""

    upgrades: tuple[str, ...] = ()
    tables: dict[str, str] = {
        **{t: body for t, body in LabelRegister.tables.items() if t != "segment_versions"},
        "segments": "org_id text NOT NULL, level text NOT NULL, seq integer NOT NULL,"
        " valid_from date NOT NULL, valid_until date NOT NULL, withdrawn_on date,"
        " PRIMARY KEY (org_id, level, seq)",
        "history": LabelRegister.tables["history"].replace(", recorded_at timestamptz", ""),
    }
    indexes: tuple[str, ...] = tuple(i for i in LabelRegister.indexes if "versions" not in i)


async def test_an_older_generation_gets_its_segments_as_versions_once(pool: Pool) -> None:
    before = Unversioned()
    now = LabelRegister()
    async with generations(pool, before, now, "labels") as (name, schema):
        assert await ensure_generation(pool, before) == 1
        await pool.execute(
            f"INSERT INTO {schema}.segments VALUES ('o-1', 'bronze', 1, '2020-04-01',"
            " '2022-03-31', NULL)"
        )
        assert await ensure_generation(pool, now) == 1
        assert await ensure_generation(pool, now) == 1  # again: nothing more
        rows = await pool.fetch(
            f"SELECT org_id, seq, position, recorded_at = '-infinity' AS unknown,"
            f" valid_until::text FROM {CONTROL}.{name}_segment_versions"
        )
        assert [tuple(r.values()) for r in rows] == [("o-1", 1, 0, True, "2022-03-31")]
        history = {
            r[0]
            for r in await pool.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = $1"
                " AND table_name = 'history'",
                schema,
            )
        }
        assert "recorded_at" in history


class NamedExperts(ExpertRegister):
    """The expert register when names were kept and before certification versions."""

    upgrades: tuple[str, ...] = ()
    tables: dict[str, str] = {
        "people": "person_id text PRIMARY KEY, name text NOT NULL, country text NOT NULL",
        "certifications": ExpertRegister.tables["certifications"],
    }


async def test_an_older_expert_generation_loses_its_names_and_gets_its_versions(
    pool: Pool,
) -> None:
    before = NamedExperts()
    now = ExpertRegister()
    async with generations(pool, before, now, "experts") as (name, schema):
        assert await ensure_generation(pool, before) == 1
        await pool.execute(f"INSERT INTO {schema}.people VALUES ('p-1', 'Ann Example', 'MT')")
        await pool.execute(
            f"INSERT INTO {schema}.certifications VALUES ('p-1', 'trainer', '2020-01-01',"
            " '2022-12-31', NULL, 'board')"
        )
        assert await ensure_generation(pool, now) == 1
        assert await ensure_generation(pool, now) == 1  # again: nothing more
        people = await pool.fetch(f"SELECT * FROM {CONTROL}.{name}_people")
        assert [dict(r) for r in people] == [
            {"person_id": "p-1", "country": "MT", "erased_on": None}
        ]  # the name is gone, from the generation and its view
        versions = await pool.fetch(
            f"SELECT person_id, role, seq, position, valid_until::text"
            f" FROM {CONTROL}.{name}_certification_versions"
        )
        assert [tuple(r.values()) for r in versions] == [("p-1", "trainer", 1, 0, "2022-12-31")]
