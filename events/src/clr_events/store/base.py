"""The event store port: what every adapter promises.

Streams are identified by the aggregate id; versions start at 1 and have no gaps. Every
event also gets a global position: contiguous from 1, assigned in commit order, so a reader
that tails by position never skips an event, and an auditor can prove that nothing between
1 and N is missing. Every event is hash-chained to the one before it (see ``hashing``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, Protocol, overload
from uuid import UUID, uuid4

import orjson

from clr_events.store.hashing import content_digest

ExpectedVersion = int | None
"""The stream version an append expects: 0 for a new stream, N for "at N", ANY for no check."""

ANY: Final[ExpectedVersion] = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: a type, its data and metadata (actor, correlation, ...)."""

    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = 1
    event_id: UUID = field(default_factory=uuid4)


class _StoredRow(NamedTuple):
    position: int
    stream_id: str
    version: int
    event_id: UUID
    type: str
    schema_version: int
    data_json: str
    metadata_json: str
    recorded_at: datetime
    hash: bytes


class _DecodedOnFirstUse:
    """``data`` and ``metadata``: the JSON text decoded on first access, then kept.

    A non-data descriptor: the decoded dict goes into the instance's ``__dict__``, where
    attribute lookup finds it from then on without calling back here.
    """

    def __init__(self, text_field: str) -> None:
        self._text_field = text_field
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _DecodedOnFirstUse: ...

    @overload
    def __get__(self, instance: StoredEvent, owner: type) -> dict[str, Any]: ...

    def __get__(
        self, instance: StoredEvent | None, owner: type
    ) -> dict[str, Any] | _DecodedOnFirstUse:
        if instance is None:
            return self
        value: dict[str, Any] = orjson.loads(getattr(instance, self._text_field))
        instance.__dict__[self._name] = value
        return value


class StoredEvent(_StoredRow):
    """An event as stored, with its stream version, global position and chain hash.

    A tuple of the stored columns, data and metadata as their stored JSON text
    (``data_json``, ``metadata_json``), decoded on first access of ``data`` and
    ``metadata`` and kept. Reading builds one per row and many readers never look at the
    data (the relay skips private events, a replay counts or filters by type): built from
    a row with ``tuple.__new__`` and nothing decoded, reading all events is bound by the
    driver's own row parsing rather than by JSON and the garbage collector's walks over
    the decoded dicts.
    """

    data = _DecodedOnFirstUse("data_json")
    metadata = _DecodedOnFirstUse("metadata_json")


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """One stream's part of an atomic append: its events and the version it expects."""

    stream_id: str
    expected_version: ExpectedVersion
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed: the stream's new version and the positions it took."""

    stream_id: str
    version: int
    first_position: int
    last_position: int


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The outcome of re-hashing a range of positions; ``problems`` names each position."""

    first_position: int
    last_position: int
    checked: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every position in the range is present, in order, and unaltered."""
        return not self.problems


class VerificationRangeError(ValueError):
    """A verification asked for a range that is empty (first after last) or past the end."""


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A new event serialised exactly as it will be stored, with its content digest."""

    event_id: UUID
    type: str
    schema_version: int
    data_json: str
    metadata_json: str
    recorded_at: datetime
    digest: bytes


def check_append(expected_version: ExpectedVersion, events: Sequence[NewEvent]) -> None:
    """Refuse programming errors before any adapter touches its storage."""
    if not events:
        raise ValueError("an append needs at least one event")
    if expected_version is not None and expected_version < 0:
        raise ValueError("an expected version is 0 (new stream), a positive version, or ANY")


def check_append_all(appends: Sequence[StreamAppend]) -> None:
    """Refuse an atomic append with no appends, a stream named twice, or a bad append."""
    if not appends:
        raise ValueError("an atomic append needs at least one stream")
    if len({a.stream_id for a in appends}) != len(appends):
        raise ValueError("a stream appears twice in one atomic append")
    for append in appends:
        check_append(append.expected_version, append.events)


def encode(stream_id: str, event: NewEvent, recorded_at: datetime | None = None) -> EncodedEvent:
    """Serialise one new event (data and metadata as compact JSON) and digest it."""
    moment = recorded_at or datetime.now(UTC)
    data_json = orjson.dumps(event.data).decode()
    metadata_json = orjson.dumps(event.metadata).decode()
    return EncodedEvent(
        event.event_id,
        event.type,
        event.schema_version,
        data_json,
        metadata_json,
        moment,
        content_digest(
            stream_id,
            event.event_id,
            event.type,
            event.schema_version,
            data_json,
            metadata_json,
            moment,
        ),
    )


class EventStore(Protocol):
    """An append-only, hash-chained event store with optimistic concurrency."""

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        """Append events to a stream if it is at ``expected_version``.

        Raises:
            ConcurrencyError: the stream is at another version; nothing was written.
        """
        ...

    async def append_all(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        """Append to several streams (each at most once) all or nothing, in one transaction.

        The append a unit of work commits with; the PostgreSQL store also takes a
        connection whose transaction the append joins.

        Raises:
            ConcurrencyError: a stream is at another version; nothing was written.
            ValueError: no appends, or a stream named twice.
        """
        ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """The events of one stream from ``from_version`` on, in version order."""
        ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events with a position above ``after_position``, in position order."""
        ...

    def replay(self, after_position: int = 0, page: int = 5000) -> AsyncIterator[list[StoredEvent]]:
        """Every event above ``after_position`` in position order, a page at a time, up to
        the head as it is when each page is read (a replay for a rebuild or an audit)."""
        ...

    async def head_position(self) -> int:
        """The highest committed position (0 for an empty store)."""
        ...

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        """Wait until an event above ``position`` is committed; False on timeout."""
        ...

    async def verify(
        self, first_position: int = 1, last_position: int | None = None
    ) -> VerificationReport:
        """Recompute the hash chain over a range of positions (by default to the last
        stored, the head or any row stored beyond it, which is reported).

        Raises:
            VerificationRangeError: ``first`` after ``last``, or the range past the end.
        """
        ...
