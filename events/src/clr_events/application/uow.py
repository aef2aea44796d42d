"""The unit of work every command runs in, free of HTTP: load, decide, write, commit.

A command handler (``async def approve_assessment(cmd, uow) -> Result``) loads the streams
it needs through ``uow.streams(codec)``, lets the pure domain decide, stages the new events
with the version it loaded (``append``), writes the service's own rows through
``uow.rows`` and returns its result. The caller (an HTTP route, a Kafka consumer, a clock
job) commits: the idempotency record, then the appends, all in one transaction. A stream
moved since it was loaded raises ``ConcurrencyError`` at commit and nothing of the command
is stored, its rows included.

An event handler (``async def label_awarded(event, uow, envelope) -> None``) is the same
for an event consumed from Kafka: a public contract in, the unit of work joined to the
consumer's transaction (with the message's inbox entry and checkpoint), and the envelope
it came in (its id, position, stream version); the consumer commits
(``clr_events.consumers.dispatch.Subscriptions``).

Two adapters keep these promises and pass one behaviour suite
(tests/integration/events/test_unit_of_work.py): ``PostgresUnitsOfWork`` and
``InMemoryUnitsOfWork`` (the fake the handler tests run on).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from clr_events.envelope import Envelope
from clr_events.observability.tracing import current_trace_metadata
from clr_events.registry import Contract
from clr_events.rules import NotFoundError
from clr_events.store.base import NewEvent, StoredEvent, StreamAppend

E = TypeVar("E", bound=BaseModel)


def new_id() -> str:
    """A fresh identifier for an aggregate whose id the client left to us."""
    return uuid.uuid4().hex


class ApplicationError(Exception):
    """Base of the errors the application layer raises (mapped to problems at the edge)."""


class IdempotencyKeyReusedError(ApplicationError):
    """An idempotency key was used before for another request (HTTP 422)."""

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for a different request")


class EventTooLargeError(ApplicationError):
    """An event's data and metadata, as JSON, exceed the event size limit (HTTP 413)."""

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        self.event_type = event_type
        self.size = size
        self.limit = limit
        super().__init__(
            f"the {event_type} event would take {size} bytes; an event may take at most"
            f" {limit} bytes (data and metadata as JSON)"
        )


@dataclass(frozen=True)
class Cause:
    """Who or what caused an event, and the chain it belongs to: stored as metadata."""

    actor: str
    correlation_id: str
    causation_id: str | None = None

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """Metadata of an event with this cause (and the trace it is made in, if any:
        ``traceparent``, ``tracestate``)."""
        data: dict[str, Any] = {"actor": self.actor, "correlation_id": self.correlation_id}
        if self.causation_id:
            data["causation_id"] = self.causation_id
        data.update(current_trace_metadata())
        data.update(extra)
        return data

    @classmethod
    def delivered(cls, actor: str, envelope: Envelope) -> Cause:
        """The cause of what a consumed event sets off: ``actor`` (the consuming service),
        in the event's correlation chain, caused by the event."""
        return cls(actor, envelope.correlationid or envelope.id, envelope.id)


@dataclass(frozen=True)
class IdempotencyKey:
    """A keyed command: its actor, the key, and a fingerprint of the request."""

    actor: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Result:
    """What a command answers: a status and a JSON body (``replayed``: a stored answer)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


class DomainEvents(Generic[E]):
    """A service's private stored events: pydantic models stored under their class name."""

    def __init__(self, *classes: type[E]) -> None:
        self._types = {cls.__name__: cls for cls in classes}

    def encode(self, event: E, metadata: dict[str, Any]) -> NewEvent:
        """The event as a row to append."""
        return NewEvent(
            type=type(event).__name__, data=event.model_dump(mode="json"), metadata=metadata
        )

    def decode(self, stored: StoredEvent) -> E:
        """A stored row as its event."""
        return self._types[stored.type].model_validate(stored.data)


def check_event_size(row: NewEvent, max_bytes: int) -> None:
    """Refuse an event whose data and metadata, as JSON, exceed ``max_bytes``.

    Raises:
        EventTooLargeError: naming the size and the limit.
    """
    size = len(orjson.dumps(dict(row.data))) + len(orjson.dumps(dict(row.metadata)))
    if size > max_bytes:
        raise EventTooLargeError(row.type, size, max_bytes)


