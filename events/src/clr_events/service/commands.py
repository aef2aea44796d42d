"""The write path every service shares: idempotency, load, decide, append, one transaction.

A command handler gets a connection inside a transaction, loads the streams it needs,
lets the pure domain decide, and appends with the expected version (a concurrent change
raises ``ConcurrencyError``, a 409). With an ``Idempotency-Key`` the first result is
stored in the same transaction: a retry with the same key and the same request returns it
and writes nothing; the same key with another request is refused (422). Two requests
racing with one key serialise on the key's row, so the second sees the first's result.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from clr_events.pg import Connection, Pool
from clr_events.rules import NotFoundError
from clr_events.service import limits
from clr_events.service.auth import Actor, Role, require
from clr_events.service.problems import ProblemError
from clr_events.store.base import AppendResult, ExpectedVersion, NewEvent, StoredEvent
from clr_events.store.postgres import PostgresEventStore

E = TypeVar("E", bound=BaseModel)
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
"""An identifier in a path or body: what stream ids are made of."""
Work = Callable[[Connection], Awaitable[tuple[int, dict[str, Any]]]]
_HEADER_TOKEN = re.compile(r"[\x20-\x7e]{1,200}")
"""An idempotency key or correlation id: what is stored of a header, bounded."""


def new_id() -> str:
    """A fresh identifier for a client that sent none."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Cause:
    """Who or what caused an event, and the chain it belongs to: stored as metadata."""

    actor: str
    correlation_id: str
    causation_id: str | None = None

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """Metadata of an event with this cause."""
        data: dict[str, Any] = {"actor": self.actor, "correlation_id": self.correlation_id}
        if self.causation_id:
            data["causation_id"] = self.causation_id
        data.update(extra)
        return data


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


class Streams(Generic[E]):
    """Load and append one kind of aggregate's streams inside a caller's transaction."""

    def __init__(self, store: PostgresEventStore, events: DomainEvents[E]) -> None:
        self.store = store
        self.events = events

    async def load(self, conn: Connection, stream_id: str) -> tuple[int, list[E]]:
        """The stream's version and its events (0 and [] for a new stream)."""
        stored = await self.store.read_stream(stream_id, conn=conn)
        return len(stored), [self.events.decode(row) for row in stored]

    async def load_existing(self, conn: Connection, stream_id: str, what: str) -> list[E]:
        """The events of a stream that must exist.

        Raises:
            NotFoundError: no such stream.
        """
        _, events = await self.load(conn, stream_id)
        if not events:
            raise NotFoundError(f"no {what} {stream_id!r}")
        return events

    async def append(
        self,
        conn: Connection,
        stream_id: str,
        expected: ExpectedVersion,
        events: list[E],
        cause: Cause,
        **metadata: Any,
    ) -> AppendResult | None:
        """Append the events (none: nothing to do) with their cause as metadata.

        Raises:
            ProblemError: 413, an event is larger than ``CLR_MAX_EVENT_BYTES``; nothing
                is stored.
        """
        if not events:
            return None
        meta = cause.metadata(**metadata)
        rows = [self.events.encode(event, meta) for event in events]
        for row in rows:
            check_event_size(row)
        return await self.store.append_in(conn, stream_id, expected, rows)


def check_event_size(row: NewEvent, max_bytes: int | None = None) -> None:
    """Refuse an event whose data and metadata, as JSON, exceed the event size limit.

    Raises:
        ProblemError: 413, naming the limit (``CLR_MAX_EVENT_BYTES`` by default).
    """
    limit = max_bytes if max_bytes is not None else limits.settings().max_event_bytes
    size = len(orjson.dumps(dict(row.data))) + len(orjson.dumps(dict(row.metadata)))
    if size > limit:
        raise ProblemError(
            413,
            "Event too large",
            f"the {row.type} event would take {size} bytes; an event may take at most"
            f" {limit} bytes (data and metadata as JSON)",
            type_=limits.TOO_LARGE,
            max_bytes=limit,
        )


