"""Feed cursors beyond anything the feed has seen: a clear problem, never a page that
silently never advances (a cursor from another installation, say).

A cursor above the highest position the feed holds is refused only once the label
register has applied everything on its topics: while it is behind, the cursor may be a
position a Kafka consumer has already seen, and the answer is the page it always was
(empty until the read side catches up)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from clr_events.pg import Connection
from clr_events.service.problems import ProblemError

CURSOR_AHEAD = "urn:cluster-label-registry:problem:cursor-ahead"
RETRY_AFTER_SECONDS = 1
"""The read side's lag is at most this old (``lag_cache_seconds``): a position a Kafka
consumer saw a moment ago is in the feed by then."""

V = "projections"
log = logging.getLogger(__name__)


async def check_cursor(
    conn: Connection, after: int, lag: Callable[[], Awaitable[int | None]]
) -> None:
    """Refuse ``after`` when it is beyond the highest position the feed holds and the read
    side is not behind (``lag``: messages the label register has still to apply; None:
    unknown, the cursor is let through).

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
    try:
        behind = await lag()
    except Exception as error:  # Kafka away: the read side may be behind
        log.debug("lag unknown: %r", error)
        behind = None
    if behind is None or behind > 0:
        return
    raise ProblemError(
        409,
        "Cursor beyond the feed's head",
        f"no label event at or after position {after} was published: this feed has read"
        f" everything on Kafka and its head is {head}. A cursor from another installation"
        " never becomes valid here: start again from 0 or from a snapshot's feed position"
        " (a position a Kafka consumer saw within the last second: retry)",
        type_=CURSOR_AHEAD,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        head=head,
        latest=latest,
        after=after,
    )
