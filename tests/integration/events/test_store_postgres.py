"""What only the PostgreSQL store must prove: many processes, out-of-order commits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from clr_events.errors import ConcurrencyError
from clr_events.pg import Connection, Pool
from clr_events.store.base import ANY, NewEvent, StoredEvent
from clr_events.store.postgres import PostgresEventStore


@pytest.fixture
async def store(pool: Pool, schema: str) -> AsyncIterator[PostgresEventStore]:
    created = PostgresEventStore(pool, schema=schema)
    await created.migrate()
    yield created
    await created.close()


def event(**data: object) -> NewEvent:
    return NewEvent("test.Happened.v1", dict(data))


@asynccontextmanager
async def processes(
    database_url: str, schema: str, count: int
) -> AsyncIterator[list[PostgresEventStore]]:
    """Stores with pools of their own, each standing for one service instance."""
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=10) for _ in range(count)]
    stores = [PostgresEventStore(p, schema=schema) for p in pools]
    try:
        yield stores
    finally:
        for opened, closing in zip(stores, pools, strict=True):
            await opened.close()
            await closing.close()


async def test_fifty_writers_in_five_processes_at_one_version_exactly_one_wins(
    database_url: str, pool: Pool, schema: str
) -> None:
    async with processes(database_url, schema, 5) as stores:
        await stores[0].migrate()
        await stores[0].append("org-1", 0, [event(n=0)])
        outcomes = await asyncio.gather(
            *(
                stores[w % 5].append("org-1", 1, [event(writer=w), event(writer=w)])
                for w in range(50)
            ),
            return_exceptions=True,
        )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert sum(isinstance(o, ConcurrencyError) for o in outcomes) == 49
    store = PostgresEventStore(pool, schema=schema)
    stream = await store.read_stream("org-1")
    assert [e.version for e in stream] == [1, 2, 3]
    assert stream[1].data["writer"] == stream[2].data["writer"]
    assert await store.head_position() == 3
    assert (await store.verify()).ok


async def test_a_tailing_reader_never_skips_an_event_that_commits_late(
    pool: Pool, schema: str
) -> None:
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    seen: list[StoredEvent] = []
    total = 1 + 20 * 3

    async def tail() -> None:
        position = 0
        while len(seen) < total:
            batch = await store.read_all(position, 100)
            seen.extend(batch)
            if batch:
                position = batch[-1].position
            else:
                await store.wait_beyond(position, 1.0)

    reader = asyncio.create_task(tail())
    try:
        await _hold_first_commit_while_twenty_writers_wait(store, pool, seen)
        await asyncio.wait_for(reader, 10)
    finally:
        reader.cancel()
        await store.close()

    assert [e.position for e in seen] == list(range(1, total + 1))
    assert seen[0].stream_id == "slow"
    assert len({e.event_id for e in seen}) == total
    assert (await store.verify()).ok


async def _hold_first_commit_while_twenty_writers_wait(
    store: PostgresEventStore, pool: Pool, seen: list[StoredEvent]
) -> None:
    async with pool.acquire() as slow, slow.transaction():
        # the first writer takes its position and holds its transaction open ...
        await store.append_in(slow, "slow", 0, [event(writer="slow")])
        writers = [
            asyncio.create_task(store.append(f"fast-{w}", ANY, [event(writer=w) for _ in range(3)]))
            for w in range(20)
        ]
        await asyncio.sleep(0.5)
        # ... while twenty others try to commit: none may become visible before it
        assert seen == []
        assert not any(w.done() for w in writers)
    await asyncio.gather(*writers)


async def test_a_rolled_back_append_leaves_no_gap(
    store: PostgresEventStore, pool: Pool, schema: str
) -> None:
    await store.append("a", 0, [event()])
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await store.append_in(conn, "b", 0, [event()])
            raise RuntimeError("the caller's transaction fails")
    result = await store.append("c", 0, [event()])
    assert result.first_position == 2
    assert (await store.verify()).ok


async def test_stored_events_cannot_be_updated_or_deleted(
    store: PostgresEventStore, pool: Pool, schema: str
) -> None:
    await store.append("a", 0, [event()])
    for statement in (
        "UPDATE {s}.event_store SET type = 'x'",
        "DELETE FROM {s}.event_store",
        "TRUNCATE {s}.event_store",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute(statement.format(s=schema))
    assert len(await store.read_all()) == 1


async def test_a_removed_event_is_reported_as_missing(
    store: PostgresEventStore, pool: Pool, schema: str
) -> None:
    for i in range(5):
        await store.append(f"s{i}", 0, [event()])
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(f"DELETE FROM {schema}.event_store WHERE position IN (3, 5)")
    problems = (await store.verify()).problems
    assert "positions 3..3 are missing" in problems
    assert "positions 5..5 are missing" in problems


async def test_concurrent_appends_to_one_stream_keep_their_call_order(
    store: PostgresEventStore,
) -> None:
    # a group-commit batch holds each stream once; later appends of it wait their turn
    results = await asyncio.gather(
        *(store.append("org-1", ANY, [event(n=n)]) for n in range(30)),
        *(store.append(f"org-{k}", 0, [event(n=k)]) for k in range(2, 12)),
    )
    assert [r.version for r in results[:30]] == list(range(1, 31))
    assert [e.data["n"] for e in await store.read_stream("org-1")] == list(range(30))
    assert (await store.verify()).ok


async def test_the_append_function_refuses_a_stream_twice_in_one_batch(
    store: PostgresEventStore, pool: Pool, schema: str
) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="twice in one batch"):
        await pool.fetchrow(
            f"SELECT * FROM {schema}.event_store_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            ["a", "a"],
            [None, None],
            [1, 1],
            [uuid.uuid4(), uuid.uuid4()],
            ["t", "t"],
            [1, 1],
            ["{}", "{}"],
            ["{}", "{}"],
            [datetime.now(UTC)] * 2,
            [bytes(32)] * 2,
        )
    assert await store.head_position() == 0


@pytest.mark.parametrize(
    ("expected", "outcome"),
    [(ANY, 2), (1, 2), (0, "conflict at 1")],
    ids=["any-version", "at-the-new-version", "at-the-version-it-read"],
)
async def test_a_single_event_append_that_waited_for_another_process_is_decided_after_it(
    store: PostgresEventStore,
    database_url: str,
    pool: Pool,
    schema: str,
    expected: int | None,
    outcome: object,
) -> None:
    # A lone writer's one-event append is one statement whose snapshot may predate the
    # other process's commit: it must not write a stale version (any-version: the unique
    # violation sends it to the append function), nor refuse on one (at the new version:
    # the refusal does), nor write over the version it read (a true conflict).
    here = store
    async with processes(database_url, schema, 1) as (there,):
        async with pool.acquire() as holder, holder.transaction():
            await here.append_in(holder, "org-1", 0, [event(by="here")])
            waiting = asyncio.create_task(there.append("org-1", expected, [event(by="there")]))
            try:
                waiting_query = await _blocked_by(holder)
            except AssertionError:
                waiting.cancel()
                raise
            # operators see the statement itself, not its file's comments (a refusal
            # read before the lock goes on to the append function without waiting)
            assert waiting_query.startswith(("WITH stream AS", "SELECT positions, versions"))
        if outcome == "conflict at 1":
            with pytest.raises(ConcurrencyError) as refused:
                await waiting
            assert refused.value.actual == 1
        else:
            assert (await waiting).version == outcome
    stream = await here.read_stream("org-1")
    assert [(e.version, e.data["by"]) for e in stream] == [(1, "here"), (2, "there")][
        : 1 if outcome == "conflict at 1" else 2
    ]
    assert await here.head_position() == len(stream)
    assert (await here.verify()).ok


async def _blocked_by(holder: Connection) -> str:
    """The query of a backend that waits for one of ``holder``'s locks, once there is one."""
    for _ in range(500):
        # pg_stat_activity is read once per transaction unless its snapshot is cleared
        await holder.execute("SELECT pg_stat_clear_snapshot()")
        query: str | None = await holder.fetchval(
            "SELECT query FROM pg_stat_activity"
            " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)) LIMIT 1"
        )
        if query is not None:
            return query
        await asyncio.sleep(0.01)
    raise AssertionError("the other process's append never waited for the head lock")


