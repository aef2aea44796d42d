"""The PostgreSQL event store (asyncpg).

Writes go through one server-side function, ``event_store_append``, which takes the head
row lock, checks expected versions, assigns contiguous positions, extends the hash chain
and notifies tailing readers, all inside the server: a plain ``append`` never holds the
lock across a client round trip. An append that joins a caller's transaction
(``append_all(conn=...)``, ``append_in``) holds it until that transaction commits: the unit
of work (``clr_events.application.postgres``) appends last, right before its COMMIT.

Group commit: within one process, appends that arrive while a write is in flight queue up
and the next write takes them in one round trip and one durable commit (one version
lookup and one INSERT in the server). A batch holds each stream at most once, so one
stream's appends keep their order. A lone writer skips the queue and writes inline. The
process's one writer keeps its own connection. Only the appends whose version conflicts
fail.

A write of one event to one stream (a lone writer's usual append) is one plain statement
instead (``append_one.sql``): a PL/pgSQL call starts each of its statements anew in every
transaction, which cost a lone writer about a third of its time. Where that statement may
have read the stream's version before another process's commit, it leaves the decision
to the append function.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TypeVar, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from clr_events.errors import ConcurrencyError
from clr_events.migrations import events_migrations, migrate
from clr_events.observability.metrics import APPEND_SECONDS
from clr_events.pg import Connection, Pool
from clr_events.store.base import (
    AppendResult,
    EncodedEvent,
    ExpectedVersion,
    NewEvent,
    StoredEvent,
    StreamAppend,
    VerificationReport,
    check_append,
    check_append_all,
    encode,
)
from clr_events.store.hashing import GENESIS_HASH
from clr_events.store.verify import ChainVerifier, RawRow, check_range

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MAX_BATCH = 1000  # appends per round trip
_COLUMNS = (
    "position, stream_id, version, event_id, type, schema_version,"
    " data::text, metadata::text, recorded_at, hash"
)


class _Append:
    __slots__ = ("events", "expected", "stream_id")

    def __init__(
        self, stream_id: str, expected: ExpectedVersion, events: list[EncodedEvent]
    ) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.events = events


def _to_stored(rows: list[asyncpg.Record]) -> list[StoredEvent]:
    """Rows of ``_COLUMNS`` as stored events (data and metadata decoded on first use).

    Each row's tuple is built from the record by ``tuple.__new__``: a NamedTuple's own
    constructor is a Python function call per row, and building the events bounds
    reading all of them.
    """
    new = tuple.__new__
    return [new(StoredEvent, row) for row in rows]


_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])


def _timed(method: _Method) -> _Method:
    """Observe each call's duration in ``clr_event_store_append_duration_seconds``."""

    @functools.wraps(method)
    async def timed(self: PostgresEventStore, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._append_seconds.observe(time.perf_counter() - started)

    return cast(_Method, timed)


class PostgresEventStore:
    """An event store in one PostgreSQL schema, shared by every process of a service."""

    def __init__(self, pool: Pool, *, schema: str = "public") -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"not a plain schema name: {schema!r}")
        self._pool = pool
        self._schema = schema
        self._channel = _channel(schema)
        self._append_sql = (
            f"SELECT positions, versions FROM {schema}.event_store_append"
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
        self._append_one_sql = sql_file("append_one.sql", schema)
        self._versions_sql = (
            f"SELECT version FROM {schema}.event_store_versions($1, $2) ORDER BY ord"
        )
        self._read_all_sql = (
            f"SELECT {_COLUMNS} FROM {schema}.event_store"
            " WHERE position > $1 ORDER BY position LIMIT $2"
        )
        self._queue: list[tuple[_Append, asyncio.Future[AppendResult]]] = []
        self._idle = asyncio.Event()  # set: no write under way, inline or drained
        self._idle.set()
        self._drain_task: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly
        self._listener: PoolConnectionProxy[asyncpg.Record] | None = None
        self._writer: PoolConnectionProxy[asyncpg.Record] | None = None
        self._notified_position = 0
        self._notified = asyncio.Event()
        self._listening = asyncio.Lock()
        self._append_seconds = APPEND_SECONDS.labels(schema)

    async def migrate(self) -> None:
        """Apply the store's pending migrations (``clr_events/migrations/event_store``):
        the schema, tables, trigger and append function."""
        await migrate(self._pool, self._schema, "event_store", events_migrations("event_store"))

    # ------------------------------------------------------------------ writing
    @_timed
    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        """Append events to a stream if it is at ``expected_version`` (group-committed).

        Raises:
            ConcurrencyError: the stream is at another version; nothing was written.
        """
        request = _prepare(stream_id, expected_version, events)
        if self._idle.is_set():
            # Lone-writer fast path: write inline, no hop through a queue.
            self._idle.clear()
            try:
                (outcome,) = await self._write_as_writer([request])
            finally:
                self._idle.set()
                self._start_drain()
            return _unwrap(request, outcome)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        return await future

    @_timed
    async def append_in(
        self,
        conn: Connection,
        stream_id: str,
        expected_version: ExpectedVersion,
        events: Sequence[NewEvent],
    ) -> AppendResult:
        """Append inside the caller's transaction (READ COMMITTED).

        The head lock is then held until the caller commits: keep such transactions short.
        """
        request = _prepare(stream_id, expected_version, events)
        (outcome,) = await self._write(conn, [request])
        return _unwrap(request, outcome)

    @_timed
    async def append_all(
        self, appends: Sequence[StreamAppend], *, conn: Connection | None = None
    ) -> list[AppendResult]:
        """Append to several streams all or nothing, in one call of the append function.

        ``conn``: join the caller's transaction (READ COMMITTED); the head lock is then
        held until the caller commits, so send the commit right after (a unit of work
        appends last). Without it the append commits on its own.

        Raises:
            ConcurrencyError: a stream is at another version; nothing was written (in
                the caller's transaction, roll it back).
            ValueError: no appends, or a stream named twice.
        """
        batch = _batch(appends)
        if conn is None:
            async with self._pool.acquire() as own, own.transaction():
                outcomes = await self._write(own, batch)
                results = [_unwrap(r, o) for r, o in zip(batch, outcomes, strict=True)]
            return results
        outcomes = await self._write(conn, batch)
        return [_unwrap(r, o) for r, o in zip(batch, outcomes, strict=True)]

    async def append_each(
        self, appends: Sequence[StreamAppend], *, conn: Connection
    ) -> list[AppendResult | ConcurrencyError]:
        """Append to several streams in the caller's transaction, each on its own terms.

        Unlike ``append_all`` a refused append does not stop the others: each append's
        outcome is its result, or the ``ConcurrencyError`` it met (nothing of it written).
        The head lock is held until the caller commits or rolls back. Not timed here: the
        caller, a group committer, observes each of its units' own wait
        (``observe_append``), as it does for ``append_statement``.

        Raises:
            ValueError: no appends, or a stream named twice.
        """
        batch = _batch(appends)
        outcomes: list[AppendResult | ConcurrencyError] = []
        for request, outcome in zip(batch, await self._write(conn, batch), strict=True):
            try:
                outcomes.append(_unwrap(request, outcome))
            except ConcurrencyError as refused:
                outcomes.append(refused)
        return outcomes

    async def stale(
        self, appends: Sequence[StreamAppend], *, conn: Connection
    ) -> list[ConcurrencyError | None]:
        """Per append, the refusal it would meet because its stream has moved on already.

        Read without the head lock, from committed data: a stream's version only grows, so
        an append found stale here would be refused; one found current (None) may still be
        refused by the append, if another commit moves its stream meanwhile.
        """
        checked = [i for i, a in enumerate(appends) if a.expected_version is not None]
        stale: list[ConcurrencyError | None] = [None] * len(appends)
        if checked:
            versions = await conn.fetch(
                self._versions_sql,
                [appends[i].stream_id for i in checked],
                [appends[i].expected_version for i in checked],
            )
            for i, (version,) in zip(checked, versions, strict=True):
                append = appends[i]
                if version != append.expected_version:
                    stale[i] = ConcurrencyError(append.stream_id, append.expected_version, version)
        return stale

    def _start_drain(self) -> None:
        if self._queue and self._idle.is_set():
            self._idle.clear()
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                try:
                    outcomes = await self._write_as_writer([request for request, _ in batch])
                except Exception as error:  # the whole round trip failed: tell each caller
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    raise
                for (request, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    try:
                        future.set_result(_unwrap(request, outcome))
                    except ConcurrencyError as conflict:
                        future.set_exception(conflict)
                if not self._queue:
                    # Let the callers just answered run first: those that append again at
                    # once join the next batch, instead of one of them writing alone.
                    await asyncio.sleep(0)
        except Exception:
            for _, future in self._queue:  # callers queued behind a failure are not stranded
                if not future.done():
                    future.set_exception(ConnectionError("the event store writer failed"))
            self._queue.clear()
        finally:
            self._idle.set()
            # never leave a queued append without a writer
            self._start_drain()

    def _next_batch(self) -> list[tuple[_Append, asyncio.Future[AppendResult]]]:
        """Take queued appends in order, each stream once; later ones wait for the next."""
        batch: list[tuple[_Append, asyncio.Future[AppendResult]]] = []
        rest: list[tuple[_Append, asyncio.Future[AppendResult]]] = []
        streams: set[str] = set()
        for item in self._queue:
            stream_id = item[0].stream_id
            # once a stream waits, its later appends wait too: nothing of it jumps ahead
            (rest if stream_id in streams or len(batch) == _MAX_BATCH else batch).append(item)
            streams.add(stream_id)
        self._queue = rest
        return batch

    async def _write_as_writer(self, batch: list[_Append]) -> list[tuple[int | None, int]]:
        # The process's one writer keeps its connection: returning it to the pool after
        # every append would cost a reset round trip each time.
        if self._writer is None or _lost(self._writer):
            self._writer = await self._pool.acquire()
        try:
            if len(batch) == 1 and len(batch[0].events) == 1:
                outcome = await self._write_one(self._writer, batch[0])
                if outcome is not None:
                    return [outcome]
            return await self._write(self._writer, batch)
        except (
            OSError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            asyncpg.PostgresConnectionError,
            asyncpg.OperatorInterventionError,
        ):
            # the session is gone or unusable (PostgreSQL ended it, or asyncpg lost track
            # of it): never keep it, or every later append meets the same error
            writer, self._writer = self._writer, None
            try:
                await self._pool.release(writer, timeout=1)
            except Exception:  # a connection past saving: close it
                with contextlib.suppress(Exception):
                    writer.terminate()
            raise

    async def _write_one(self, conn: Connection, request: _Append) -> tuple[int, int] | None:
        """One event in one statement (autocommit); None: let the append function decide."""
        (event,) = request.events
        try:
            row = await conn.fetchrow(
                self._append_one_sql,
                request.stream_id,
                request.expected,
                event.event_id,
                event.type,
                event.schema_version,
                event.data_json,
                event.metadata_json,
                event.recorded_at,
                event.digest,
            )
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != "event_store_stream_id_version_key":
                raise
            return None  # the stream moved while the statement waited for the head
        assert row is not None
        position, version = row
        # a refusal may rest on a version read before the head lock: decide again under it
        return None if position is None else (position, version)

    async def _write(self, conn: Connection, batch: list[_Append]) -> list[tuple[int | None, int]]:
        row = await conn.fetchrow(self._append_sql, *_arguments(batch))
        assert row is not None
        return list(zip(row[0], row[1], strict=True))

    def observe_append(self, seconds: float) -> None:
        """Count an append made through ``append_each`` or ``append_statement`` in
        ``clr_event_store_append_duration_seconds``: from its command's commit call to
        the commit."""
        self._append_seconds.observe(seconds)

    def append_statement(self, appends: Sequence[StreamAppend], first: int) -> AppendStatement:
        """The all-or-nothing append of ``appends`` as a query whose parameters are numbered
        from ``$first``, to end a statement that writes other rows in WITH clauses: one
        round trip and its own commit for all of it (see ``AppendStatement``).

        Raises:
            ValueError: no appends, or a stream named twice.
        """
        batch = _batch(appends)
        params = ", ".join(f"${first + i}" for i in range(_APPEND_PARAMETERS))
        return AppendStatement(
            f"SELECT positions, versions FROM {self._schema}.event_store_append_or_fail({params})",
            _arguments(batch),
            batch,
        )

    # ------------------------------------------------------------------ reading
    async def read_stream(
        self, stream_id: str, from_version: int = 1, *, conn: Connection | None = None
    ) -> list[StoredEvent]:
        """The events of one stream from ``from_version`` on, in version order.

        ``conn``: read inside the caller's transaction (to decide and ``append_in`` there).
        """
        rows = await (conn or self._pool).fetch(
            f"SELECT {_COLUMNS} FROM {self._schema}.event_store"
            " WHERE stream_id = $1 AND version >= $2 ORDER BY version",
            stream_id,
            from_version,
        )
        return _to_stored(rows)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events above ``after_position``, in position order."""
        rows = await self._pool.fetch(self._read_all_sql, after_position, limit)
        return _to_stored(rows)

    async def replay(
        self, after_position: int = 0, page: int = 5000
    ) -> AsyncIterator[list[StoredEvent]]:
        """Every event above ``after_position``, a page at a time, in position order.

        The next page's query is sent as soon as a page's rows arrive, before they are
        decoded, so PostgreSQL reads the next page while Python decodes this one. Positions
        are contiguous and commit-ordered, so paging by position skips nothing.
        """
        query = self._read_all_sql
        pending = asyncio.ensure_future(self._pool.fetch(query, after_position, page))
        try:
            while rows := await pending:
                pending = asyncio.ensure_future(self._pool.fetch(query, rows[-1][0], page))
                yield _to_stored(rows)
        finally:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)

    async def head_position(self) -> int:
        """The highest committed position (0 for an empty store)."""
        position = await self._pool.fetchval(
            f"SELECT position FROM {self._schema}.event_store_head"
        )
        return int(position)

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        """Wait for a commit above ``position``: LISTEN wakes us, the head row decides."""
        await self._listen()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._notified.clear()
            if self._notified_position > position or await self.head_position() > position:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._notified.wait(), remaining)
            except TimeoutError:
                return await self.head_position() > position

    async def _listen(self) -> None:
        # one at a time: two relays of one store waiting at once would each take a
        # connection, and the one overwritten would never go back to the pool (whose
        # close then waits for it forever)
        async with self._listening:
            if self._listener is not None:
                if not _lost(self._listener):
                    return
                self._listener = None
            listener = await self._pool.acquire()
            try:
                await listener.add_listener(self._channel, self._on_notify)
            except BaseException:
                await self._pool.release(listener)
                raise
            self._listener = listener

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._notified_position = max(self._notified_position, int(str(payload)))
        self._notified.set()

    async def close(self) -> None:
        """Wait for appends under way, then release the writer and LISTEN connections."""
        while not self._idle.is_set():  # a drain may hand over to the next one
            await self._idle.wait()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await self._pool.release(writer)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.remove_listener(self._channel, self._on_notify)
            except asyncpg.InterfaceError:
                return  # lost with its connection: asyncpg has given it back to the pool
            await self._pool.release(listener)

    # ----------------------------------------------------------------- auditing
    async def verify(
        self, first_position: int = 1, last_position: int | None = None, page: int = 5000
    ) -> VerificationReport:
        """Recompute the hash chain over ``first_position..last_position`` from stored bytes.

        By default to the last position stored: a row stored beyond the head (the
        append-only trigger lets an INSERT through) is checked and reported.

        Raises:
            VerificationRangeError: ``first`` after ``last``, or the range past the end.
        """
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            head = await conn.fetchrow(
                f"SELECT position, hash FROM {self._schema}.event_store_head"
            )
            assert head is not None
            stored_end = await conn.fetchval(
                f"SELECT max(position) FROM {self._schema}.event_store"
            )
            end = max(head["position"], stored_end or 0)
            last = check_range(first_position, last_position, end)
            previous = GENESIS_HASH
            if first_position > 1:
                previous = await conn.fetchval(
                    f"SELECT hash FROM {self._schema}.event_store WHERE position = $1",
                    first_position - 1,
                )
                if previous is None:
                    return VerificationReport(
                        first_position, last, 0, (f"position {first_position - 1} is missing",)
                    )
            checker = ChainVerifier(first_position, previous)
            cursor = first_position - 1
            while cursor < last:
                rows = await conn.fetch(
                    f"SELECT {_COLUMNS} FROM {self._schema}.event_store"
                    " WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3",
                    cursor,
                    last,
                    page,
                )
                if not rows:
                    break
                for row in rows:
                    checker.feed(RawRow(*row))
                cursor = rows[-1][0]
            return checker.finish(last, (head["position"], head["hash"]))


def _channel(schema: str) -> str:
    return f"event_store_{schema}"


def sql_file(name: str, schema: str) -> str:
    """One of the store's SQL files (``sql/``) for ``schema``, as the store runs it.

    Lines that start with ``--`` document the file and are not sent: ``pg_stat_activity``
    shows the first 1,024 characters of a query, which should be the statement. Comments
    inside function bodies are indented and kept (PostgreSQL stores them with the body).
    """
    text = (resources.files("clr_events.store") / "sql" / name).read_text()
    lines = [line for line in text.splitlines() if not line.startswith("--")]
    return "\n".join(lines).format(schema=schema, channel=_channel(schema))


def _prepare(stream_id: str, expected: ExpectedVersion, events: Sequence[NewEvent]) -> _Append:
    check_append(expected, events)
    now = datetime.now(UTC)
    return _Append(stream_id, expected, [encode(stream_id, event, now) for event in events])


def _lost(conn: PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Whether a connection the store keeps is gone: closed, or detached (asyncpg gives a
    connection back to the pool when it is lost, and its proxy then refuses every call)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


_APPEND_PARAMETERS = 10
"""The append function's parameters (``_arguments``)."""


def _batch(appends: Sequence[StreamAppend]) -> list[_Append]:
    """Several streams' appends, checked and encoded with one recording time.

    Raises:
        ValueError: no appends, or a stream named twice.
    """
    check_append_all(appends)
    now = datetime.now(UTC)
    return [
        _Append(a.stream_id, a.expected_version, [encode(a.stream_id, e, now) for e in a.events])
        for a in appends
    ]


def _arguments(batch: list[_Append]) -> list[list[Any]]:
    """The append function's arguments for a batch: per append, then per event."""
    events = [event for request in batch for event in request.events]
    return [
        [request.stream_id for request in batch],
        [request.expected for request in batch],
        [len(request.events) for request in batch],
        [event.event_id for event in events],
        [event.type for event in events],
        [event.schema_version for event in events],
        [event.data_json for event in events],
        [event.metadata_json for event in events],
        [event.recorded_at for event in events],
        [event.digest for event in events],
    ]


class AppendStatement:
    """An append to end a statement with: its query, its arguments, and the outcomes.

    The query calls ``event_store_append_or_fail``, which raises when any append is
    refused, so the rows the statement writes besides are undone with it.
    """

    REFUSED = "event_store_append_refused"

    __slots__ = ("_batch", "arguments", "sql")

    def __init__(self, sql: str, arguments: list[list[Any]], batch: list[_Append]) -> None:
        self.sql = sql
        self.arguments = arguments
        self._batch = batch

    def results(self, row: asyncpg.Record) -> list[AppendResult]:
        """The appends' results from the statement's row (all written)."""
        outcomes = zip(row[0], row[1], strict=True)
        return [_unwrap(r, o) for r, o in zip(self._batch, outcomes, strict=True)]

    def refusals(self, error: asyncpg.PostgresError) -> list[ConcurrencyError | None] | None:
        """Per append, its refusal (None: it would have been written), when ``error`` is the
        append refusing; None for any other error. Nothing of the statement was written."""
        if not isinstance(error, asyncpg.RaiseError) or error.args[:1] != (self.REFUSED,):
            return None
        detail = json.loads(error.detail or "{}")
        refused: list[ConcurrencyError | None] = []
        for request, position, version in zip(
            self._batch, detail["positions"], detail["versions"], strict=True
        ):
            refused.append(
                None
                if position is not None
                else ConcurrencyError(request.stream_id, request.expected, version)
            )
        return refused


def _unwrap(request: _Append, outcome: tuple[int | None, int]) -> AppendResult:
    last_position, version = outcome
    if last_position is None:
        raise ConcurrencyError(request.stream_id, request.expected, version)
    count = len(request.events)
    return AppendResult(request.stream_id, version, last_position - count + 1, last_position)
