"""Deliver a public event to a service's event handlers on the in-memory unit of work, as
its consumer would (``clr_events.consumers.dispatch.deliver``): the handler tests' way in."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import count

from clr_events.application.memory import InMemoryUnitsOfWork
from clr_events.application.uow import Cause, EventHandler, Result
from clr_events.consumers.dispatch import deliver
from clr_events.envelope import Envelope
from clr_events.registry import Contract, registry

_POSITION = count(1)


def envelope_of(event: Contract, stream_version: int = 1) -> Envelope:
    """``event`` in an envelope with a new id and global position, in a correlation chain
    of its own (``chain-<id>``)."""
    position = next(_POSITION)
    return Envelope(
        id=f"ev-{position}",
        source="/test",
        type=registry.type_of(type(event)),
        subject="s",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        streamversion=stream_version,
        globalposition=position,
        data=event.model_dump(mode="json"),
        correlationid=f"chain-ev-{position}",
    )


async def consume(
    units: InMemoryUnitsOfWork,
    handlers: Mapping[type[Contract], EventHandler],
    event: Contract,
    stream_version: int = 1,
) -> tuple[Envelope, Result | None]:
    """Deliver ``event`` (at ``stream_version`` of its stream) to ``handlers`` in a unit of
    work of ``units``, committed; the envelope it came in and the handler's answer."""
    arrived = envelope_of(event, stream_version)
    async with units.begin(Cause.delivered("consumer", arrived)) as uow:
        return arrived, await deliver(handlers, uow, arrived)