async def test_lone_writers_in_five_processes_keep_positions_contiguous_and_chained(
    database_url: str, pool: Pool, schema: str
) -> None:
    async with processes(database_url, schema, 5) as stores:
        await stores[0].migrate()

        async def writer(w: int) -> None:
            for n in range(40):  # one event at a time: each append is the single statement
                await stores[w].append("shared" if n % 2 else f"own-{w}", ANY, [event(w=w, n=n)])

        failures = await asyncio.gather(*(writer(w) for w in range(5)), return_exceptions=True)
    assert failures == [None] * 5
    store = PostgresEventStore(pool, schema=schema)
    everything = await store.read_all(0, 1000)
    assert [e.position for e in everything] == list(range(1, 201))
    assert [e.version for e in await store.read_stream("shared")] == list(range(1, 101))
    assert (await store.verify()).ok


async def test_close_waits_for_appends_under_way_and_releases_every_connection(
    database_url: str, schema: str
) -> None:
    own_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    store = PostgresEventStore(own_pool, schema=schema)
    try:
        await store.migrate()
        alone = asyncio.create_task(store.append("org-1", 0, [event(n=1)]))
        queued = asyncio.create_task(store.append("org-2", 0, [event(n=2)]))
        await asyncio.sleep(0)  # the first writes inline, the second queues behind it
        await asyncio.wait_for(store.close(), 10)
        assert alone.done() and queued.done()
        assert [alone.result().version, queued.result().version] == [1, 1]
        assert own_pool.get_idle_size() == own_pool.get_size()  # the writer is back
    finally:
        own_pool.terminate()


