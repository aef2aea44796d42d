"""The behaviour every event store adapter must show: in-memory (the fake) and PostgreSQL.

One suite, two adapters: a fake that drifts from the real store fails here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from clr_events.errors import ConcurrencyError
from clr_events.pg import Pool
from clr_events.store.base import ANY, EventStore, NewEvent, StreamAppend
from clr_events.store.memory import InMemoryEventStore
from clr_events.store.postgres import PostgresEventStore

Tamper = Callable[[int, str], Awaitable[None]]
"""Alter one stored column of the event at a position, behind the store's back."""


@dataclass
class Subject:
    store: EventStore
    tamper: Tamper


def _altered(column: str, value: Any) -> Any:
    """A value that differs from ``value`` in the smallest way the column allows."""
    match column:
        case "stream_id" | "type":
            return value + "x"
        case "version" | "schema_version":
            return value + 1000  # clear of the stream's other versions (unique)
        case "data_json" | "metadata_json":
            return value.replace("}", " }")  # one added byte of whitespace
        case "event_id":
            return uuid.UUID(int=value.int ^ 1)
        case "recorded_at":
            return value + timedelta(microseconds=1)
        case "hash":
            return bytes([value[0] ^ 1]) + value[1:]
    raise AssertionError(column)


@pytest.fixture(params=["memory", "postgres"])
async def subject(
    request: pytest.FixtureRequest, pool: Pool, schema: str
) -> AsyncIterator[Subject]:
    if request.param == "memory":
        memory = InMemoryEventStore()

        async def tamper_memory(position: int, column: str) -> None:
            row = memory.rows[position - 1]
            memory.rows[position - 1] = row._replace(
                **{column: _altered(column, getattr(row, column))}
            )

        yield Subject(memory, tamper_memory)
        return

    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    sql_column = {"data_json": "data", "metadata_json": "metadata"}

    async def tamper_postgres(position: int, column: str) -> None:
        name = sql_column.get(column, column)
        async with pool.acquire() as conn, conn.transaction():
            # an attacker with superuser rights: triggers (append-only) switched off
            await conn.execute("SET LOCAL session_replication_role = replica")
            cast = "::text" if name in ("data", "metadata") else ""
            value = await conn.fetchval(
                f"SELECT {name}{cast} FROM {schema}.event_store WHERE position = $1", position
            )
            await conn.execute(
                f"UPDATE {schema}.event_store SET {name} = $1{'::json' if cast else ''}"
                " WHERE position = $2",
                _altered(column, value),
                position,
            )

    yield Subject(store, tamper_postgres)
    await store.close()


def events(n: int, **data: Any) -> list[NewEvent]:
    return [NewEvent("test.Happened.v1", {"n": i, **data}, {"actor": "tester"}) for i in range(n)]


async def test_a_new_stream_starts_at_version_one_and_takes_contiguous_positions(
    subject: Subject,
) -> None:
    store = subject.store
    first = await store.append("org-1", 0, events(2))
    second = await store.append("org-2", 0, events(3))
    assert (first.version, first.first_position, first.last_position) == (2, 1, 2)
    assert (second.version, second.first_position, second.last_position) == (3, 3, 5)
    stored = await store.read_stream("org-2")
    assert [e.version for e in stored] == [1, 2, 3]
    assert [e.position for e in stored] == [3, 4, 5]
    assert [e.data["n"] for e in stored] == [0, 1, 2]
    assert stored[0].metadata == {"actor": "tester"}
    assert await store.head_position() == 5


async def test_an_append_at_a_stale_version_is_refused_and_writes_nothing(subject: Subject) -> None:
    store = subject.store
    await store.append("org-1", 0, events(2))
    with pytest.raises(ConcurrencyError) as refused:
        await store.append("org-1", 1, events(1))
    assert (refused.value.expected, refused.value.actual) == (1, 2)
    with pytest.raises(ConcurrencyError):
        await store.append("org-1", 0, events(1))
    assert await store.head_position() == 2
    assert len(await store.read_stream("org-1")) == 2


async def test_an_append_expecting_a_version_not_yet_reached_is_refused(subject: Subject) -> None:
    store = subject.store
    await store.append("org-1", 0, events(2))
    for stream_id, expected, count, actual in (
        ("org-1", 3, 1, 2),
        ("org-1", 5, 2, 2),
        ("org-9", 1, 1, 0),
        ("org-9", 2, 3, 0),
    ):
        with pytest.raises(ConcurrencyError) as refused:
            await store.append(stream_id, expected, events(count))
        assert (refused.value.expected, refused.value.actual) == (expected, actual)
    assert await store.head_position() == 2
    assert (await store.append("org-1", 2, events(1))).version == 3


