"""Reads of label decisions: the reads its routes answer, free of HTTP."""

from __future__ import annotations

from typing import Any

from clr_events.pg import Pool

SCHEMA = "label_decisions"


async def records(
    pool: Pool, after: str | None, refused_only: bool, limit: int
) -> list[dict[str, Any]]:
    """Label records in ``org_id:level`` order after the record ``after`` (None: from the
    first), those holding only refusals included (``refused_only``: just those)."""
    rows = await pool.fetch(
        f"SELECT org_id, level, valid_until, withdrawn_on, stream_version FROM {SCHEMA}"
        ".records WHERE ($1::text IS NULL OR (org_id || ':' || level) COLLATE \"C\" > $1)"
        " AND (NOT $2 OR valid_until IS NULL)"
        " ORDER BY (org_id || ':' || level) COLLATE \"C\" LIMIT $3",
        after,
        refused_only,
        limit,
    )
    return [dict(row) for row in rows]
