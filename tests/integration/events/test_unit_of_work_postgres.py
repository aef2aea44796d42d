"""What only the PostgreSQL unit of work can show: the store's head lock is taken last, and
two requests with one key serialise on the key's row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from clr_events.application.postgres import IdempotencyStore, PostgresUnitsOfWork
from clr_events.application.uow import (
    Cause,
    DomainEvents,
    IdempotencyKey,
    Result,
    Streams,
    UnitOfWork,
    execute,
)
from clr_events.errors import ConcurrencyError
from clr_events.observability.metrics import APPEND_SECONDS
from clr_events.pg import Pool
from clr_events.store.postgres import PostgresEventStore
from tests.integration.events.stores import cut_back

CAUSE = Cause("tester", "corr-1")


class Happened(BaseModel):
    thing_id: str


CODEC: DomainEvents[Happened] = DomainEvents(Happened)


@pytest.fixture
async def store(pool: Pool, schema: str) -> AsyncIterator[PostgresEventStore]:
    created = PostgresEventStore(pool, schema=schema)
    await created.migrate()
    yield created
    await created.close()


@pytest.fixture
async def units(pool: Pool, schema: str, store: PostgresEventStore) -> PostgresUnitsOfWork:
    idempotency = IdempotencyStore(schema)
    await idempotency.migrate(pool)
    await pool.execute(f"CREATE TABLE {schema}.things (thing_id text PRIMARY KEY, name text)")
    return PostgresUnitsOfWork(pool, store, schema, max_event_bytes=10_000, idempotency=idempotency)


async def head_is_free(pool: Pool, schema: str) -> bool:
    """Whether another transaction could take the head row's lock right now."""
    async with pool.acquire() as probe, probe.transaction():
        try:
            await probe.execute(f"SELECT FROM {schema}.event_store_head FOR UPDATE NOWAIT")
        except asyncpg.LockNotAvailableError:
            return False
    return True


