"""The unit of work on PostgreSQL: the service's schema, its store, its own tables.

The fast path: everything a command writes besides its events (its rows, the idempotency
key and result) is written first; the append, which takes the store's head row lock, comes
last and the commit right after it, so the head lock is held for one round trip (the
append's reply and the COMMIT), not across the command's other writes. An unkeyed command
does not even hold a transaction of its own: it records its row writes and hands them with
its appends to the service's ``UnitCommitter``, which writes every command waiting in one
transaction (group commit for whole commands), taking the head lock once per batch. A
command with nothing else to write and one stream to append to goes through the store's
group-commit writer instead.

The guarantees stay those of one transaction: a stale version raises ``ConcurrencyError``
at the append and the rollback takes the command's rows and key with it; two requests
with one key serialise on the key's row (the second waits for the first's commit and
answers its result).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction as PgTransaction

from clr_events.application.uow import (
    Cause,
    IdempotencyKey,
    IdempotencyKeyReusedError,
    Result,
    StreamCache,
)
from clr_events.errors import ConcurrencyError
from clr_events.migrations import events_migrations, migrate
from clr_events.pg import Connection, Pool
from clr_events.store.base import StoredEvent, StreamAppend
from clr_events.store.postgres import PostgresEventStore

QUERY = Cause("query", "query")
"""The cause of a query's unit of work (it records nothing)."""
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _name(identifier: str) -> str:
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"not a plain identifier: {identifier!r}")
    return identifier


class IdempotencyStore:
    """Results of keyed commands, per actor and key, in the service's schema."""

    def __init__(self, schema: str) -> None:
        self._schema = _name(schema)
        self._table = f"{self._schema}.idempotency_keys"

    async def migrate(self, pool: Pool) -> None:
        """Apply the table's pending migrations (``clr_events/migrations/idempotency``)."""
        await migrate(pool, self._schema, "idempotency", events_migrations("idempotency"))

    async def claim(self, conn: Connection, key: IdempotencyKey) -> Result | None:
        """Claim the key in this transaction; the stored result if it was used before.

        Raises:
            IdempotencyKeyReusedError: the key was used for another request.
        """
        inserted = await conn.fetchval(
            f"INSERT INTO {self._table} (actor, key, fingerprint) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            key.actor,
            key.key,
            key.fingerprint,
        )
        if inserted:
            return None
        row = await conn.fetchrow(
            f"SELECT fingerprint, status, body FROM {self._table} WHERE actor = $1 AND key = $2",
            key.actor,
            key.key,
        )
        assert row is not None
        if row["fingerprint"] != key.fingerprint:
            raise IdempotencyKeyReusedError
        return Result(int(row["status"]), orjson.loads(row["body"]), replayed=True)

    async def record(self, conn: Connection, key: IdempotencyKey, result: Result) -> None:
        """Store the result of the keyed command (same transaction as its events)."""
        await conn.execute(
            f"UPDATE {self._table} SET status = $3, body = $4::jsonb WHERE actor = $1 AND key = $2",
            key.actor,
            key.key,
            result.status,
            orjson.dumps(result.body).decode(),
        )


