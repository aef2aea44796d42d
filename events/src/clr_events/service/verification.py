"""``GET /verification`` of a service's event store, the same for every service that has it."""

from __future__ import annotations

from typing import Any

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