async def test_the_head_lock_is_not_held_while_a_command_writes_its_rows(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    async with units.begin(CAUSE) as first:
        # the handler stages its append first and writes its rows after it ...
        Streams(first, CODEC).append("thing:a", 0, [Happened(thing_id="a")])
        await first.rows.upsert("things", {"thing_id": "a"}, {"name": "first"})
        # ... and while its transaction is open with those rows, the head is free:
        assert await head_is_free(pool, schema)

        # another command of the service, on another stream, commits meanwhile
        async def second(uow: UnitOfWork) -> Result:
            Streams(uow, CODEC).append("thing:b", 0, [Happened(thing_id="b")])
            await uow.rows.upsert("things", {"thing_id": "b"}, {"name": "second"})
            return Result(201)

        await execute(units, CAUSE, second)
        await first.commit(Result(201))
    assert [e.stream_id for e in await store.read_all()] == ["thing:b", "thing:a"]
    assert (await store.verify()).ok


async def test_a_keyed_command_holds_the_head_only_after_its_key_and_rows(
    pool: Pool, schema: str, units: PostgresUnitsOfWork
) -> None:
    key = IdempotencyKey("tester", "key-1", "fingerprint")
    async with units.begin(CAUSE, key) as uow:
        Streams(uow, CODEC).append("thing:a", 0, [Happened(thing_id="a")])
        await uow.rows.upsert("things", {"thing_id": "a"}, {"name": "keyed"})
        assert await head_is_free(pool, schema)
        await uow.commit(Result(201, {"ok": True}))
    assert await head_is_free(pool, schema)


async def test_two_requests_with_one_key_serialise_on_the_key(
    pool: Pool, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    key = IdempotencyKey("tester", "key-1", "fingerprint")
    entered = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def slow(uow: UnitOfWork) -> Result:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()
        Streams(uow, CODEC).append("thing:a", 0, [Happened(thing_id="a")])
        return Result(201, {"thing_id": "a"})

    first = asyncio.create_task(execute(units, CAUSE, slow, key))
    await entered.wait()
    second = asyncio.create_task(execute(units, CAUSE, slow, key))
    for _ in range(1000):  # until the second waits for the key's row (the first's claim)
        if await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the second request never waited for the key")
    assert not second.done()
    release.set()
    one, two = await asyncio.gather(first, second)
    assert (one.replayed, two.replayed) == (False, True)
    assert two.body == one.body == {"thing_id": "a"}
    assert calls == 1
    assert await store.head_position() == 1


def thing(thing_id: str, expected: int = 0, n: object = 1) -> Any:
    """A handler: a row of its own, then an event on its stream at ``expected``."""

    async def handler(uow: UnitOfWork) -> Result:
        await uow.rows.upsert("things", {"thing_id": thing_id}, {"name": str(n)})
        Streams(uow, CODEC).append(f"thing:{thing_id}", expected, [Happened(thing_id=thing_id)])
        return Result(201)

    return handler


async def test_commands_committing_together_share_one_transaction_a_refused_one_stores_nothing(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    await execute(units, CAUSE, thing("stale"))
    calls = 0

    def counting(method: Any) -> Any:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await method(*args, **kwargs)

        return counted

    # a batch is written in one statement, or in a transaction: either is one call here
    store.append_each = counting(store.append_each)  # type: ignore[method-assign]
    committer = units.committer
    committer._write_in_one_statement = counting(committer._write_in_one_statement)  # type: ignore[method-assign]
    outcomes = await asyncio.gather(
        *(execute(units, CAUSE, thing(f"t{i}")) for i in range(5)),
        execute(units, CAUSE, thing("stale", expected=0, n="again")),
        return_exceptions=True,
    )
    assert [type(o).__name__ for o in outcomes] == [*["Result"] * 5, "ConcurrencyError"]
    rows = await pool.fetch(f"SELECT thing_id, name, xmin::text AS tx FROM {schema}.things")
    assert {r["thing_id"]: r["name"] for r in rows} == {
        "stale": "1",  # the refused command's row went with it
        **{f"t{i}": "1" for i in range(5)},
    }
    # the five were written in one transaction (one batch, one commit) with their events
    batch = {r["tx"] for r in rows if r["thing_id"] != "stale"}
    events = await pool.fetch(
        f"SELECT DISTINCT xmin::text AS tx FROM {schema}.event_store"
        " WHERE stream_id <> 'thing:stale'"
    )
    assert len(batch) == 1 and {e["tx"] for e in events} == batch
    # the batch's statement was refused (the stale append named in its error) and the
    # five written again without it: no read of the versions ahead of every batch
    assert calls == 2
    # while refusals are recent, a batch reads its streams' versions first: the next
    # stale command is refused before its batch is written, once
    calls = 0
    again = await asyncio.gather(
        *(execute(units, CAUSE, thing(f"u{i}")) for i in range(5)),
        execute(units, CAUSE, thing("stale", expected=0, n="once more")),
        return_exceptions=True,
    )
    assert [type(o).__name__ for o in again] == [*["Result"] * 5, "ConcurrencyError"]
    assert calls == 1
    assert (await store.verify()).ok


async def test_a_command_whose_rows_fail_fails_alone_in_its_batch(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    async def broken(uow: UnitOfWork) -> Result:
        await uow.rows.upsert("no_such_table", {"thing_id": "x"})
        Streams(uow, CODEC).append("thing:x", 0, [Happened(thing_id="x")])
        return Result(201)

    outcomes = await asyncio.gather(
        execute(units, CAUSE, thing("a")),
        execute(units, CAUSE, broken),
        execute(units, CAUSE, thing("b")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], asyncpg.UndefinedTableError)
    assert isinstance(outcomes[0], Result) and isinstance(outcomes[2], Result)
    assert sorted(r["thing_id"] for r in await pool.fetch(f"SELECT * FROM {schema}.things")) == [
        "a",
        "b",
    ]
    assert sorted(e.stream_id for e in await store.read_all()) == ["thing:a", "thing:b"]


async def test_a_command_that_read_answers_without_waiting_for_its_connection_reset(
    database_url: str, schema: str, units: PostgresUnitsOfWork
) -> None:
    await execute(units, CAUSE, thing("a"))
    gate = asyncio.Event()
    resets = 0

    async def held_reset(conn: asyncpg.Connection) -> None:
        nonlocal resets
        resets += 1
        await gate.wait()

    gated = await asyncpg.create_pool(database_url, min_size=1, max_size=4, reset=held_reset)
    store = PostgresEventStore(gated, schema=schema)
    reading = PostgresUnitsOfWork(gated, store, schema, max_event_bytes=10_000)

    async def next_event(uow: UnitOfWork) -> Result:
        version, _ = await Streams(uow, CODEC).load("thing:a")
        Streams(uow, CODEC).append("thing:a", version, [Happened(thing_id="a")])
        return Result(201, {"version": version + 1})

    answer = asyncio.create_task(execute(reading, CAUSE, next_event))
    done, _ = await asyncio.wait({answer}, timeout=30)  # a guard against hanging, no timing
    assert answer in done and answer.result().body == {"version": 2}
    assert resets >= 1  # its read connection is on its way back, its reset still held
    gate.set()
    await store.close()
    await gated.close()


async def test_more_commands_than_connections_reading_then_committing_all_commit(
    database_url: str, schema: str, units: PostgresUnitsOfWork
) -> None:
    for name in ("a", "b", "c", "d", "e", "f"):
        await execute(units, CAUSE, thing(name))
    small = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    store = PostgresEventStore(small, schema=schema)
    few = PostgresUnitsOfWork(small, store, schema, max_event_bytes=10_000)

    def next_event(name: str) -> Any:
        async def handler(uow: UnitOfWork) -> Result:
            version, _ = await Streams(uow, CODEC).load(f"thing:{name}")
            Streams(uow, CODEC).append(f"thing:{name}", version, [Happened(thing_id=name)])
            await uow.rows.upsert("things", {"thing_id": name}, {"name": "next"})
            return Result(201)

        return handler

    # six commands on a pool of two: those waiting for the committer hold no connection
    commands = [asyncio.create_task(execute(few, CAUSE, next_event(n))) for n in "abcdef"]
    done, _ = await asyncio.wait(commands, timeout=30)  # a guard against hanging, no timing
    assert len(done) == 6 and all(c.result().status == 201 for c in commands)
    await store.close()
    await small.close()


async def test_a_connection_postgresql_dropped_leaves_the_commands_own_error(
    pool: Pool, units: PostgresUnitsOfWork
) -> None:
    key = IdempotencyKey("tester", "key-lost", "fingerprint")
    with pytest.raises(RuntimeError, match="the command's own error"):
        async with units.begin(CAUSE, key) as uow:
            await uow.rows.upsert("things", {"thing_id": "b"}, {"name": "lost"})
            pid = await pool.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'idle in transaction' AND pid <> pg_backend_pid() LIMIT 1"
            )
            await pool.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.sleep(0.2)
            raise RuntimeError("the command's own error")


async def test_a_lone_command_writes_its_rows_and_events_in_one_statement(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    left: list[Any] = []
    committer = units.committer
    original = committer._write_in_one_statement

    async def watched(*args: Any) -> Any:
        left.append(await original(*args))
        return left[-1]

    committer._write_in_one_statement = watched  # type: ignore[method-assign,assignment]
    assert (await execute(units, CAUSE, thing("a"))).status == 201
    assert left == [[]]  # written in the one statement, nothing left for a transaction
    row = await pool.fetchrow(f"SELECT name, xmin::text AS tx FROM {schema}.things")
    events = await pool.fetch(f"SELECT xmin::text AS tx FROM {schema}.event_store")
    assert row is not None and row["name"] == "1"
    assert [e["tx"] for e in events] == [row["tx"]]  # one transaction: the statement's own
    assert (await store.verify()).ok


async def test_every_committed_command_counts_once_in_the_append_histogram(
    pool: Pool, schema: str, units: PostgresUnitsOfWork
) -> None:
    def appends() -> float:
        for metric in APPEND_SECONDS.collect():
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.labels == {"store": schema}:
                    return sample.value
        return 0.0

    before = appends()
    await execute(units, CAUSE, thing("a"))  # alone: one statement
    await asyncio.gather(*(execute(units, CAUSE, thing(t)) for t in "bcd"))  # together

    async def twice(uow: UnitOfWork) -> Result:  # not one statement: a transaction
        await uow.rows.insert("things", {"thing_id": "e"}, {"name": "inserted"})
        await uow.rows.update("things", {"thing_id": "e"}, {"name": "updated"})
        Streams(uow, CODEC).append("thing:e", 0, [Happened(thing_id="e")])
        return Result(201)

    await execute(units, CAUSE, twice)
    assert appends() - before == 5


async def test_a_lone_stale_command_in_one_statement_stores_neither_rows_nor_events(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    await execute(units, CAUSE, thing("a", n="first"))
    with pytest.raises(ConcurrencyError) as refused:
        await execute(units, CAUSE, thing("a", expected=0, n="second"))
    assert (refused.value.expected, refused.value.actual) == (0, 1)
    assert await pool.fetchval(f"SELECT name FROM {schema}.things") == "first"
    assert await store.head_position() == 1
    assert (await store.verify()).ok


async def test_a_lone_command_whose_row_fails_in_one_statement_gets_its_own_error(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    async def broken(uow: UnitOfWork) -> Result:
        await uow.rows.upsert("things", {"thing_id": "x"}, {"no_such_column": 1})
        Streams(uow, CODEC).append("thing:x", 0, [Happened(thing_id="x")])
        return Result(201)

    with pytest.raises(asyncpg.UndefinedColumnError):
        await execute(units, CAUSE, broken)
    assert await store.head_position() == 0


async def test_a_command_writing_one_table_twice_sees_its_own_first_write(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    # not one statement: WITH clauses share a snapshot, so the update would miss the insert
    async def twice(uow: UnitOfWork) -> Result:
        await uow.rows.insert("things", {"thing_id": "t"}, {"name": "inserted"})
        await uow.rows.update("things", {"thing_id": "t"}, {"name": "updated"})
        Streams(uow, CODEC).append("thing:t", 0, [Happened(thing_id="t")])
        return Result(201)

    await execute(units, CAUSE, twice)
    assert await pool.fetchval(f"SELECT name FROM {schema}.things") == "updated"
    assert await store.head_position() == 1


async def test_commands_writing_one_table_commit_in_one_statement_of_many_rows(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    outcomes = await asyncio.gather(*(execute(units, CAUSE, thing(f"t{i}")) for i in range(6)))
    assert [o.status for o in outcomes] == [201] * 6
    rows = await pool.fetch(f"SELECT thing_id, xmin::text AS tx FROM {schema}.things")
    assert sorted(r["thing_id"] for r in rows) == [f"t{i}" for i in range(6)]
    events = await pool.fetch(f"SELECT xmin::text AS tx FROM {schema}.event_store")
    assert len(events) == 6
    assert len({r["tx"] for r in rows} | {e["tx"] for e in events}) <= 2  # one batch, or two


async def test_two_commands_upserting_one_row_in_a_batch_both_commit_in_order(
    pool: Pool, schema: str, units: PostgresUnitsOfWork, store: PostgresEventStore
) -> None:
    # one INSERT of both rows would meet the same key twice: the batch takes a transaction
    def named(n: str, stream: str) -> Any:
        async def handler(uow: UnitOfWork) -> Result:
            await uow.rows.upsert("things", {"thing_id": "shared"}, {"name": n})
            Streams(uow, CODEC).append(stream, 0, [Happened(thing_id=stream)])
            return Result(201)

        return handler

    first, second = await asyncio.gather(
        execute(units, CAUSE, named("first", "thing:1")),
        execute(units, CAUSE, named("second", "thing:2")),
    )
    assert (first.status, second.status) == (201, 201)
    assert await pool.fetchval(f"SELECT name FROM {schema}.things") == "second"
    assert await store.head_position() == 2


async def test_a_cached_stream_the_store_no_longer_has_is_read_again_whole(
    pool: Pool, schema: str, store: PostgresEventStore
) -> None:
    # given a stream of 3 events loaded (and cached) by a service
    units = PostgresUnitsOfWork(
        pool, store, schema, max_event_bytes=10_000, stream_cache_bytes=1 << 20
    )
    await store.append("thing:r", 0, [CODEC.encode(Happened(thing_id=t), {}) for t in "abc"])

    async def load() -> list[str]:
        async with units.begin(CAUSE) as uow:
            _, events = await Streams(uow, CODEC).load("thing:r")
        return [e.thing_id for e in events]

    assert await load() == ["a", "b", "c"]
    # when the store is restored from a backup taken at its first event, and two other
    # events are appended there (at versions 2 and 3, where the cache knows others)
    await store.close()
    await cut_back(pool, schema, 1)
    restored = PostgresEventStore(pool, schema=schema)
    await restored.append("thing:r", 1, [CODEC.encode(Happened(thing_id=t), {}) for t in "yz"])
    # then a load returns what the store has, not what was cached
    assert await load() == ["a", "y", "z"]
    await restored.close()