class PostgresRows:
    """``Rows`` on a connection, in a schema.

    ``write``: runs each write (a statement and its arguments); a unit of work records
    them for its commit or runs them in its transaction. Without it a write runs on the
    connection at once, joining whatever transaction it is in (a consumer's).
    """

    def __init__(
        self,
        conn: Connection | None,
        schema: str,
        write: Callable[[str, tuple[Any, ...]], Awaitable[object]] | None = None,
        *,
        reader: Callable[[], Awaitable[Connection]] | None = None,
    ) -> None:
        self._conn = conn
        self._schema = _name(schema)
        self._write = write or self._execute
        self._reader = reader

    def _table(self, table: str) -> str:
        return f"{self._schema}.{_name(table)}"

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        assert self._conn is not None
        await self._conn.execute(sql, *args)

    async def _reading(self) -> Connection:
        if self._reader is not None:
            return await self._reader()
        assert self._conn is not None
        return self._conn

    async def upsert(
        self,
        table: str,
        key: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        newer: str | None = None,
    ) -> None:
        """Insert the row, or set ``values`` on the row with this key (its primary key);
        ``newer``: only where the row's value of that column is below the new one."""
        values = values or {}
        columns = [_name(c) for c in [*key, *values]]
        params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        conflict = ", ".join(map(_name, key))
        action = (
            "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in map(_name, values))
            if values
            else "DO NOTHING"
        )
        if values and newer is not None:
            column = _name(newer)
            action += f" WHERE {self._table(table)}.{column} < excluded.{column}"
        await self._write(
            f"INSERT INTO {self._table(table)} ({', '.join(columns)}) VALUES ({params})"
            f" ON CONFLICT ({conflict}) {action}",
            (*key.values(), *values.values()),
        )

    async def insert(
        self, table: str, key: Mapping[str, Any], values: Mapping[str, Any] | None = None
    ) -> None:
        """Insert the row unless a row with this key exists (then nothing)."""
        values = values or {}
        columns = [_name(c) for c in [*key, *values]]
        params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await self._write(
            f"INSERT INTO {self._table(table)} ({', '.join(columns)}) VALUES ({params})"
            f" ON CONFLICT ({', '.join(map(_name, key))}) DO NOTHING",
            (*key.values(), *values.values()),
        )

    async def update(
        self,
        table: str,
        key: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        newer: str | None = None,
    ) -> None:
        """Set ``values`` on the rows matching ``key`` (none: nothing); ``newer``: only
        where the row's value of that column is below the new one."""
        sets = ", ".join(f"{_name(c)} = ${i}" for i, c in enumerate(values, 1))
        where = " AND ".join(f"{_name(c)} = ${i}" for i, c in enumerate(key, len(values) + 1))
        if newer is not None:
            where += f" AND {_name(newer)} < ${list(values).index(newer) + 1}"
        await self._write(
            f"UPDATE {self._table(table)} SET {sets} WHERE {where}",
            (*values.values(), *key.values()),
        )

    async def find(self, table: str, columns: Sequence[str], **where: Any) -> list[dict[str, Any]]:
        """The ``columns`` of the rows whose columns equal ``where`` (a list: one of)."""
        conditions = [
            f"{_name(c)} = ANY(${i})" if isinstance(v, list) else f"{_name(c)} = ${i}"
            for i, (c, v) in enumerate(where.items(), 1)
        ]
        conn = await self._reading()
        rows = await conn.fetch(
            f"SELECT {', '.join(map(_name, columns))} FROM {self._table(table)}"
            + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
            + f" ORDER BY {', '.join(map(_name, columns))}",
            *where.values(),
        )
        return [dict(row) for row in rows]


Write = tuple[str, tuple[Any, ...]]
"""A statement a unit of work writes, and its arguments."""


class _Unit:
    __slots__ = ("appends", "future", "streams", "writes")

    def __init__(
        self, writes: list[Write], appends: list[StreamAppend], future: asyncio.Future[None]
    ) -> None:
        self.writes = writes
        self.appends = appends
        self.future = future
        self.streams = {a.stream_id for a in appends}