class Rows(Protocol):
    """The service's own tables (indexes, reference data), inside the unit of work.

    Narrow on purpose: rows by key, so the in-memory fake can keep the same promises.
    A table is named without its schema (the service's).
    """

    async def upsert(
        self,
        table: str,
        key: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        newer: str | None = None,
    ) -> None:
        """Insert the row, or set ``values`` on the row with this key (its primary key).

        ``newer``: a column of ``values``; an existing row changes only where its value
        of that column is below the new one (a late event changes nothing).
        """
        ...

    async def insert(
        self, table: str, key: Mapping[str, Any], values: Mapping[str, Any] | None = None
    ) -> None:
        """Insert the row unless a row with this key exists (then nothing)."""
        ...

    async def update(
        self,
        table: str,
        key: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        newer: str | None = None,
    ) -> None:
        """Set ``values`` on the rows matching ``key``; none: nothing (``newer``: as for
        ``upsert``)."""
        ...

    async def find(self, table: str, columns: Sequence[str], **where: Any) -> list[dict[str, Any]]:
        """The ``columns`` of the rows whose columns equal ``where`` (a list: one of)."""
        ...


class StreamCache:
    """The decoded events of the streams a process loaded last, at most ``max_bytes`` of
    their stored JSON in all (0: none kept), least recently loaded first out.

    A stream is only ever appended to, so what was read of it stays true: a load reads
    only from the last event it knows on (that one to check the store still has it, say
    after a restore from a backup: if not, it reads the whole stream again), and decodes
    only what is new. A long-lived aggregate (a label record with years of renewals and
    corrections) then costs a command what its new events cost, not its whole history.
    The events are shared by every load: nothing may change them.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[object, str], CachedStream] = OrderedDict()
        self._held = 0

    def get(self, codec: object, stream_id: str) -> CachedStream | None:
        """What is known of the stream as decoded by ``codec``, or None."""
        entry = self._entries.get((codec, stream_id))
        if entry is not None:
            self._entries.move_to_end((codec, stream_id))
        return entry

    def put(self, codec: object, stream_id: str, entry: CachedStream) -> None:
        """Remember a stream's decoded events (a stream larger than the cache: forget it)."""
        self.drop(codec, stream_id)
        if entry.size > self.max_bytes:
            return
        self._entries[(codec, stream_id)] = entry
        self._held += entry.size
        while self._held > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._held -= dropped.size

    def drop(self, codec: object, stream_id: str) -> None:
        """Forget a stream."""
        entry = self._entries.pop((codec, stream_id), None)
        if entry is not None:
            self._held -= entry.size


@dataclass(frozen=True)
class CachedStream:
    """A cached stream: its decoded events, the last one's id, their stored JSON's size,
    and the aggregates folded from all of them, by kind (``Streams.fold``)."""

    events: tuple[Any, ...]
    last_id: uuid.UUID
    size: int
    folds: dict[type, Any] = field(default_factory=dict)


class Foldable(Protocol):
    """An aggregate ``Streams.fold`` can keep: it applies events and copies itself."""

    def apply(self, event: Any) -> None:
        """Fold one event into the state."""
        ...

    def copy(self) -> Self:
        """A copy whose later changes leave this one as it is."""
        ...


F = TypeVar("F", bound=Foldable)


