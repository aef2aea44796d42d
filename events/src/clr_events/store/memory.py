"""The in-memory event store: the fake for unit tests.

It keeps the same promises as the PostgreSQL store (versions, contiguous positions,
conflicts refused whole, the same hash chain and verifier) and passes the same behaviour
suite (tests/integration/events/test_store_contract.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from clr_events.errors import ConcurrencyError
from clr_events.store.base import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    StoredEvent,
    StreamAppend,
    VerificationReport,
    check_append,
    check_append_all,
    encode,
)
from clr_events.store.hashing import GENESIS_HASH, chain
from clr_events.store.verify import ChainVerifier, RawRow, check_range


class InMemoryEventStore:
    """An event store held in a list; ``rows`` is exposed so tests can tamper with it."""

    def __init__(self) -> None:
        self.rows: list[RawRow] = []
        self._versions: dict[str, int] = {}
        self._head_hash = GENESIS_HASH
        self._appended = asyncio.Condition()

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        """Append events to a stream if it is at ``expected_version``.

        Raises:
            ConcurrencyError: the stream is at another version; nothing was written.
        """
        check_append(expected_version, events)
        current = self._versions.get(stream_id, 0)
        if expected_version is not None and expected_version != current:
            raise ConcurrencyError(stream_id, expected_version, current)
        now = datetime.now(UTC)
        first = len(self.rows) + 1
        for offset, event in enumerate(events):
            encoded = encode(stream_id, event, now)
            position = first + offset
            version = current + offset + 1
            self._head_hash = chain(self._head_hash, position, version, encoded.digest)
            self.rows.append(
                RawRow(
                    position,
                    stream_id,
                    version,
                    encoded.event_id,
                    encoded.type,
                    encoded.schema_version,
                    encoded.data_json,
                    encoded.metadata_json,
                    encoded.recorded_at,
                    self._head_hash,
                )
            )
        self._versions[stream_id] = current + len(events)
        async with self._appended:
            self._appended.notify_all()
        return AppendResult(stream_id, current + len(events), first, len(self.rows))

    async def append_all(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        """Append to several streams all or nothing (every version checked first).

        Raises:
            ConcurrencyError: a stream is at another version; nothing was written.
            ValueError: no appends, or a stream named twice.
        """
        check_append_all(appends)
        for append in appends:
            current = self._versions.get(append.stream_id, 0)
            expected = append.expected_version
            if expected is not None and expected != current:
                raise ConcurrencyError(append.stream_id, expected, current)
        return [await self.append(a.stream_id, a.expected_version, a.events) for a in appends]

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        return [
            _to_stored(row)
            for row in self.rows
            if row.stream_id == stream_id and row.version >= from_version
        ]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events above ``after_position``, in position order."""
        return [_to_stored(row) for row in self.rows[after_position : after_position + limit]]

    async def replay(
        self, after_position: int = 0, page: int = 5000
    ) -> AsyncIterator[list[StoredEvent]]:
        """Every event above ``after_position``, a page at a time, in position order."""
        while events := await self.read_all(after_position, page):
            yield events
            after_position = events[-1].position

    async def head_position(self) -> int:
        """The highest position (0 for an empty store)."""
        return len(self.rows)

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        """Wait until an event above ``position`` is appended; False on timeout."""
        async with self._appended:
            try:
                await asyncio.wait_for(
                    self._appended.wait_for(lambda: len(self.rows) > position), timeout
                )
            except TimeoutError:
                return False
        return True

    async def verify(
        self, first_position: int = 1, last_position: int | None = None
    ) -> VerificationReport:
        """Recompute the hash chain over a range of positions (to the head by default).

        Raises:
            VerificationRangeError: ``first`` after ``last``, or the range past the end.
        """
        last = check_range(first_position, last_position, len(self.rows))
        previous = GENESIS_HASH if first_position == 1 else self.rows[first_position - 2].hash
        checker = ChainVerifier(first_position, previous)
        for row in self.rows[first_position - 1 : last]:
            checker.feed(row)
        return checker.finish(last, (len(self.rows), self._head_hash))


def _to_stored(row: RawRow) -> StoredEvent:
    return StoredEvent(*row)
