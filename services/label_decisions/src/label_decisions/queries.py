"""Reads of label decisions: the reads its routes answer, free of HTTP."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from clr_events.application.postgres import PostgresUnitsOfWork
from clr_events.pg import Pool
from clr_events.rules import NotFoundError
from clr_events.store.postgres import PostgresEventStore
from label_decisions import NAME
from label_decisions import application as app
from label_decisions.domain.label_record import record_stream
from label_decisions.domain.policy import DecisionPolicy, Level


async def records(
    pool: Pool, after: str | None, refused_only: bool, limit: int
) -> list[dict[str, Any]]:
    """Label records in ``org_id:level`` order after the record ``after`` (None: from the
    first), those holding only refusals included (``refused_only``: just those)."""
    rows = await pool.fetch(
        f"SELECT org_id, level, valid_until, withdrawn_on, stream_version FROM {NAME}"
        ".records WHERE ($1::text IS NULL OR (org_id || ':' || level) COLLATE \"C\" > $1)"
        " AND (NOT $2 OR valid_until IS NULL)"
        " ORDER BY (org_id || ':' || level) COLLATE \"C\" LIMIT $3",
        after,
        refused_only,
        limit,
    )
    return [dict(row) for row in rows]


async def labels(
    units: PostgresUnitsOfWork,
    org_id: str,
    policy: DecisionPolicy,
    day: date,
    recorded_at: datetime | None,
) -> list[dict[str, Any]]:
    """An organisation's label record per level that has a period on ``day``, with its
    status from the record's history (R10); ``recorded_at``: as the records stood then."""
    records = []
    async with units.reading() as uow:
        for level in Level:
            record = await app.load(uow, org_id, level, recorded_at)
            if record.period_on(day, policy) is not None:
                records.append(app.view(record, policy, day))
    return records


async def history(store: PostgresEventStore, org_id: str, level: Level) -> dict[str, Any]:
    """Every event of a record, refusals included, with its provenance.

    Raises:
        NotFoundError: no such record.
    """
    stream_id = record_stream(org_id, level)
    stored = await store.read_stream(stream_id)
    if not stored:
        raise NotFoundError(f"no {level.value} label record for {org_id!r}")
    return {
        "org_id": org_id,
        "level": level.value,
        "stream_id": stream_id,
        "events": [
            {
                "event_id": str(e.event_id),
                "version": e.version,
                "position": e.position,
                "type": e.type,
                "recorded_at": e.recorded_at,
                "data": e.data,
                "actor": e.metadata.get("actor"),
                "correlation_id": e.metadata.get("correlation_id"),
                "causation_id": e.metadata.get("causation_id"),
                "metadata": e.metadata,
                "hash": bytes(e.hash).hex(),
            }
            for e in stored
        ],
    }
