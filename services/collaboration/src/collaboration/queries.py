"""Reads of the collaboration service: the reads its routes answer, free of HTTP."""

from __future__ import annotations

from datetime import date
from typing import Any

from clr_events.application.uow import StreamReader, read_existing
from clr_events.labels import label_status
from clr_events.pg import Pool
from clr_events.settings import RenewalWindows
from collaboration import NAME
from collaboration.application import EVENT_TYPES
from collaboration.domain import model


async def organisation(
    store: StreamReader, pool: Pool, org_id: str, *, today: date, windows: RenewalWindows
) -> dict[str, Any]:
    """A profile with its validation and the labels it holds, their status on ``today``
    (R10; a label decided before decisions carried their deadline: ``windows``)."""
    events = await read_existing(
        store, EVENT_TYPES, model.organisation_stream(org_id), "organisation"
    )
    org = model.Organisation.replay(events)
    labels = await pool.fetch(
        "SELECT level, valid_until, renewal_deadline, withdrawn_on"
        f" FROM {NAME}.organisation_labels WHERE org_id = $1 ORDER BY level",
        org_id,
    )
    registered = org.registered
    return {
        "org_id": org_id,
        "name": registered.name,
        "country": registered.country,
        "region": registered.region,
        "website": registered.website,
        "sector": registered.sector,
        "eccp_profile_id": registered.eccp_profile_id,
        "figures": org.figures.model_dump(),
        "validated_on": org.validated.validated_on if org.validated else None,
        "labels": [
            {
                "level": row["level"],
                "valid_until": row["valid_until"],
                "status": label_status(
                    today,
                    row["valid_until"],
                    windows.deadline(row["level"], row["valid_until"], row["renewal_deadline"]),
                    row["withdrawn_on"],
                ).value,
            }
            for row in labels
        ],
    }


async def organisations(
    pool: Pool, country: str | None, validated: bool | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Registered organisations in ``org_id`` order, filtered by country and validation
    (None: either)."""
    rows = await pool.fetch(
        f"SELECT org_id, name, country, sector, validated_on FROM {NAME}.organisations"
        " WHERE ($1::text IS NULL OR country = $1)"
        " AND ($2::bool IS NULL OR (validated_on IS NOT NULL) = $2)"
        " ORDER BY org_id LIMIT $3 OFFSET $4",
        country,
        validated,
        limit,
        offset,
    )
    return [dict(row) for row in rows]


async def partnership(store: StreamReader, partnership_id: str) -> dict[str, Any]:
    """A partnership and its partners."""
    events = await read_existing(
        store, EVENT_TYPES, model.partnership_stream(partnership_id), "partnership"
    )
    found = model.Partnership.replay(events)
    return {**found.formed.model_dump(mode="json"), "member_org_ids": found.members}


async def agreement(store: StreamReader, agreement_id: str) -> dict[str, Any]:
    """One cooperation agreement as signed."""
    events = await read_existing(
        store, EVENT_TYPES, model.agreement_stream(agreement_id), "agreement"
    )
    return events[0].model_dump(mode="json")


async def matchmaking_event(store: StreamReader, event_id: str) -> dict[str, Any]:
    """One matchmaking event as recorded."""
    events = await read_existing(
        store, EVENT_TYPES, model.matchmaking_stream(event_id), "matchmaking event"
    )
    return events[0].model_dump(mode="json")
