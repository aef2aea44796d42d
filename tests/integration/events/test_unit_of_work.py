"""The behaviour every unit of work must show: in-memory (the handlers' fake) and PostgreSQL.

One suite, two adapters: a fake that drifts from the real unit of work fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from clr_events.application.memory import InMemoryUnitsOfWork
from clr_events.application.postgres import IdempotencyStore, PostgresUnitsOfWork
from clr_events.application.uow import (
    Cause,
    DomainEvents,
    EventTooLargeError,
    IdempotencyKey,
    IdempotencyKeyReusedError,
    Result,
    Streams,
    UnitOfWork,
    UnitsOfWork,
    execute,
)
from clr_events.errors import ConcurrencyError
from clr_events.pg import Pool
from clr_events.store.base import EventStore, StoredEvent
from clr_events.store.postgres import PostgresEventStore

CAUSE = Cause("tester", "corr-1")


class Happened(BaseModel):
    thing_id: str
    n: int = 0
    text: str = ""


CODEC: DomainEvents[Happened] = DomainEvents(Happened)


@dataclass
class Subject:
    units: UnitsOfWork
    store: EventStore
    another: Callable[[], UnitsOfWork]
    """Units of work of another process on the same store (a cache of their own)."""


@pytest.fixture(params=["memory", "postgres"])
async def subject(
    request: pytest.FixtureRequest, pool: Pool, schema: str
) -> AsyncIterator[Subject]:
    if request.param == "memory":
        memory = InMemoryUnitsOfWork(max_event_bytes=1000)
        yield Subject(memory, memory.store, lambda: InMemoryUnitsOfWork(memory.store))
        return
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    idempotency = IdempotencyStore(schema)
    await idempotency.migrate(pool)
    await pool.execute(
        f"CREATE TABLE {schema}.things (thing_id text PRIMARY KEY, name text, n int)"
    )

    def units() -> PostgresUnitsOfWork:
        return PostgresUnitsOfWork(
            pool,
            store,
            schema,
            max_event_bytes=1000,
            idempotency=idempotency,
            stream_cache_bytes=1 << 20,
        )

    yield Subject(units(), store, units)
    await store.close()


def streams(uow: UnitOfWork) -> Streams[Happened]:
    return Streams(uow, CODEC)


async def things(units: UnitsOfWork) -> list[dict[str, Any]]:
    async with units.begin(CAUSE) as uow:
        return await uow.rows.find("things", ("thing_id", "name", "n"))


def add(thing_id: str, name: str = "x", fail: bool = False) -> Any:
    """A handler: a thing's row and its stream's next event."""

    async def handler(uow: UnitOfWork) -> Result:
        s = streams(uow)
        version, _ = await s.load(f"thing:{thing_id}")
        await uow.rows.upsert("things", {"thing_id": thing_id}, {"name": name, "n": version})
        new = s.append(f"thing:{thing_id}", version, [Happened(thing_id=thing_id, n=version)])
        if fail:
            raise RuntimeError("the handler fails")
        return Result(201, {"thing_id": thing_id, "version": new})

    return handler


async def test_a_committed_unit_stores_its_events_with_their_cause_and_its_rows(
    subject: Subject,
) -> None:
    result = await execute(subject.units, CAUSE, add("a", "first"))
    assert result == Result(201, {"thing_id": "a", "version": 1})
    await execute(subject.units, CAUSE, add("a", "second"))
    stored = await subject.store.read_stream("thing:a")
    assert [e.version for e in stored] == [1, 2]
    assert stored[0].metadata == {"actor": "tester", "correlation_id": "corr-1"}
    assert await things(subject.units) == [{"thing_id": "a", "name": "second", "n": 1}]
    async with subject.units.begin(CAUSE) as uow:
        version, events = await streams(uow).load("thing:a")
    assert version == 2
    assert events == [Happened(thing_id="a", n=0), Happened(thing_id="a", n=1)]


async def test_a_stale_version_stores_nothing_of_the_command_rows_included(
    subject: Subject,
) -> None:
    await execute(subject.units, CAUSE, add("a"))
    async with subject.units.begin(CAUSE) as late:
        s = streams(late)
        version, _ = await s.load("thing:a")
        await execute(subject.units, CAUSE, add("a", "meanwhile"))  # another command wins
        await late.rows.upsert("things", {"thing_id": "b"}, {"name": "late", "n": 0})
        s.append("thing:a", version, [Happened(thing_id="a")])
        with pytest.raises(ConcurrencyError) as refused:
            await late.commit(Result(201))
    assert (refused.value.expected, refused.value.actual) == (1, 2)
    assert await subject.store.head_position() == 2
    assert [row["thing_id"] for row in await things(subject.units)] == ["a"]


async def test_a_unit_left_without_commit_stores_nothing(subject: Subject) -> None:
    with pytest.raises(RuntimeError):
        await execute(subject.units, CAUSE, add("a", fail=True))
    assert await subject.store.head_position() == 0
    assert await things(subject.units) == []


async def test_appends_to_several_streams_commit_all_or_nothing(subject: Subject) -> None:
    await execute(subject.units, CAUSE, add("b"))

    async def both(uow: UnitOfWork) -> Result:
        s = streams(uow)
        s.append("thing:a", 0, [Happened(thing_id="a")])
        s.append("thing:b", 0, [Happened(thing_id="b")])  # stale: b is at 1
        return Result(201)

    with pytest.raises(ConcurrencyError):
        await execute(subject.units, CAUSE, both)
    assert await subject.store.read_stream("thing:a") == []
    assert await subject.store.head_position() == 1


async def test_a_keyed_command_answers_its_first_result_and_writes_nothing_again(
    subject: Subject,
) -> None:
    key = IdempotencyKey("tester", "key-1", "fingerprint-1")
    first = await execute(subject.units, CAUSE, add("a", "first"), key)
    again = await execute(subject.units, CAUSE, add("a", "second"), key)
    assert again == Result(first.status, first.body, replayed=True)
    assert await subject.store.head_position() == 1
    assert await things(subject.units) == [{"thing_id": "a", "name": "first", "n": 0}]
    with pytest.raises(IdempotencyKeyReusedError):
        await execute(
            subject.units, CAUSE, add("a"), IdempotencyKey("tester", "key-1", "another request")
        )
    other_actor = await execute(
        subject.units, CAUSE, add("b"), IdempotencyKey("someone", "key-1", "fingerprint-1")
    )
    assert not other_actor.replayed


async def test_a_failed_keyed_command_leaves_its_key_free(subject: Subject) -> None:
    key = IdempotencyKey("tester", "key-1", "fingerprint-1")
    with pytest.raises(RuntimeError):
        await execute(subject.units, CAUSE, add("a", fail=True), key)
    result = await execute(subject.units, CAUSE, add("a"), key)
    assert not result.replayed and result.body == {"thing_id": "a", "version": 1}


async def test_rows_by_key(subject: Subject) -> None:
    async def write(uow: UnitOfWork) -> Result:
        rows = uow.rows
        await rows.upsert("things", {"thing_id": "a"}, {"name": "one", "n": 1})
        await rows.upsert("things", {"thing_id": "b"}, {"name": "two", "n": 2})
        await rows.upsert("things", {"thing_id": "a"}, {"n": 10})  # sets n, keeps the name
        await rows.upsert("things", {"thing_id": "b"})  # there already: nothing
        await rows.upsert("things", {"thing_id": "c"})  # inserted, the rest NULL
        await rows.update("things", {"thing_id": "b"}, {"name": "TWO"})
        await rows.update("things", {"thing_id": "z"}, {"name": "nobody"})  # none: nothing
        # a unit reads its own writes
        assert await rows.find("things", ("thing_id",), thing_id=["a", "c", "y"]) == [
            {"thing_id": "a"},
            {"thing_id": "c"},
        ]
        return Result(200)

    await execute(subject.units, CAUSE, write)
    assert await things(subject.units) == [
        {"thing_id": "a", "name": "one", "n": 10},
        {"thing_id": "b", "name": "TWO", "n": 2},
        {"thing_id": "c", "name": None, "n": None},
    ]
    async with subject.units.begin(CAUSE) as uow:
        assert await uow.rows.find("things", ("n",), name="one") == [{"n": 10}]
        assert await uow.rows.find("things", ("n",), name="one", thing_id="b") == []


async def test_an_event_over_the_limit_is_refused_before_anything_is_stored(
    subject: Subject,
) -> None:
    async def large(uow: UnitOfWork) -> Result:
        await uow.rows.upsert("things", {"thing_id": "a"}, {"name": "large"})
        streams(uow).append("thing:a", 0, [Happened(thing_id="a", text="x" * 1000)])
        return Result(201)

    with pytest.raises(EventTooLargeError) as refused:
        await execute(subject.units, CAUSE, large)
    assert refused.value.limit == 1000
    assert await subject.store.head_position() == 0
    assert await things(subject.units) == []


async def test_a_stream_is_appended_once_per_unit(subject: Subject) -> None:
    async def twice(uow: UnitOfWork) -> Result:
        s = streams(uow)
        s.append("thing:a", 0, [Happened(thing_id="a")])
        s.append("thing:a", 1, [Happened(thing_id="a")])
        return Result(201)

    with pytest.raises(ValueError, match="appended twice"):
        await execute(subject.units, CAUSE, twice)
    assert await subject.store.head_position() == 0


async def test_a_command_with_nothing_to_append_commits_its_rows(subject: Subject) -> None:
    async def rows_only(uow: UnitOfWork) -> Result:
        streams(uow).append("thing:a", 0, [])  # no events: nothing staged
        await uow.rows.upsert("things", {"thing_id": "a"}, {"name": "only"})
        return Result(200)

    assert await execute(subject.units, CAUSE, rows_only) == Result(200)
    assert await subject.store.head_position() == 0
    assert await things(subject.units) == [{"thing_id": "a", "name": "only", "n": None}]


async def test_insert_keeps_an_existing_row_and_newer_guards_a_late_change(
    subject: Subject,
) -> None:
    async def write(uow: UnitOfWork) -> Result:
        rows = uow.rows
        await rows.insert("things", {"thing_id": "a"}, {"name": "first", "n": 2})
        await rows.insert("things", {"thing_id": "a"}, {"name": "again", "n": 9})  # nothing
        await rows.upsert("things", {"thing_id": "a"}, {"name": "late", "n": 1}, newer="n")
        await rows.update("things", {"thing_id": "a"}, {"name": "late", "n": 2}, newer="n")
        await rows.upsert("things", {"thing_id": "b"}, {"name": "new", "n": 1}, newer="n")
        await rows.upsert("things", {"thing_id": "b"}, {"name": "next", "n": 2}, newer="n")
        await rows.update("things", {"thing_id": "a"}, {"name": "later", "n": 3}, newer="n")
        return Result(200)

    await execute(subject.units, CAUSE, write)
    assert await things(subject.units) == [
        {"thing_id": "a", "name": "later", "n": 3},
        {"thing_id": "b", "name": "next", "n": 2},
    ]


class CountingCodec(DomainEvents[Happened]):
    """Counts the events it decodes."""

    decoded = 0

    def decode(self, stored: StoredEvent) -> Happened:
        self.decoded += 1
        return super().decode(stored)


async def test_a_stream_loaded_again_decodes_only_its_new_events_even_from_elsewhere(
    subject: Subject,
) -> None:
    # given a stream of 3 events loaded once, and 2 more appended by another process
    codec = CountingCodec(Happened)

    async def load(units: UnitsOfWork) -> tuple[int, list[Happened]]:
        async with units.begin(CAUSE) as uow:
            return await Streams(uow, codec).load("thing:long")

    for _ in range(3):
        await execute(subject.units, CAUSE, add("long"))
    assert (await load(subject.units))[0] == 3
    elsewhere = subject.another()
    for _ in range(2):
        await execute(elsewhere, CAUSE, add("long"))
    # when it is loaded again, then it has all 5, and only the 2 new ones were decoded
    codec.decoded = 0
    version, events = await load(subject.units)
    assert version == 5 and [e.n for e in events] == [0, 1, 2, 3, 4]
    assert codec.decoded == 2
    # and a command on it appends at the right version
    await execute(subject.units, CAUSE, add("long"))
    assert [e.version for e in await subject.store.read_stream("thing:long")] == [1, 2, 3, 4, 5, 6]


@dataclass
class Tally:
    """A foldable aggregate: the numbers of its events, and how many this very object (not
    the one it was copied from) applied."""

    ns: list[int]
    applied: int = 0

    def apply(self, event: Happened) -> None:
        self.ns.append(event.n)
        self.applied += 1

    def copy(self) -> Tally:
        return Tally(list(self.ns))


async def test_a_fold_made_before_is_brought_up_to_date_and_never_changed_by_its_user(
    subject: Subject,
) -> None:
    # given a stream of 3 events folded once, 2 more appended by another process
    async def fold(units: UnitsOfWork) -> Tally:
        async with units.begin(CAUSE) as uow:
            return await streams(uow).fold("thing:f", Tally([]))

    for _ in range(3):
        await execute(subject.units, CAUSE, add("f"))
    first = await fold(subject.units)
    assert first.ns == [0, 1, 2]
    first.ns.append(99)  # its user changes what it was given
    for _ in range(2):
        await execute(subject.another(), CAUSE, add("f"))
    # when it is folded again, then it holds all 5 events, and only the 2 new ones were
    # applied to a copy of the earlier fold (which the change above did not reach)
    again = await fold(subject.units)
    assert again.ns == [0, 1, 2, 3, 4]
    assert (first.applied, again.applied) == (3, 2)
    # and a process without that fold applies all 5
    assert (await fold(subject.another())).applied == 5
