"""The unit of work on PostgreSQL: the service's schema, its store, its own tables.

The fast path: everything a command writes besides its events (its rows, the idempotency
key and result) is written first; the append, which takes the store's head row lock, comes
last and the commit right after it. The head lock is therefore held for one round trip
(the append's reply and the COMMIT), not across the command's other writes, and commands
of one service on different streams do not wait for each other. A command with nothing
else to write (no rows, no key) and one stream to append to commits no transaction of its
own: its append goes through the store's group-commit writer, joining other commands'
batches.

The guarantees stay those of one transaction: a stale version raises ``ConcurrencyError``
at the append and the rollback takes the command's rows and key with it; two requests
with one key serialise on the key's row (the second waits for the first's commit and
answers its result).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from asyncpg.transaction import Transaction as PgTransaction

from clr_events.application.uow import (
    Cause,
    IdempotencyKey,
    IdempotencyKeyReusedError,
    Result,
)
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
        self._table = f"{_name(schema)}.idempotency_keys"

    async def migrate(self, pool: Pool) -> None:
        """Create the table (idempotent)."""
        await pool.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            " actor text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,"
            " status int, body jsonb, created_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (actor, key))"
        )

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

    ``before_write``: called before each write (the unit of work opens its transaction on
    the first); without it the rows join whatever transaction the connection is in (a
    consumer's).
    """

    def __init__(
        self,
        conn: Connection,
        schema: str,
        before_write: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._conn = conn
        self._schema = _name(schema)
        self._before_write = before_write

    def _table(self, table: str) -> str:
        return f"{self._schema}.{_name(table)}"

    async def _writing(self) -> Connection:
        if self._before_write is not None:
            await self._before_write()
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
        conn = await self._writing()
        await conn.execute(
            f"INSERT INTO {self._table(table)} ({', '.join(columns)}) VALUES ({params})"
            f" ON CONFLICT ({conflict}) {action}",
            *key.values(),
            *values.values(),
        )

    async def insert(
        self, table: str, key: Mapping[str, Any], values: Mapping[str, Any] | None = None
    ) -> None:
        """Insert the row unless a row with this key exists (then nothing)."""
        values = values or {}
        columns = [_name(c) for c in [*key, *values]]
        params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        conn = await self._writing()
        await conn.execute(
            f"INSERT INTO {self._table(table)} ({', '.join(columns)}) VALUES ({params})"
            f" ON CONFLICT ({', '.join(map(_name, key))}) DO NOTHING",
            *key.values(),
            *values.values(),
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
        conn = await self._writing()
        await conn.execute(
            f"UPDATE {self._table(table)} SET {sets} WHERE {where}", *values.values(), *key.values()
        )

    async def find(self, table: str, columns: Sequence[str], **where: Any) -> list[dict[str, Any]]:
        """The ``columns`` of the rows whose columns equal ``where`` (a list: one of)."""
        conditions = [
            f"{_name(c)} = ANY(${i})" if isinstance(v, list) else f"{_name(c)} = ${i}"
            for i, (c, v) in enumerate(where.items(), 1)
        ]
        rows = await self._conn.fetch(
            f"SELECT {', '.join(map(_name, columns))} FROM {self._table(table)}"
            + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
            + f" ORDER BY {', '.join(map(_name, columns))}",
            *where.values(),
        )
        return [dict(row) for row in rows]


class PostgresUnitOfWork:
    """One command on one connection; see the module for the order of its writes."""

    def __init__(
        self,
        conn: Connection,
        store: PostgresEventStore,
        idempotency: IdempotencyStore,
        schema: str,
        cause: Cause,
        max_event_bytes: int,
        *,
        joined: bool = False,
    ) -> None:
        self.conn = conn
        self.cause = cause
        self.rows = PostgresRows(conn, schema, self.writing)
        self._store = store
        self._idempotency = idempotency
        self._max_event_bytes = max_event_bytes
        self._joined = joined  # in a caller's transaction: the caller commits
        self._transaction: PgTransaction | None = None
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

    async def writing(self) -> Connection:
        """The connection, in the unit's transaction (opened by its first write)."""
        if not self._joined and self._transaction is None:
            self._transaction = self.conn.transaction()
            await self._transaction.start()
        return self.conn

    async def claim(self, key: IdempotencyKey) -> None:
        """Claim ``key`` first: a retry finds the first command's result in ``earlier``.

        Raises:
            IdempotencyKeyReusedError: the key was used for another request.
        """
        self._key = key
        self._earlier = await self._idempotency.claim(await self.writing(), key)

    async def read(self, stream_id: str) -> list[StoredEvent]:
        """A stream's stored events."""
        return await self._store.read_stream(stream_id, conn=self.conn)

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
        if self._key is not None:
            await self._idempotency.record(await self.writing(), self._key, result)
        staged, self._staged = self._staged, []
        if staged and self._transaction is None and not self._joined and len(staged) == 1:
            (only,) = staged  # nothing else to commit: the group-commit writer's path
            await self._store.append(only.stream_id, only.expected_version, only.events)
        elif staged:
            await self._store.append_all(staged, conn=await self.writing())
        if self._transaction is not None:
            await self._transaction.commit()
            self._transaction = None

    async def rollback(self) -> None:
        """Undo whatever was written (a unit left without a commit)."""
        self._staged = []
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()


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
    ) -> None:
        self._pool = pool
        self._store = store
        self._schema = _name(schema)
        self._idempotency = idempotency or IdempotencyStore(schema)
        self._max_event_bytes = max_event_bytes

    @asynccontextmanager
    async def begin(
        self, cause: Cause, key: IdempotencyKey | None = None
    ) -> AsyncIterator[PostgresUnitOfWork]:
        """A unit of work on a connection of its own (claiming ``key`` first)."""
        async with self._pool.acquire() as conn:
            uow = self._unit(conn, cause)
            try:
                if key is not None:
                    await uow.claim(key)
                yield uow
            finally:
                await uow.rollback()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PostgresUnitOfWork]:
        """A unit of work for a query: its streams and rows are read, nothing is written."""
        async with self.begin(QUERY) as uow:
            yield uow

    def joined(self, conn: Connection, cause: Cause) -> PostgresUnitOfWork:
        """A unit of work in the caller's transaction (a consumer's): the caller commits."""
        return self._unit(conn, cause, joined=True)

    def _unit(self, conn: Connection, cause: Cause, *, joined: bool = False) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(
            conn,
            self._store,
            self._idempotency,
            self._schema,
            cause,
            self._max_event_bytes,
            joined=joined,
        )
