"""``GET /verification``: re-hash a service's event store, the same route in every service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from clr_events.service.auth import Actor, Role, require
from clr_events.service.inputs import Position
from clr_events.service.problems import INVALID_REQUEST, ProblemError
from clr_events.store import VerificationRangeError
from clr_events.store.postgres import PostgresEventStore


async def verification(store: PostgresEventStore, first: int, last: int | None) -> dict[str, Any]:
    """Re-hash the store over a range of positions (by default every stored row, the head
    or not): every alteration is named.

    Raises:
        ProblemError: 422, a range past the end or with ``first`` after ``last``.
    """
    try:
        report = await store.verify(first, last)
    except VerificationRangeError as error:
        raise ProblemError(
            422,
            "Range out of bounds",
            str(error),
            type_=INVALID_REQUEST,
            errors=[{"pointer": "/query/last" if last else "/query/first", "message": str(error)}],
        ) from error
    return {
        "ok": report.ok,
        "first_position": report.first_position,
        "last_position": report.last_position,
        "checked": report.checked,
        "problems": list(report.problems),
    }


def router(*roles: Role) -> APIRouter:
    """The route, for an actor holding one of ``roles`` (``registry_admin`` holds all)."""
    routes = APIRouter(tags=["audit"])
    verifier = Depends(require(*roles))

    @routes.get("/verification")
    async def verify(
        request: Request,
        _actor: Actor = verifier,
        first: Position = 1,
        last: Position | None = None,
    ) -> dict[str, Any]:
        """Re-hash the service's event store over a range of positions (by default every
        stored row, the head or not): every alteration is named. A range past the end, or
        with ``first`` after ``last``, is a 422 problem."""
        return await verification(request.app.state.runtime.store, first, last)

    return routes