async def test_waiting_listens_again_after_its_connection_is_lost_and_leaks_none(
    database_url: str, schema: str, pool: Pool
) -> None:
    own_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    store = PostgresEventStore(own_pool, schema=schema)
    try:
        await store.migrate()
        assert not await store.wait_beyond(0, 0.05)  # LISTEN on one of the two connections
        listening = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname ="
            " current_database() AND pid <> pg_backend_pid() ORDER BY backend_start DESC LIMIT 1"
        )
        await pool.execute("SELECT pg_terminate_backend($1)", listening)
        for _ in range(3):  # the lost listener goes back to the pool each time, not kept
            await asyncio.sleep(0.2)
            waiting = asyncio.create_task(store.wait_beyond(0, 5.0))
            await asyncio.sleep(0.1)
            await store.append(f"org-{uuid.uuid4().hex[:6]}", 0, [event(n=1)])
            assert await asyncio.wait_for(waiting, 5)
        # lost again, then closed before anyone waits: nothing to give back twice
        listening = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname ="
            " current_database() AND pid <> pg_backend_pid() ORDER BY backend_start DESC LIMIT 1"
        )
        await pool.execute("SELECT pg_terminate_backend($1)", listening)
        await asyncio.sleep(0.2)
        await store.close()
        assert own_pool.get_idle_size() == own_pool.get_size()
    finally:
        own_pool.terminate()


async def test_a_writer_whose_session_postgresql_ended_is_replaced_not_kept(
    pool: Pool, store: PostgresEventStore
) -> None:
    # the store keeps its writer connection; PostgreSQL ending that session (a restart,
    # an administrator) must cost at most the append under way, never every later one
    await store.append("s-1", ANY, [event(n=1)])
    assert store._writer is not None
    writer = store._writer.get_server_pid()
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", writer)
    outcomes: list[int | str] = []
    for n in range(2, 6):
        try:
            outcomes.append((await store.append("s-1", ANY, [event(n=n)])).version)
        except Exception as lost:  # the append under way may meet the lost session
            outcomes.append(type(lost).__name__)
    assert all(isinstance(o, int) for o in outcomes[1:]), outcomes
    assert (await store.verify()).ok


async def test_a_row_inserted_above_the_head_is_checked_and_reported(
    store: PostgresEventStore, pool: Pool, schema: str
) -> None:
    from clr_events.store.hashing import chain, content_digest

    for i in range(3):
        await store.append(f"s{i}", 0, [event()])
    head_hash = await pool.fetchval(f"SELECT hash FROM {schema}.event_store_head")
    moment = datetime.now(UTC)
    event_id = uuid.uuid4()
    digest = content_digest("forged", event_id, "T", 1, "{}", "{}", moment)
    # the trigger refuses UPDATE and DELETE, not INSERT: a row with a correct chain hash
    await pool.execute(
        f"INSERT INTO {schema}.event_store VALUES (4, 'forged', 1, $1, 'T', 1, '{{}}', '{{}}',"
        " $2, $3)",
        event_id,
        moment,
        chain(head_hash, 4, 1, digest),
    )
    report = await store.verify()
    assert report.checked == 4 and report.last_position == 4
    assert any("beyond the head" in problem for problem in report.problems), report.problems
