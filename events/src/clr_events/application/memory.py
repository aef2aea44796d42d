"""The unit of work in memory: the fake the handler tests run on.

It keeps the promises of the PostgreSQL unit of work (tests/integration/events/
test_unit_of_work.py runs one suite on both): rows and appends are stored at commit, all
or nothing; a stale version stores nothing; a key answers its first result.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from clr_events.application.uow import (
    Cause,
    IdempotencyKey,
    IdempotencyKeyReusedError,
    Result,
    StreamCache,
)
from clr_events.store.base import StoredEvent, StreamAppend
from clr_events.store.memory import InMemoryEventStore

Tables = dict[str, list[dict[str, Any]]]


def _matches(row: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    return all(
        row.get(c) in v if isinstance(v, list) else row.get(c) == v for c, v in where.items()
    )


def _is_newer(row: Mapping[str, Any], values: Mapping[str, Any], newer: str | None) -> bool:
    if newer is None:
        return True
    current = row.get(newer)
    return current is not None and current < values[newer]


def _order(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[tuple[bool, Any], ...]:
    return tuple((row.get(c) is None, row.get(c) if row.get(c) is not None else 0) for c in columns)


class InMemoryRows:
    """``Rows`` over a copy of the tables, which the unit swaps in at commit."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    async def upsert(
        self,
        table: str,
        key: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        newer: str | None = None,
    ) -> None:
        """Insert the row, or set ``values`` on the row with this key; ``newer``: only
        where the row's value of that column is below the new one."""
        rows = self.tables.setdefault(table, [])
        for row in rows:
            if _matches(row, key):
                if values and _is_newer(row, values, newer):
                    row.update(values)
                return
        rows.append({**key, **(values or {})})

    async def insert(
        self, table: str, key: Mapping[str, Any], values: Mapping[str, Any] | None = None
    ) -> None:
        """Insert the row unless a row with this key exists (then nothing)."""
        rows = self.tables.setdefault(table, [])
        if not any(_matches(row, key) for row in rows):
            rows.append({**key, **(values or {})})

    async def update(
        self,
        table: str,
        key: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        newer: str | None = None,
    ) -> None:
        """Set ``values`` on the rows matching ``key``; none: nothing; ``newer``: only
        where the row's value of that column is below the new one."""
        for row in self.tables.get(table, []):
            if _matches(row, key) and _is_newer(row, values, newer):
                row.update(values)

    async def find(self, table: str, columns: Sequence[str], **where: Any) -> list[dict[str, Any]]:
        """The ``columns`` of the rows whose columns equal ``where`` (a list: one of)."""
        found = [
            {c: copy.deepcopy(row.get(c)) for c in columns}
            for row in self.tables.get(table, [])
            if _matches(row, where)
        ]
        return sorted(found, key=lambda row: _order(row, columns))


class InMemoryUnitOfWork:
    """One command against the in-memory store and tables."""

    def __init__(self, units: InMemoryUnitsOfWork, cause: Cause) -> None:
        self.cause = cause
        self.rows = InMemoryRows(copy.deepcopy(units.tables))
        self._units = units
        self._staged: list[StreamAppend] = []
        self._key: IdempotencyKey | None = None
        self._earlier: Result | None = None

    @property
    def max_event_bytes(self) -> int:
        """The largest event (data and metadata as JSON) this unit stores."""
        return self._units.max_event_bytes

    @property
    def earlier(self) -> Result | None:
        """The stored result of this key's first command."""
        return self._earlier

    def claim(self, key: IdempotencyKey) -> None:
        """Claim ``key``: a retry finds the first command's result in ``earlier``.

        Raises:
            IdempotencyKeyReusedError: the key was used for another request.
        """
        self._key = key
        stored = self._units.results.get((key.actor, key.key))
        if stored is None:
            return
        fingerprint, result = stored
        if fingerprint != key.fingerprint:
            raise IdempotencyKeyReusedError
        self._earlier = Result(result.status, copy.deepcopy(result.body), replayed=True)

    async def read(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """A stream's stored events from ``from_version`` on."""
        return await self._units.store.read_stream(stream_id, from_version)

    @property
    def stream_cache(self) -> StreamCache:
        """The decoded streams of these units of work."""
        return self._units.stream_cache

    def stage(self, append: StreamAppend) -> None:
        """Append these events at commit.

        Raises:
            ValueError: the stream already has an append staged in this unit.
        """
        if any(a.stream_id == append.stream_id for a in self._staged):
            raise ValueError(f"stream {append.stream_id!r} appended twice in one unit of work")
        self._staged.append(append)

    async def commit(self, result: Result) -> None:
        """Append what was staged, then store the rows and the key's result.

        Raises:
            ConcurrencyError: a stream moved since it was loaded; nothing was stored.
        """
        if self._staged:
            await self._units.store.append_all(self._staged)
        self._units.tables = self.rows.tables
        if self._key is not None:
            self._units.results[(self._key.actor, self._key.key)] = (
                self._key.fingerprint,
                Result(result.status, copy.deepcopy(result.body)),
            )


class InMemoryUnitsOfWork:
    """An in-memory store and service tables; ``tables`` can be seeded and inspected."""

    def __init__(
        self,
        store: InMemoryEventStore | None = None,
        *,
        max_event_bytes: int = 256 * 1024,
        stream_cache_bytes: int = 16 << 20,
    ) -> None:
        self.store = store or InMemoryEventStore()
        self.stream_cache = StreamCache(stream_cache_bytes)
        self.tables: Tables = {}
        self.results: dict[tuple[str, str], tuple[str, Result]] = {}
        self.max_event_bytes = max_event_bytes

    @asynccontextmanager
    async def begin(
        self, cause: Cause, key: IdempotencyKey | None = None
    ) -> AsyncIterator[InMemoryUnitOfWork]:
        """A unit of work (claiming ``key`` first when given)."""
        uow = InMemoryUnitOfWork(self, cause)
        if key is not None:
            uow.claim(key)
        yield uow
