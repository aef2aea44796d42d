"""The HTTP side of a command: actor, Idempotency-Key, correlation id, command id.

A write route parses its body into a command, and ``ctx.run`` runs the command's handler
(``clr_events.application``) in a unit of work of the service: with an ``Idempotency-Key``
the first result is stored in the same transaction, a retry with the same key and request
answers it (``Idempotent-Replayed: true``) and writes nothing, the same key with another
request is refused (422). The result becomes the JSON response.

Every command has an id, the causation id of each event it records (``causation_id`` in
the metadata, ``ce_causationid`` on Kafka) and answered in ``X-Command-ID``:
``command:<32 hex>``, random per request, or derived from the actor and the
``Idempotency-Key`` when one is given (a retry of a keyed command is the same command).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from clr_events.application.uow import (
    Cause,
    EventTooLargeError,
    Handler,
    IdempotencyKey,
    UnitsOfWork,
    execute,
    new_id,
)
from clr_events.application.uow import check_event_size as check_size
from clr_events.observability.logs import bind_correlation
from clr_events.service import limits
from clr_events.service.auth import Actor, Role, require
from clr_events.service.inputs import Id
from clr_events.service.problems import ProblemError
from clr_events.store.base import NewEvent

__all__ = [
    "Cause",
    "CommandContext",
    "Id",
    "check_event_size",
    "command",
    "command_id",
    "new_id",
]

_HEADER_TOKEN = re.compile(r"[\x20-\x7e]{1,200}")
"""An idempotency key or correlation id: what is stored of a header, bounded."""


def command_id(actor: str, idempotency_key: str | None = None) -> str:
    """The id of a command: random, or the same for every retry of one keyed command."""
    if idempotency_key is None:
        return f"command:{uuid.uuid4().hex}"
    digest = hashlib.sha256(f"{actor}\0{idempotency_key}".encode()).hexdigest()[:32]
    return f"command:{digest}"


def check_event_size(row: NewEvent, max_bytes: int | None = None) -> None:
    """Refuse an event whose data and metadata, as JSON, exceed the event size limit.

    Raises:
        ProblemError: 413, naming the limit (``CLR_MAX_EVENT_BYTES`` by default).
    """
    try:
        check_size(row, max_bytes if max_bytes is not None else limits.settings().max_event_bytes)
    except EventTooLargeError as error:
        raise limits.too_large(error) from error


@dataclass
class CommandContext:
    """One write request: its actor, cause, idempotency key and the service's units of work."""

    actor: Actor
    cause: Cause
    key: IdempotencyKey | None
    units: UnitsOfWork

    async def run(self, handler: Handler) -> JSONResponse:
        """Run ``handler`` in one unit of work, at most once per idempotency key."""
        result = await execute(self.units, self.cause, handler, self.key)
        headers = {"X-Command-ID": self.cause.causation_id or ""}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Json(result.body, result.status, headers=headers)


class Json(JSONResponse):
    """A JSON response encoded by orjson (the body is JSON-ready already)."""

    def render(self, content: Any) -> bytes:
        """The body as JSON bytes."""
        return orjson.dumps(content)


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
        keyed = None
        if key is not None:
            body = await request.body()
            path: str = request.scope["path"]
            digest = hashlib.sha256(
                request.method.encode() + b" " + path.encode() + b"\n" + body
            ).hexdigest()
            keyed = IdempotencyKey(actor.subject, key, digest)
        correlation = given or str(uuid.uuid4())
        bind_correlation(correlation)  # the request's log lines name it
        return CommandContext(
            actor=actor,
            cause=Cause(
                actor=actor.subject,
                correlation_id=correlation,
                causation_id=command_id(actor.subject, key),
            ),
            key=keyed,
            units=request.app.state.runtime.units,
        )

    return dependency
