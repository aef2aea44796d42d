"""Feed cursors beyond anything the feed has seen: a clear problem, never a page that
silently never advances (a cursor from another installation, or from a Kafka consumer
ahead of the read side)."""

from __future__ import annotations

from clr_events.pg import Connection
from clr_events.service.problems import ProblemError

CURSOR_AHEAD = "urn:cluster-label-registry:problem:cursor-ahead"
RETRY_AFTER_SECONDS = 2

V = "projections"


async def check_cursor(conn: Connection, after: int) -> None:
    """Refuse ``after`` when it is beyond the highest position the feed holds.

    Raises:
        ProblemError: 409 with ``head`` (the feed's head) and ``latest`` (the highest
            position it holds, possibly above the head while a partition is behind).
    """
    if after == 0:
        return
    row = await conn.fetchrow(
        f"SELECT coalesce((SELECT head FROM {V}.labels_feed_head), 0) AS head,"
        f" coalesce((SELECT max(position) FROM {V}.labels_feed), 0) AS latest"
    )
    assert row is not None
    head, latest = int(row["head"]), int(row["latest"])
    if after <= max(head, latest):
        return
    raise ProblemError(
        409,
        "Cursor beyond the feed's head",
        f"no label event at or after position {after} has reached this feed (its head is"
        f" {head}): a cursor from another installation never will; a position taken from"
        " Kafka moments ago will once the read side catches up (retry after a moment);"
        " otherwise start again from 0 or from a snapshot's feed position",
        type_=CURSOR_AHEAD,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        head=head,
        latest=latest,
        after=after,
    )