class UnitCommitter:
    """Commits the units of work of one process together: group commit for whole commands.

    A unit that reaches its commit while another batch is being written waits for the
    next one, and the next batch writes every unit waiting, in one transaction: their rows
    (the same statement for many units in one pipelined round trip), then one call of the
    append function for all their appends, then one COMMIT. The head lock, held from the
    append to the COMMIT, is then taken once per batch instead of once per command.

    Each unit keeps its own outcome. A unit whose append is refused (a stale version) gets
    its ``ConcurrencyError``, and the batch is rolled back and written again without it, so
    none of its rows are stored. A batch that fails otherwise is written again one unit
    per transaction, so each unit meets only its own error. A batch holds each stream at
    most once; a later unit on a stream waits for the next batch.
    """

    MAX_BATCH = 200

    def __init__(self, pool: Pool, store: PostgresEventStore) -> None:
        self._pool = pool
        self._store = store
        self._queue: list[_Unit] = []
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly
        self._releasing: set[asyncio.Task[None]] = set()
        self._refused_at = -1.0  # when a unit was last refused as stale

    def release_later(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        """Give a unit's read connection back to the pool without waiting for its reset."""
        task = asyncio.get_running_loop().create_task(self._pool.release(conn))
        self._releasing.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Task[None]) -> None:
        self._releasing.discard(task)
        if not task.cancelled():
            task.exception()  # a failed reset: the pool has closed that connection already

    async def commit(self, writes: list[Write], appends: list[StreamAppend]) -> None:
        """Write the rows, then the appends, and commit, in a batch with others waiting.

        Raises:
            ConcurrencyError: a stream moved since it was loaded; nothing was stored.
        """
        started = time.perf_counter()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Unit(writes, appends, future))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        try:
            await future
        finally:
            if appends:  # each command's own wait, batch and commit included
                self._store.observe_append(time.perf_counter() - started)

    async def _drain(self) -> None:
        # the outer loop: a unit queued while the connection went back to the pool
        while self._queue:
            try:
                async with self._pool.acquire() as conn:
                    while self._queue:
                        await self._write(conn, self._next_batch())
            except Exception as error:  # no connection: tell everyone waiting
                for unit in self._queue:
                    _settle(unit, error)
                self._queue.clear()

    def _next_batch(self) -> list[_Unit]:
        batch: list[_Unit] = []
        rest: list[_Unit] = []
        taken: set[str] = set()
        for unit in self._queue:
            if unit.future.done():
                continue  # its caller gave up waiting before it was written: not written
            if len(batch) < self.MAX_BATCH and not unit.streams & taken:
                batch.append(unit)
            else:
                rest.append(unit)
            taken |= unit.streams  # a waiting stream's later units wait too
        self._queue = rest
        return batch

    async def _write(self, conn: Connection, batch: list[_Unit]) -> None:
        statement = _with_clauses(batch)
        if len(batch) > 1 and (statement is None or self._conflicting()):
            # a stale unit's refusal would cost the others a rollback: refuse it first. In
            # one statement the refusals come back with its error, all at once, and the
            # others go again, so batches read ahead only while refusals are recent
            batch = await self._refuse_stale(conn, batch)
        while batch and statement is not None:
            left = await self._write_in_one_statement(conn, batch, *statement)
            if left is None:
                break  # whose error? the transaction below says, unit by unit
            batch = left
            statement = _with_clauses(batch) if batch else None
        while batch:
            refused: dict[int, ConcurrencyError] = {}
            try:
                async with conn.transaction():
                    await _run_writes(conn, [unit.writes for unit in batch])
                    appends = [(i, a) for i, unit in enumerate(batch) for a in unit.appends]
                    if appends:
                        outcomes = await self._store.append_each([a for _, a in appends], conn=conn)
                        for (i, _), outcome in zip(appends, outcomes, strict=True):
                            if isinstance(outcome, ConcurrencyError):
                                refused.setdefault(i, outcome)
                    if refused:
                        raise _RefusedError
            except _RefusedError:
                self._refused_at = time.monotonic()
                for i, conflict in refused.items():
                    _settle(batch[i], conflict)
                batch = [unit for i, unit in enumerate(batch) if i not in refused]
                continue
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
                for unit in batch:
                    _settle(unit, error)
                raise
            except Exception as error:
                if len(batch) == 1:
                    _settle(batch[0], error)
                else:  # whose error? each unit alone says
                    for unit in batch:
                        await self._write(conn, [unit])
                return
            for unit in batch:
                _settle(unit, None)
            return

    async def _write_in_one_statement(
        self, conn: Connection, batch: list[_Unit], clauses: list[str], arguments: list[Any]
    ) -> list[_Unit] | None:
        """The batch's rows (``clauses``, see ``_with_clauses``) and appends in one
        statement, one round trip, committed on its own, the all-or-nothing append last.

        Returns the units to write again (the others' refusals settled, nothing of theirs
        written), or None when the statement failed otherwise (nothing written either).
        """
        appends = [append for unit in batch for append in unit.appends]
        call = self._store.append_statement(appends, first=len(arguments) + 1)
        sql = (f"WITH {', '.join(clauses)} " if clauses else "") + call.sql
        try:
            await conn.fetchrow(sql, *arguments, *call.arguments)
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
            for unit in batch:
                _settle(unit, error)
            raise
        except asyncpg.PostgresError as error:
            refusals = call.refusals(error)
            if refusals is None:
                return None
            self._refused_at = time.monotonic()
            refused: set[int] = set()
            owners = [unit for unit in batch for _ in unit.appends]
            for unit, refusal in zip(owners, refusals, strict=True):
                if refusal is not None and id(unit) not in refused:
                    refused.add(id(unit))
                    _settle(unit, refusal)
            return [unit for unit in batch if id(unit) not in refused]
        for unit in batch:
            _settle(unit, None)
        return []

    def _conflicting(self) -> bool:
        """Whether a command was refused as stale in the last second."""
        return time.monotonic() - self._refused_at < 1.0

    async def _refuse_stale(self, conn: Connection, batch: list[_Unit]) -> list[_Unit]:
        """The batch without its units whose streams have moved on (each refused)."""
        appends = [(unit, a) for unit in batch for a in unit.appends]
        if not appends:
            return batch
        stale = await self._store.stale([a for _, a in appends], conn=conn)
        refused: set[int] = set()
        for (unit, _), conflict in zip(appends, stale, strict=True):
            if conflict is not None and id(unit) not in refused:
                refused.add(id(unit))
                _settle(unit, conflict)
        if refused:
            self._refused_at = time.monotonic()
        return [unit for unit in batch if id(unit) not in refused]