async def test_any_version_appends_after_the_current_one(subject: Subject) -> None:
    store = subject.store
    await store.append("org-1", ANY, events(1))
    result = await store.append("org-1", ANY, events(2))
    assert result.version == 3
    assert [e.version for e in await store.read_stream("org-1", from_version=2)] == [2, 3]


async def test_an_empty_append_or_negative_version_is_a_programming_error(subject: Subject) -> None:
    with pytest.raises(ValueError):
        await subject.store.append("org-1", 0, [])
    with pytest.raises(ValueError):
        await subject.store.append("org-1", -1, events(1))


async def test_an_atomic_append_writes_every_stream_or_none(subject: Subject) -> None:
    store = subject.store
    await store.append("org-1", 0, events(1))
    results = await store.append_all(
        [StreamAppend("org-1", 1, events(2)), StreamAppend("org-2", 0, events(1))]
    )
    assert [(r.stream_id, r.version, r.first_position, r.last_position) for r in results] == [
        ("org-1", 3, 2, 3),
        ("org-2", 1, 4, 4),
    ]
    with pytest.raises(ConcurrencyError) as refused:
        await store.append_all(
            [StreamAppend("org-3", 0, events(1)), StreamAppend("org-1", 1, events(1))]
        )
    assert (refused.value.stream_id, refused.value.actual) == ("org-1", 3)
    assert await store.read_stream("org-3") == []
    assert await store.head_position() == 4
    for wrong in ([], [StreamAppend("org-4", 0, events(1)), StreamAppend("org-4", 1, events(1))]):
        with pytest.raises(ValueError):
            await store.append_all(wrong)
    assert (await store.verify()).ok


async def test_read_all_pages_in_position_order(subject: Subject) -> None:
    store = subject.store
    for i in range(5):
        await store.append(f"org-{i % 2}", ANY, events(2, batch=i))
    page = await store.read_all(after_position=3, limit=4)
    assert [e.position for e in page] == [4, 5, 6, 7]
    assert await store.read_all(after_position=10) == []


async def test_replay_gives_every_event_once_in_position_order_by_pages(subject: Subject) -> None:
    store = subject.store
    for i in range(7):
        await store.append(f"org-{i % 3}", ANY, events(1, batch=i))
    pages = [[e.position for e in page] async for page in store.replay(after_position=2, page=2)]
    assert pages == [[3, 4], [5, 6], [7]]
    assert [page async for page in store.replay(after_position=7)] == []


async def test_fifty_concurrent_appends_at_one_version_exactly_one_wins_whole(
    subject: Subject,
) -> None:
    store = subject.store
    await store.append("org-1", 0, events(1))
    outcomes = await asyncio.gather(
        *(store.append("org-1", 1, events(3, writer=w)) for w in range(50)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    conflicts = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert len(winners) == 1 and len(conflicts) == 49
    stream = await store.read_stream("org-1")
    assert [e.version for e in stream] == [1, 2, 3, 4]
    assert len({e.data["writer"] for e in stream[1:]}) == 1  # no torn write
    assert await store.head_position() == 4
    assert (await store.verify()).ok


async def test_wait_beyond_wakes_on_a_commit_and_times_out_otherwise(subject: Subject) -> None:
    store = subject.store
    assert await store.wait_beyond(0, timeout=0.2) is False
    waiter = asyncio.create_task(store.wait_beyond(0, timeout=10))
    await asyncio.sleep(0.1)
    await store.append("org-1", 0, events(1))
    assert await asyncio.wait_for(waiter, 5) is True


async def test_an_unaltered_store_verifies_whole_and_in_ranges(subject: Subject) -> None:
    store = subject.store
    for i in range(6):
        await store.append(f"org-{i}", 0, events(2))
    report = await store.verify()
    assert report.ok and report.checked == 12
    partial = await store.verify(5, 9)
    assert partial.ok and partial.checked == 5


@pytest.mark.parametrize(
    "column",
    [
        "stream_id",
        "version",
        "event_id",
        "type",
        "schema_version",
        "data_json",
        "metadata_json",
        "recorded_at",
        "hash",
    ],
)
async def test_altering_any_stored_column_is_detected_at_its_position(
    subject: Subject, column: str
) -> None:
    store = subject.store
    for i in range(4):
        await store.append(f"org-{i}", 0, events(2))
    await subject.tamper(5, column)
    report = await store.verify()
    assert not report.ok
    assert any(problem.startswith("position 5:") for problem in report.problems), report.problems
