"""Applying a batch to a read model on the real PostgreSQL: effectively once, and a message
the read model refuses is found and dead-lettered once, without losing the others."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from clr_events.codec import to_kafka
from clr_events.contracts import collaboration
from clr_events.envelope import Envelope
from clr_events.errors import EnvelopeError
from clr_events.pg import Connection, Pool
from clr_events.registry import Contract, registry
from projections.core import (
    Event,
    Message,
    Record,
    apply_batch,
    checkpoints,
    create_generation,
    decode_batch,
    generation_schema,
)
from projections.read_models.labels import LabelRegister, _advance_feed_head
from projections.read_models.organisations import OrganisationDirectory


class Notes:
    """A read model of one table that refuses organisations named ``refused``."""

    topics: tuple[str, ...] = ("test.events",)
    tables: dict[str, str] = {
        "notes": "position bigint PRIMARY KEY, org_id text NOT NULL CHECK (org_id <> 'refused')"
    }
    indexes: tuple[str, ...] = ()
    partitioned: bool = False

    def __init__(self) -> None:
        self.name = f"t{uuid.uuid4().hex[:10]}"

    async def settle(self, conn: Connection) -> None:
        """Nothing is derived from the whole."""

    async def apply(self, conn: Connection, events: list[Event]) -> None:
        await conn.executemany(
            "INSERT INTO notes VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(e.envelope.globalposition, e.contract.org_id) for e in events],  # type: ignore[attr-defined]
        )


def registered(offset: int, org_id: str) -> Record:
    type_ = registry.type_of(collaboration.OrganisationRegistered)
    record = to_kafka(
        Envelope(
            id=str(uuid.uuid4()),
            source="/collaboration",
            type=type_,
            subject=f"organisation:{org_id}",
            time=datetime.now(UTC),
            data={"org_id": org_id, "name": org_id, "country": "DE", "sector": "Energy"},
            streamversion=1,
            globalposition=offset + 1,
        )
    )
    return Record("test.events", 0, offset, record.key, record.value, record.headers)


@pytest.fixture
async def notes(pool: Pool) -> AsyncIterator[Notes]:
    model = Notes()
    async with pool.acquire() as conn:
        await create_generation(conn, model, 1)
    yield model
    await pool.execute(f"DROP SCHEMA IF EXISTS {generation_schema(model, 1)} CASCADE")


async def test_a_refused_and_an_undecodable_message_are_dead_lettered_once_each(
    pool: Pool, notes: Notes
) -> None:
    good, undecodable = registered(0, "o-1"), dataclasses.replace(registered(1, "o-2"), value=b"{")
    batch = decode_batch([good, undecodable, registered(2, "refused"), registered(3, "o-4")])
    dead: list[tuple[int, type[BaseException]]] = []

    async def dead_letter(message: Message, error: BaseException) -> None:
        dead.append((message.offset, type(error)))

    schema = generation_schema(notes, 1)
    assert await apply_batch(pool, notes, batch, dead_letter, schema=schema) == 2
    assert sorted(dead) == [(1, EnvelopeError), (2, asyncpg.CheckViolationError)]
    rows = await pool.fetch(f"SELECT position, org_id FROM {schema}.notes ORDER BY position")
    assert [tuple(r) for r in rows] == [(1, "o-1"), (4, "o-4")]
    async with pool.acquire() as conn:
        assert await checkpoints(conn, schema) == {("test.events", 0): 3}

    # the same batch again (Kafka redelivers after a crash): nothing applied, nothing sent
    assert await apply_batch(pool, notes, batch, dead_letter, schema=schema) == 0
    assert len(dead) == 2


async def feed_head_after(conn: Connection, rows: Sequence[tuple[int, int | None]]) -> int:
    await conn.executemany(
        "INSERT INTO feed VALUES ($1, $2, 'label_decisions.LabelAwarded.v1', 'o', '{}')", rows
    )
    await _advance_feed_head(conn)
    return int(await conn.fetchval("SELECT head FROM feed_head"))


async def test_the_feed_head_follows_the_prevposition_chain_to_its_first_hole(
    pool: Pool, schema: str
) -> None:
    tables = LabelRegister.tables
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}")
        for table in ("feed", "feed_head"):
            await conn.execute(f"CREATE TABLE {table} ({tables[table]})")
        assert await feed_head_after(conn, []) == 0
        # positions 2, 4 and 6 were private: the chain is 0 -> 1 -> 3 -> 5 -> 7
        assert await feed_head_after(conn, [(3, 1), (1, 0)]) == 3  # arrived out of order
        assert await feed_head_after(conn, [(7, 5)]) == 3  # 5 is still missing
        assert await feed_head_after(conn, [(5, 3)]) == 7
        assert await feed_head_after(conn, [(9, None)]) == 7  # no prevposition: chain ends


async def test_an_organisation_registered_twice_in_one_batch_keeps_the_later_profile(
    pool: Pool,
) -> None:
    model = LabelRegister()
    model.name = f"labels{uuid.uuid4().hex[:10]}"  # a generation schema of its own
    async with pool.acquire() as conn:
        await create_generation(conn, model, 1)
    schema = generation_schema(model, 1)
    first, again = registered(0, "o-1"), registered(1, "o-1")
    assert again.value is not None
    renamed = dataclasses.replace(
        again, value=again.value.replace(b'"name":"o-1"', b'"name":"O 1"')
    )
    batch = decode_batch([dataclasses.replace(m, topic=model.topics[1]) for m in (first, renamed)])
    dead: list[BaseException] = []

    async def dead_letter(_message: Message, error: BaseException) -> None:
        dead.append(error)

    try:
        assert await apply_batch(pool, model, batch, dead_letter, schema=schema) == 2
        assert dead == []
        assert await pool.fetchval(f"SELECT name FROM {schema}.orgs WHERE org_id = 'o-1'") == "O 1"
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class Directory(OrganisationDirectory):
    """The organisation directory under a name of its own (its own generation schema)."""

    def __init__(self) -> None:
        self.name = f"t{uuid.uuid4().hex[:10]}"


def event(offset: int, contract: type[Contract], **data: Any) -> Record:
    """A CloudEvent record with ``data`` as it is: nothing validated it."""
    record = to_kafka(
        Envelope(
            id=str(uuid.uuid4()),
            source="/collaboration",
            type=registry.type_of(contract),
            subject=f"s-{offset}",
            time=datetime.now(UTC),
            data=data,
            streamversion=1,
            globalposition=offset + 1,
        )
    )
    return Record("test.events", 0, offset, record.key, record.value, record.headers)


def org(offset: int, org_id: str, name: str = "A cluster") -> Record:
    return event(
        offset,
        collaboration.OrganisationRegistered,
        org_id=org_id,
        name=name,
        country="DE",
        sector="Energy",
    )


POISON: dict[str, Callable[[int], Record]] = {
    "U+0000 in a name": lambda offset: org(offset, "o-nul", "Cluster\x00 e.V."),
    "a key too long for its index": lambda offset: org(offset, secrets.token_hex(8000)),
    "a number too large for its column": lambda offset: event(
        offset,
        collaboration.PartnershipFormed,
        partnership_id="p-1",
        name="P",
        strand="ESCP-4i",
        call_id="c",
        member_org_ids=[],
        start_on="2025-01-01",
        duration_months=2**40,
    ),
    "a number too large for its type": lambda offset: event(
        offset,
        collaboration.PartnershipFormed,
        partnership_id="p-0",
        name="P",
        strand="ESCP-4i",
        call_id="c",
        member_org_ids=[],
        start_on="2025-01-01",
        duration_months=1e30,
    ),
    "a string where a number belongs": lambda offset: event(
        offset,
        collaboration.PartnershipFormed,
        partnership_id="p-2",
        name="P",
        strand="ESCP-4i",
        call_id="c",
        member_org_ids=[],
        start_on="2025-01-01",
        duration_months="thirty-six",
    ),
    "not JSON": lambda offset: dataclasses.replace(org(offset, "o-x"), value=b"\xff{"),
    "not a CloudEvent": lambda offset: Record("test.events", 0, offset, b"k", b"{}", []),
}


@pytest.fixture
async def directory(pool: Pool) -> AsyncIterator[Directory]:
    model = Directory()
    async with pool.acquire() as conn:
        await create_generation(conn, model, 1)
    yield model
    await pool.execute(f"DROP SCHEMA IF EXISTS {generation_schema(model, 1)} CASCADE")


@pytest.mark.parametrize("alone", [True, False], ids=["in a batch of its own", "mid-batch"])
async def test_a_record_postgresql_refuses_is_dead_lettered_and_the_next_one_applied(
    pool: Pool, directory: Directory, alone: bool
) -> None:
    schema = generation_schema(directory, 1)
    dead: list[tuple[int, str]] = []

    async def dead_letter(message: Message, error: BaseException) -> None:
        dead.append((message.offset, type(error).__name__))

    records = [org(0, "o-0")]
    for make in POISON.values():
        records += [make(len(records)), org(len(records) + 1, f"o-{len(records) + 1}")]
    batches = [[r] for r in records] if alone else [records]
    for batch in batches:
        await apply_batch(pool, directory, decode_batch(batch), dead_letter, schema=schema)

    assert dead == [
        (1, "CharacterNotInRepertoireError"),
        (3, "ProgramLimitExceededError"),
        (5, "DataError"),
        (7, "ValidationError"),
        (9, "ValidationError"),
        (11, "EnvelopeError"),
        (13, "EnvelopeError"),
    ]
    rows = await pool.fetch(f"SELECT org_id FROM {schema}.orgs ORDER BY org_id")
    assert [r["org_id"] for r in rows] == sorted(f"o-{n}" for n in range(0, 15, 2))
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.partnerships") == 0
    async with pool.acquire() as conn:
        assert await checkpoints(conn, schema) == {("test.events", 0): 14}


async def test_runs_of_one_statement_go_together_and_leave_what_one_by_one_would(
    pool: Pool, directory: Directory
) -> None:
    # given registrations in runs (one organisation twice in a run, renamed), a
    # validation between them, one of an organisation before its registration (it
    # changes nothing: there is no row yet) and a partnership whose members are two
    schema = generation_schema(directory, 1)

    def validated(offset: int, org_id: str, on: str) -> Record:
        return event(
            offset,
            collaboration.ProfileValidated,
            org_id=org_id,
            validated_on=on,
            criteria_version="1",
        )

    records = [
        validated(0, "o-3", "2026-01-01"),
        org(1, "o-1", "First"),
        org(2, "o-2"),
        org(3, "o-1", "First, renamed"),
        validated(4, "o-1", "2026-01-05"),
        org(5, "o-1", "First, renamed again"),
        org(6, "o-3"),
        event(
            7,
            collaboration.PartnershipFormed,
            partnership_id="p-1",
            name="P",
            strand="ESCP-4i",
            call_id="c",
            member_org_ids=["o-1", "o-3"],
            start_on="2025-01-01",
            duration_months=24,
        ),
    ]

    async def dead_letter(message: Message, error: BaseException) -> None:
        raise AssertionError(f"{message.offset}: {error!r}")

    # when they are applied in one batch
    await apply_batch(pool, directory, decode_batch(records), dead_letter, schema=schema)
    # then each row is as the events in order leave it
    rows = await pool.fetch(f"SELECT org_id, name, validated_on FROM {schema}.orgs ORDER BY 1")
    assert [(r["org_id"], r["name"], str(r["validated_on"])) for r in rows] == [
        ("o-1", "First, renamed again", "2026-01-05"),
        ("o-2", "A cluster", "None"),
        ("o-3", "A cluster", "None"),
    ]
    members = await pool.fetch(f"SELECT org_id FROM {schema}.members ORDER BY 1")
    assert [r["org_id"] for r in members] == ["o-1", "o-3"]