_PARAMETER = re.compile(r"\$(\d+)")
_TARGET = re.compile(r"^(?:INSERT INTO|UPDATE) ([a-z0-9_.]+) ")
_INSERT = re.compile(r"^(INSERT INTO [a-z0-9_.]+ \([^)]*\) VALUES )(\([$0-9, ]*\))(.*)$", re.S)


def _renumbered(sql: str, offset: int) -> str:
    """The statement with its parameters ``$n`` as ``$(n + offset)``."""
    return _PARAMETER.sub(lambda m: f"${int(m[1]) + offset}", sql)


def _with_clauses(batch: list[_Unit]) -> tuple[list[str], list[Any]] | None:
    """The batch's row writes as WITH clauses of one statement, and their arguments; None
    when that would not do what a transaction does.

    The writes of one statement share its snapshot: a write would not see a row an earlier
    one wrote, as it does in a transaction. So each table gets one clause: one write, or
    the same INSERT from several units as one INSERT of many rows (should two of those
    rows share a key, PostgreSQL refuses the statement, and the batch goes through a
    transaction instead). A batch that writes one table with two different statements
    (an insert and an update, say) is not written this way.
    """
    if not any(unit.appends for unit in batch):
        return None
    by_table: dict[str, tuple[str, list[tuple[Any, ...]]]] = {}
    for unit in batch:
        for sql, args in unit.writes:
            target = _TARGET.match(sql)
            if target is None:
                return None
            same = by_table.setdefault(target[1], (sql, []))
            if same[0] != sql or (same[1] and _INSERT.match(sql) is None):
                return None
            same[1].append(args)
    clauses: list[str] = []
    arguments: list[Any] = []
    for i, (sql, rows) in enumerate(by_table.values()):
        if len(rows) == 1:
            clauses.append(f"w{i} AS ({_renumbered(sql, len(arguments))})")
            arguments += rows[0]
            continue
        insert = _INSERT.match(sql)
        assert insert is not None
        head, values, tail = insert.groups()
        tuples = []
        for args in rows:
            tuples.append(_renumbered(values, len(arguments)))
            arguments += args
        clauses.append(f"w{i} AS ({head}{', '.join(tuples)}{tail})")
    return clauses, arguments


class _RefusedError(Exception):
    """Roll the batch back: some of its appends were refused."""


