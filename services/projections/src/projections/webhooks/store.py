"""Subscriptions in PostgreSQL: the endpoint, its secrets, its state and its cursor.

One row per subscription in ``projections.webhook_subscriptions`` (the control schema's
migration 0003, applied when the service starts). ``position`` is the cursor: every
event of the feed up to it has been delivered (or skipped by the type filter).
``revision`` grows with every change an operator makes (edit, pause, resume, replay,
rotation); the delivery loop writes its progress only under the revision it started
with, so a replay or a pause is never overwritten by a loop that has not yet noticed it.
Each change is announced on the ``webhooks`` channel (NOTIFY: a wake-up, never the
truth; the dispatcher also reads the table every few seconds).
"""

from __future__ import annotations

import secrets as random
from datetime import datetime, timedelta
from typing import Any

from clr_events.pg import Connection, Pool
from projections.core import CONTROL

TABLE = f"{CONTROL}.webhook_subscriptions"
CHANNEL = "webhooks"
STATES = ("active", "paused", "dead")

PUBLIC_COLUMNS = (
    "id, url, description, types, state, position, revision, delivered, failures,"
    " failing_since, last_status, last_error, last_attempt_at, next_attempt_at,"
    " last_delivered_at, dead_reason, previous_secret_expires_at, created_by, created_at,"
    " updated_at"
)
"""Everything but the secrets (shown once: at creation and at rotation)."""


def new_id() -> str:
    """A subscription id: ``wh_`` and 16 random characters."""
    return "wh_" + random.token_hex(8)


async def _changed(conn: Connection, sub_id: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, sub_id)


async def create(
    pool: Pool,
    *,
    url: str,
    description: str,
    types: list[str] | None,
    secret: str,
    position: int,
    created_by: str,
) -> dict[str, Any]:
    """A new active subscription from ``position``."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"INSERT INTO {TABLE} (id, url, description, types, secret, state, position,"
            f" created_by) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7)"
            f" RETURNING {PUBLIC_COLUMNS}",
            new_id(),
            url,
            description,
            types,
            secret,
            position,
            created_by,
        )
        assert row is not None
        await _changed(conn, row["id"])
    return dict(row)


async def one(conn: Connection | Pool, sub_id: str) -> dict[str, Any] | None:
    """A subscription without its secrets, or None."""
    row = await conn.fetchrow(f"SELECT {PUBLIC_COLUMNS} FROM {TABLE} WHERE id = $1", sub_id)
    return None if row is None else dict(row)


async def every(conn: Connection | Pool) -> list[dict[str, Any]]:
    """Every subscription without its secrets, oldest first."""
    rows = await conn.fetch(f"SELECT {PUBLIC_COLUMNS} FROM {TABLE} ORDER BY created_at, id")
    return [dict(r) for r in rows]


async def change(pool: Pool, sub_id: str, sets: dict[str, Any]) -> dict[str, Any] | None:
    """Set columns (names from this module, never from a request), bump the revision,
    announce it; the subscription after, or None if there is none."""
    names = list(sets)
    assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE {TABLE} SET {assignments}{', ' if names else ''}"
            f" revision = revision + 1, updated_at = now() WHERE id = $1"
            f" RETURNING {PUBLIC_COLUMNS}",
            sub_id,
            *sets.values(),
        )
        if row is not None:
            await _changed(conn, sub_id)
    return None if row is None else dict(row)


RECOVERED = {
    "failures": 0,
    "failing_since": None,
    "next_attempt_at": None,
    "dead_reason": None,
}
"""What resuming (or re-enabling a dead subscription) clears."""


async def rotate(pool: Pool, sub_id: str, secret: str, overlap: timedelta) -> datetime | None:
    """Make ``secret`` the signing secret; the one before signs too for ``overlap``.
    Returns when the previous one stops signing, or None if there is no subscription."""
    async with pool.acquire() as conn, conn.transaction():
        expires: datetime | None = await conn.fetchval(
            f"UPDATE {TABLE} SET previous_secret = secret, secret = $2,"
            " previous_secret_expires_at = now() + $3, revision = revision + 1,"
            " updated_at = now() WHERE id = $1 RETURNING previous_secret_expires_at",
            sub_id,
            secret,
            overlap,
        )
        if expires is not None:
            await _changed(conn, sub_id)
    return expires


async def delete(pool: Pool, sub_id: str) -> bool:
    """Remove a subscription; whether there was one."""
    async with pool.acquire() as conn, conn.transaction():
        gone = await conn.fetchval(f"DELETE FROM {TABLE} WHERE id = $1 RETURNING id", sub_id)
        if gone is not None:
            await _changed(conn, sub_id)
    return gone is not None


# ---------------------------------------------------------------- the delivery loop's


async def runnable(pool: Pool) -> list[dict[str, Any]]:
    """The active subscriptions with what delivery needs (secrets included)."""
    rows = await pool.fetch(
        f"SELECT id, url, types, secret, previous_secret, previous_secret_expires_at,"
        f" position, revision, failures, failing_since FROM {TABLE}"
        " WHERE state = 'active' ORDER BY id"
    )
    return [dict(r) for r in rows]


async def revisions(pool: Pool) -> dict[str, int]:
    """The revision of each active subscription."""
    rows = await pool.fetch(f"SELECT id, revision FROM {TABLE} WHERE state = 'active'")
    return {r["id"]: r["revision"] for r in rows}


async def advance(
    pool: Pool, sub_id: str, revision: int, position: int, delivered: int, recovered: bool
) -> bool:
    """Move the cursor to ``position`` after ``delivered`` more deliveries (and clear the
    failure state when the endpoint ``recovered``); False if the revision changed."""
    done = await pool.fetchval(
        f"UPDATE {TABLE} SET position = $3, delivered = delivered + $4,"
        " last_delivered_at = CASE WHEN $4 > 0 THEN now() ELSE last_delivered_at END,"
        " failures = CASE WHEN $5 THEN 0 ELSE failures END,"
        " failing_since = CASE WHEN $5 THEN NULL ELSE failing_since END,"
        " next_attempt_at = CASE WHEN $5 THEN NULL ELSE next_attempt_at END,"
        " last_status = CASE WHEN $5 THEN 200 ELSE last_status END"
        " WHERE id = $1 AND revision = $2 RETURNING id",
        sub_id,
        revision,
        position,
        delivered,
        recovered,
    )
    return done is not None


async def failed(
    pool: Pool,
    sub_id: str,
    revision: int,
    *,
    failures: int,
    failing_since: datetime,
    status: int | None,
    error: str,
    retry_in: float,
) -> bool:
    """Record a failed attempt round; False if the revision changed."""
    done = await pool.fetchval(
        f"UPDATE {TABLE} SET failures = $3, failing_since = $4, last_status = $5,"
        " last_error = $6, last_attempt_at = now(),"
        " next_attempt_at = now() + make_interval(secs => $7)"
        " WHERE id = $1 AND revision = $2 RETURNING id",
        sub_id,
        revision,
        failures,
        failing_since,
        status,
        error[:1000],
        retry_in,
    )
    return done is not None


async def died(pool: Pool, sub_id: str, revision: int, reason: str) -> None:
    """The endpoint is given up on: ``dead`` until an operator resumes it."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            f"UPDATE {TABLE} SET state = 'dead', dead_reason = $3, next_attempt_at = NULL,"
            " revision = revision + 1, updated_at = now()"
            " WHERE id = $1 AND revision = $2 RETURNING id",
            sub_id,
            revision,
            reason[:1000],
        )
        if done is not None:
            await _changed(conn, sub_id)