class IdempotencyStore:
    """Results of keyed commands, per actor and key, in the service's schema."""

    def __init__(self, schema: str) -> None:
        self._table = f"{schema}.idempotency_keys"

    async def migrate(self, pool: Pool) -> None:
        """Create the table (idempotent)."""
        await pool.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            " actor text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,"
            " status int, body jsonb, created_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (actor, key))"
        )

    async def claim(
        self, conn: Connection, actor: str, key: str, fingerprint: str
    ) -> tuple[int, dict[str, Any]] | None:
        """Claim the key in this transaction; the stored result if it was used before.

        Raises:
            ProblemError: 422, the key was used for another request.
        """
        inserted = await conn.fetchval(
            f"INSERT INTO {self._table} (actor, key, fingerprint) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            actor,
            key,
            fingerprint,
        )
        if inserted:
            return None
        row = await conn.fetchrow(
            f"SELECT fingerprint, status, body FROM {self._table} WHERE actor = $1 AND key = $2",
            actor,
            key,
        )
        assert row is not None
        if row["fingerprint"] != fingerprint:
            raise ProblemError(
                422,
                "Idempotency key reused",
                "this Idempotency-Key was used for a different request",
            )
        return int(row["status"]), orjson.loads(row["body"])

    async def record(
        self, conn: Connection, actor: str, key: str, status: int, body: dict[str, Any]
    ) -> None:
        """Store the result of the keyed command (same transaction as its events)."""
        await conn.execute(
            f"UPDATE {self._table} SET status = $3, body = $4::jsonb WHERE actor = $1 AND key = $2",
            actor,
            key,
            status,
            orjson.dumps(body).decode(),
        )


@dataclass
class CommandContext:
    """One write request: its actor, cause, idempotency key and the service's pool."""

    actor: Actor
    cause: Cause
    idempotency_key: str | None
    fingerprint: str
    pool: Pool
    idempotency: IdempotencyStore

    async def run(self, work: Work) -> JSONResponse:
        """Run ``work`` in one transaction, at most once per idempotency key."""
        async with self.pool.acquire() as conn, conn.transaction():
            key = self.idempotency_key
            if key is not None:
                earlier = await self.idempotency.claim(
                    conn, self.actor.subject, key, self.fingerprint
                )
                if earlier is not None:
                    status, body = earlier
                    return JSONResponse(body, status, headers={"Idempotent-Replayed": "true"})
            status, result = await work(conn)
            body = jsonable_encoder(result)
            if key is not None:
                await self.idempotency.record(conn, self.actor.subject, key, status, body)
        return JSONResponse(body, status)


def command(*roles: Role) -> Callable[[Request], Awaitable[CommandContext]]:
    """A dependency: the context of a write request by an actor holding one of ``roles``."""
    authorise = require(*roles)

    async def dependency(request: Request) -> CommandContext:
        actor = await authorise(request)
        key = request.headers.get("idempotency-key")
        if key is not None and not _HEADER_TOKEN.fullmatch(key):
            raise ProblemError(
                400, "Bad Idempotency-Key", "a key has 1 to 200 printable ASCII characters"
            )
        given = request.headers.get("x-correlation-id") or None
        if given is not None and not _HEADER_TOKEN.fullmatch(given):
            raise ProblemError(
                400,
                "Bad X-Correlation-ID",
                "a correlation id has 1 to 200 printable ASCII characters",
            )
        body = await request.body()
        digest = hashlib.sha256(
            request.method.encode() + b" " + request.url.path.encode() + b"\n" + body
        ).hexdigest()
        correlation = given or str(uuid.uuid4())
        return CommandContext(
            actor=actor,
            cause=Cause(actor=actor.subject, correlation_id=correlation),
            idempotency_key=key,
            fingerprint=digest,
            pool=request.app.state.runtime.pool,
            idempotency=request.app.state.runtime.idempotency,
        )

    return dependency