def _settle(unit: _Unit, error: BaseException | None) -> None:
    if unit.future.done():
        return
    if error is None:
        unit.future.set_result(None)
    else:
        unit.future.set_exception(error)


async def _run_writes(conn: Connection, units: Sequence[list[Write]]) -> None:
    """Every unit's writes, each unit's in its order: the k-th writes of all units
    together, one pipelined round trip per statement among them."""
    rounds = max((len(writes) for writes in units), default=0)
    for k in range(rounds):
        same: dict[str, list[tuple[Any, ...]]] = {}
        for writes in units:
            if k < len(writes):
                sql, args = writes[k]
                same.setdefault(sql, []).append(args)
        for sql, many in same.items():
            if len(many) == 1:
                await conn.execute(sql, *many[0])
            else:
                await conn.executemany(sql, many)


class PostgresUnitOfWork:
    """One command; see the module for the order of its writes.

    An unkeyed command records its row writes and hands them, with its appends, to the
    service's ``UnitCommitter`` at commit: no transaction of its own, no connection unless
    it reads. A keyed one (its key claimed first, in its transaction), one that reads rows
    after writing some (it must see its own writes), and one joined to a caller's
    transaction write on their connection as they go.
    """

    def __init__(
        self,
        pool: Pool | None,
        conn: Connection | None,
        store: PostgresEventStore,
        idempotency: IdempotencyStore,
        schema: str,
        cause: Cause,
        max_event_bytes: int,
        *,
        committer: UnitCommitter | None = None,
        stream_cache: StreamCache | None = None,
    ) -> None:
        self._pool = pool
        self._conn = conn
        self.stream_cache = StreamCache(0) if stream_cache is None else stream_cache
        self._acquired: PoolConnectionProxy[asyncpg.Record] | None = None
        self.cause = cause
        self.rows = PostgresRows(conn, schema, self._write, reader=self._reader)
        self._store = store
        self._idempotency = idempotency
        self._max_event_bytes = max_event_bytes
        self._joined = committer is None and pool is None  # in a caller's transaction
        self._committer = committer
        self._transaction: PgTransaction | None = None
        self._writes: list[Write] | None = [] if committer is not None else None
        self._staged: list[StreamAppend] = []
        self._key: IdempotencyKey | None = None
        self._earlier: Result | None = None

    @property
    def max_event_bytes(self) -> int:
        """The largest event (data and metadata as JSON) this unit stores."""
        return self._max_event_bytes

    @property
    def earlier(self) -> Result | None:
        """The stored result of this key's first command."""
        return self._earlier

    async def connection(self) -> Connection:
        """The unit's connection (taken from the pool when first needed)."""
        if self._conn is None:
            assert self._pool is not None
            self._acquired = await self._pool.acquire()
            self._conn = self._acquired
        return self._conn

    async def writing(self) -> Connection:
        """The connection, in the unit's transaction (opened by its first write); the
        unit writes on it from then on."""
        conn = await self.connection()
        if not self._joined and self._transaction is None:
            self._transaction = conn.transaction()
            await self._transaction.start()
        if self._writes is not None:
            recorded, self._writes = self._writes, None
            await _run_writes(conn, [recorded])
        return conn

    async def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        if self._writes is not None:
            self._writes.append((sql, args))
        else:
            await (await self.writing()).execute(sql, *args)

    async def _reader(self) -> Connection:
        if self._writes:  # a unit reads its own writes
            return await self.writing()
        return await self.connection()

    async def claim(self, key: IdempotencyKey) -> None:
        """Claim ``key`` first: a retry finds the first command's result in ``earlier``.

        Raises:
            IdempotencyKeyReusedError: the key was used for another request.
        """
        self._key = key
        self._earlier = await self._idempotency.claim(await self.writing(), key)

    async def read(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """A stream's stored events from ``from_version`` on."""
        conn = await self.connection()
        return await self._store.read_stream(stream_id, from_version, conn=conn)

    def stage(self, append: StreamAppend) -> None:
        """Append these events at commit, last.

        Raises:
            ValueError: the stream already has an append staged in this unit.
        """
        if any(a.stream_id == append.stream_id for a in self._staged):
            raise ValueError(f"stream {append.stream_id!r} appended twice in one unit of work")
        self._staged.append(append)

    async def commit(self, result: Result) -> None:
        """The key's result, then the appends and the commit, last.

        Raises:
            ConcurrencyError: a stream moved since it was loaded; nothing was stored.
        """
        staged, self._staged = self._staged, []
        if self._writes is not None:  # nothing written yet: the committer writes it all
            writes, self._writes = self._writes, []
            assert self._committer is not None
            # the reads are over: a unit waiting for a writer holds no connection, or
            # as many units as the pool has connections would starve the writers of one
            self._let_go()
            if len(staged) == 1 and not writes:
                (only,) = staged  # the store's group-commit writer, one statement
                await self._store.append(only.stream_id, only.expected_version, only.events)
            elif staged or writes:
                await self._committer.commit(writes, staged)
            return
        if self._key is not None:
            await self._idempotency.record(await self.writing(), self._key, result)
        if staged:
            await self._store.append_all(staged, conn=await self.writing())
        if self._transaction is not None:
            await self._transaction.commit()
            self._transaction = None

    async def rollback(self) -> None:
        """Undo whatever was written (a unit left without a commit)."""
        self._staged = []
        if self._writes is not None:
            self._writes = []
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            # a lost connection took its transaction with it: nothing to undo, and the
            # error that brought us here is the one to report
            with contextlib.suppress(
                asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError
            ):
                await transaction.rollback()

    async def release(self) -> None:
        """Roll back what is left and give the connection back to the pool.

        A connection the unit only read on goes back in the background: the pool's reset
        of it (a round trip) need not delay the command's answer.
        """
        read_only = self._transaction is None
        try:
            await self.rollback()
        finally:
            if read_only and self._committer is not None:
                self._let_go()
            elif self._acquired is not None:
                assert self._pool is not None
                acquired, self._acquired, self._conn = self._acquired, None, None
                await self._pool.release(acquired)

    def _let_go(self) -> None:
        """Give the connection the unit read on back to the pool (in the background)."""
        if self._acquired is not None:
            assert self._committer is not None
            acquired, self._acquired, self._conn = self._acquired, None, None
            self._committer.release_later(acquired)


class PostgresUnitsOfWork:
    """Units of work of one service: its pool, store, schema and idempotency table."""

    def __init__(
        self,
        pool: Pool,
        store: PostgresEventStore,
        schema: str,
        *,
        max_event_bytes: int,
        idempotency: IdempotencyStore | None = None,
        stream_cache_bytes: int = 0,
    ) -> None:
        self._pool = pool
        self._store = store
        self._schema = _name(schema)
        self._idempotency = idempotency or IdempotencyStore(schema)
        self._max_event_bytes = max_event_bytes
        self.committer = UnitCommitter(pool, store)
        self.stream_cache = StreamCache(stream_cache_bytes)

    @asynccontextmanager
    async def begin(
        self, cause: Cause, key: IdempotencyKey | None = None
    ) -> AsyncIterator[PostgresUnitOfWork]:
        """A unit of work (claiming ``key`` first when given)."""
        uow = PostgresUnitOfWork(
            self._pool,
            None,
            self._store,
            self._idempotency,
            self._schema,
            cause,
            self._max_event_bytes,
            committer=None if key is not None else self.committer,
            stream_cache=self.stream_cache,
        )
        try:
            if key is not None:
                await uow.claim(key)
            yield uow
        finally:
            await uow.release()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PostgresUnitOfWork]:
        """A unit of work for a query: its streams and rows are read, nothing is written."""
        async with self.begin(QUERY) as uow:
            yield uow

    def joined(self, conn: Connection, cause: Cause) -> PostgresUnitOfWork:
        """A unit of work in the caller's transaction (a consumer's): the caller commits."""
        return PostgresUnitOfWork(
            None,
            conn,
            self._store,
            self._idempotency,
            self._schema,
            cause,
            self._max_event_bytes,
            stream_cache=self.stream_cache,
        )