class UnitOfWork(Protocol):
    """One command's transaction: streams to load and append, rows, one commit."""

    @property
    def cause(self) -> Cause:
        """Who or what caused the command (its events' metadata)."""
        ...

    @property
    def rows(self) -> Rows:
        """The service's own tables."""
        ...

    async def read(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """A stream's stored events from ``from_version`` on (with the appends staged here
        not yet among them)."""
        ...

    @property
    def stream_cache(self) -> StreamCache:
        """The process's decoded streams (``Streams.load`` reads only what is new)."""
        ...

    def stage(self, append: StreamAppend) -> None:
        """Append these events at commit, last (each stream at most once per unit)."""
        ...

    @property
    def max_event_bytes(self) -> int:
        """The largest event (data and metadata as JSON) this unit stores."""
        ...


class UnitsOfWork(Protocol):
    """Where units of work come from: a service's PostgreSQL, or memory for tests."""

    def begin(
        self, cause: Cause, key: IdempotencyKey | None = None
    ) -> AbstractAsyncContextManager[Transaction]:
        """A unit of work for one command (claiming ``key`` first when given)."""
        ...


class Transaction(UnitOfWork, Protocol):
    """A unit of work as its runner sees it: the earlier result of a key, and commit."""

    @property
    def earlier(self) -> Result | None:
        """The stored result of this key's first command (then do nothing and answer it)."""
        ...

    async def commit(self, result: Result) -> None:
        """Record the result under the key, append what was staged, commit: all or nothing.

        Raises:
            ConcurrencyError: a stream moved since it was loaded; nothing was stored.
        """
        ...


Handler = Callable[[UnitOfWork], Awaitable[Result]]

EventHandler = Callable[[Any, UnitOfWork, Envelope], Awaitable[Result | None]]
"""A consumed event's handler: the event (a public contract), the unit of work, the envelope."""

C = TypeVar("C", bound=Contract)


def handles(
    contract: type[C], handler: Callable[[C, UnitOfWork, Envelope], Awaitable[Result | None]]
) -> tuple[type[Contract], EventHandler]:
    """One entry of a service's ``CONSUMED``: a contract and its handler, which the type
    checker holds to that contract (a handler of another event does not pass)."""
    return contract, handler


async def execute(
    units: UnitsOfWork, cause: Cause, handler: Handler, key: IdempotencyKey | None = None
) -> Result:
    """Run ``handler`` in a unit of work and commit it; a retried key answers as before.

    Raises:
        IdempotencyKeyReusedError: the key was used for another request.
        ConcurrencyError: a stream moved meanwhile; nothing was stored.
    """
    async with units.begin(cause, key) as uow:
        if uow.earlier is not None:
            return uow.earlier
        result = await handler(uow)
        result = Result(result.status, to_jsonable_python(result.body))
        await uow.commit(result)
        return result


class Streams(Generic[E]):
    """One kind of aggregate's streams in a unit of work: typed load and staged append."""

    def __init__(self, uow: UnitOfWork, codec: DomainEvents[E]) -> None:
        self.uow = uow
        self.codec = codec

    async def load(self, stream_id: str) -> tuple[int, list[E]]:
        """The stream's version and its events (0 and [] for a new stream); what the
        process's ``StreamCache`` holds of it is not read or decoded again. The events may
        be shared with other loads: never change them."""
        cache = self.uow.stream_cache
        known = cache.get(self.codec, stream_id)
        events: tuple[E, ...] = ()
        size = 0
        if known is not None:
            stored = await self.uow.read(stream_id, len(known.events))
            if stored and stored[0].event_id == known.last_id:
                events, size, stored = known.events, known.size, stored[1:]
            else:  # the store no longer has what was cached (restored, say): all of it
                cache.drop(self.codec, stream_id)
        if not events:
            stored = await self.uow.read(stream_id)
        if stored:
            events = (*events, *(self.codec.decode(row) for row in stored))
            size += sum(len(row.data_json) for row in stored)
            cache.put(self.codec, stream_id, CachedStream(events, stored[-1].event_id, size))
        return len(events), list(events)

    async def fold(self, stream_id: str, empty: F) -> F:
        """``empty`` (a new aggregate) with the stream's events applied. The process keeps
        a copy with the stream's cached events: the next fold of the stream into an
        aggregate of that kind copies it and applies only the events since, so a
        long-lived aggregate costs a command its new events, not its history."""
        cache = self.uow.stream_cache
        before = cache.get(self.codec, stream_id)
        _, events = await self.load(stream_id)
        after = cache.get(self.codec, stream_id)
        kind, folded, start = type(empty), empty, 0
        if before is not None and after is not None and kind in before.folds:
            known = len(before.events)
            # the load extended what was cached (the same objects), not read it afresh
            if len(after.events) >= known and after.events[known - 1] is before.events[-1]:
                folded, start = before.folds[kind].copy(), known
        for event in events[start:]:
            folded.apply(event)
        if after is not None:
            after.folds[kind] = folded.copy()
        return folded

    async def load_existing(self, stream_id: str, what: str) -> list[E]:
        """The events of a stream that must exist.

        Raises:
            NotFoundError: no such stream.
        """
        _, events = await self.load(stream_id)
        if not events:
            raise NotFoundError(f"no {what} {stream_id!r}")
        return events

    def append(
        self, stream_id: str, expected: int, events: Sequence[E], **metadata: Any
    ) -> int | None:
        """Stage the events (none: nothing to do) for the commit; the stream's new version.

        Raises:
            EventTooLargeError: an event exceeds the limit; nothing is staged.
        """
        if not events:
            return None
        meta = self.uow.cause.metadata(**metadata)
        rows = [self.codec.encode(event, meta) for event in events]
        for row in rows:
            check_event_size(row, self.uow.max_event_bytes)
        self.uow.stage(StreamAppend(stream_id, expected, rows))
        return expected + len(rows)


class StreamReader(Protocol):
    """What a read needs of a store: one stream."""

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """The events of one stream in version order."""
        ...


async def read_existing(
    store: StreamReader, codec: DomainEvents[E], stream_id: str, what: str
) -> list[E]:
    """The events of a stream that must exist, outside any unit of work (a query's read).

    Raises:
        NotFoundError: no such stream.
    """
    events = [codec.decode(row) for row in await store.read_stream(stream_id)]
    if not events:
        raise NotFoundError(f"no {what} {stream_id!r}")
    return events
