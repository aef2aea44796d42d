"""Route decoded contracts to a service's handlers, inside the runner's transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import clr_events.contracts  # noqa: F401  (registers every public contract)
from clr_events.envelope import Envelope
from clr_events.pg import Connection
from clr_events.registry import Contract, registry

C = TypeVar("C", bound=Contract)
ContractHandler = Callable[[Connection, Any, Envelope], Awaitable[None]]


class Subscriptions:
    """Handlers by contract class; a consumer's ``Handler`` for the runner.

    A registered contract nobody handles is skipped (a consumer need not care about every
    event on a topic); a type nobody registered raises, so the runner dead-letters it.
    """

    def __init__(self) -> None:
        self._handlers: dict[type[Contract], ContractHandler] = {}

    def on(
        self, model: type[C]
    ) -> Callable[
        [Callable[[Connection, C, Envelope], Awaitable[None]]],
        Callable[[Connection, C, Envelope], Awaitable[None]],
    ]:
        """Decorator: handle ``model`` with the decorated function."""

        def register(
            function: Callable[[Connection, C, Envelope], Awaitable[None]],
        ) -> Callable[[Connection, C, Envelope], Awaitable[None]]:
            self._handlers[model] = function
            return function

        return register

    async def __call__(self, conn: Connection, envelope: Envelope) -> None:
        contract = registry.decode(envelope.type, envelope.data or {})
        handler = self._handlers.get(type(contract))
        if handler is not None:
            await handler(conn, contract, envelope)
