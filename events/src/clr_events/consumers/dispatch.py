"""Route decoded contracts to a service's event handlers, inside the runner's transaction.

Every service consumes the same way: its application module names the contracts it
handles and their handlers (``CONSUMED``, or ``consumed(policy)`` where they decide by
a policy; each entry ``handles(contract, handler)``, which the type checker holds to its
contract),
and ``Subscriptions`` runs each in a unit of work joined to the runner's transaction,
caused by the event (``Cause.delivered``), and commits it there (``deliver``; the handler
tests call it on the in-memory unit of work). A stream moved meanwhile (a concurrent
command on the same aggregate) is a transient error: the runner retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import clr_events.contracts  # noqa: F401  (registers every public contract)
from clr_events.application.uow import Cause, EventHandler, Result, Transaction
from clr_events.consumers.errors import TransientError
from clr_events.envelope import Envelope
from clr_events.errors import ConcurrencyError
from clr_events.pg import Connection
from clr_events.registry import Contract, registry

HANDLED = Result(200)
"""What a consumed event answers when its handler answers nothing (no one reads it)."""


class JoinedUnits(Protocol):
    """Units of work that join a caller's transaction (``PostgresUnitsOfWork``)."""

    def joined(self, conn: Connection, cause: Cause) -> Transaction:
        """A unit of work on ``conn``, in its transaction: the caller commits."""
        ...


async def deliver(
    handlers: Mapping[type[Contract], EventHandler], uow: Transaction, envelope: Envelope
) -> Result | None:
    """Decode the event, run its handler in ``uow`` and commit; what the handler answered.

    A contract nobody here handles is skipped (None): a consumer need not care about every
    event on a topic. A type nobody registered raises, so the runner dead-letters it.

    Raises:
        TransientError: a stream moved meanwhile; nothing was stored (the runner retries).
    """
    contract = registry.decode(envelope.type, envelope.data or {})
    handler = handlers.get(type(contract))
    if handler is None:
        return None
    result = await handler(contract, uow, envelope)
    try:
        await uow.commit(result or HANDLED)
    except ConcurrencyError as conflict:
        raise TransientError(str(conflict)) from conflict
    return result


class Subscriptions:
    """A consumer's handler for the runner: ``deliver`` in a unit of work joined to the
    runner's transaction (with the message's inbox entry and checkpoint)."""

    def __init__(
        self, handlers: Mapping[type[Contract], EventHandler], units: JoinedUnits, actor: str
    ) -> None:
        self._handlers = dict(handlers)
        self._units = units
        self._actor = actor

    async def __call__(self, conn: Connection, envelope: Envelope) -> None:
        uow = self._units.joined(conn, Cause.delivered(self._actor, envelope))
        await deliver(self._handlers, uow, envelope)
