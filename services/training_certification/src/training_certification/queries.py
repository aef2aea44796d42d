"""Reads of training and certification: the reads its routes answer, free of HTTP.

Names are stored sealed under their person's key (``clr_events.personal``) and opened
here; once a person's data was erased their key is gone and their name reads None.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from clr_events import personal
from clr_events.application.uow import StreamReader, read_existing
from clr_events.pg import Pool
from training_certification import NAME
from training_certification.application import EVENT_TYPES, data_subject
from training_certification.domain import events as domain_events
from training_certification.domain import model
from training_certification.domain.policy import ExpertRole

CERTIFICATION_EVENTS = {
    cls.__name__: cls
    for cls in (
        domain_events.ExpertCertified,
        domain_events.CertificationRenewed,
        domain_events.CertificationRevoked,
    )
}


async def _opened_names(pool: Pool, stored: dict[str, str | None]) -> dict[str, str | None]:
    """Sealed names by person id, opened with their keys (None: erased, or none)."""
    keys = await personal.keys(pool, NAME, [data_subject(p) for p in stored])
    return {
        person_id: _opened(keys, data_subject(person_id), name)
        for person_id, name in stored.items()
    }


def _opened(keys: dict[str, bytes], subject: str, name: str | None) -> str | None:
    if name is None or not personal.is_sealed(name):
        return name  # recorded before names were sealed
    return personal.open_or_none(keys.get(subject), subject, name)


async def person_profile(store: StreamReader, pool: Pool, person_id: str) -> dict[str, Any]:
    """A person's certificates and certifications, the name opened (None once erased)."""
    events = await read_existing(store, EVENT_TYPES, model.person_stream(person_id), "person")
    found = model.Person.replay(events)
    names = await _opened_names(pool, {person_id: found.registered.name})
    return {
        "person_id": person_id,
        "name": None if found.erased_on else names[person_id],
        "erased_on": found.erased_on,
        "country": found.registered.country,
        "affiliation_org_ids": list(found.affiliations),
        "certificates": found.certificates,
        "certifications": {
            role: {
                "valid_from": c.valid_from,
                "valid_until": c.valid_until,
                "revoked_on": c.revoked_on,
            }
            for role, c in found.certifications.items()
        },
    }


async def experts(
    pool: Pool,
    day: date,
    *,
    role: ExpertRole | None,
    country: str | None,
    limit: int,
    offset: int,
    recorded_at: datetime | None,
) -> list[dict[str, Any]]:
    """Experts certified for ``role`` (None: any) and in force on ``day``, by country, names
    opened; ``recorded_at``: as the certifications were recorded then. Another day than
    today, or a moment, is answered from every certification event in the store (each
    period of a role, not only its latest)."""
    if recorded_at is not None or day != date.today():
        history = await _experts_from_history(
            pool, day, recorded_at, role.value if role else None, country
        )
        rows = history[offset : offset + limit]
    else:
        found = await pool.fetch(
            "SELECT p.person_id, p.name, p.country, c.role, c.valid_from, c.valid_until"
            f" FROM {NAME}.certifications c JOIN {NAME}.people p USING (person_id)"
            " WHERE ($1::text IS NULL OR c.role = $1)"
            " AND ($2::text IS NULL OR p.country = $2) AND c.valid_from <= $3"
            " AND c.valid_until >= $3 AND (c.revoked_on IS NULL OR c.revoked_on > $3)"
            " ORDER BY p.person_id, c.role LIMIT $4 OFFSET $5",
            role.value if role else None,
            country,
            day,
            limit,
            offset,
        )
        rows = [dict(row) for row in found]
    names = await _opened_names(pool, {r["person_id"]: r["name"] for r in rows})
    for row in rows:
        row["name"] = names[row["person_id"]]
    return rows


async def _experts_from_history(
    pool: Pool, day: date, recorded_at: datetime | None, role: str | None, country: str | None
) -> list[dict[str, Any]]:
    """The experts in force on ``day`` by the certification events recorded by then (names
    as stored: sealed, opened by the caller)."""
    rows = await pool.fetch(
        f"SELECT type, data::text AS data FROM {NAME}.event_store"
        " WHERE type = ANY($1::text[]) AND ($2::timestamptz IS NULL OR recorded_at <= $2)"
        " ORDER BY position",
        list(CERTIFICATION_EVENTS),
        recorded_at,
    )
    history = [CERTIFICATION_EVENTS[r["type"]].model_validate_json(r["data"]) for r in rows]
    in_force = {
        key: next(c for c in reversed(periods) if c.valid_on(day))
        for key, periods in model.certification_periods(history).items()
        if any(c.valid_on(day) for c in periods) and (role is None or key[1] == role)
    }
    people = {
        r["person_id"]: r
        for r in await pool.fetch(
            f"SELECT person_id, name, country FROM {NAME}.people"
            " WHERE person_id = ANY($1::text[]) AND ($2::text IS NULL OR country = $2)",
            list({person for person, _ in in_force}),
            country,
        )
    }
    return [
        {
            "person_id": person,
            "name": people[person]["name"],
            "country": people[person]["country"],
            "role": held_role,
            "valid_from": c.valid_from,
            "valid_until": c.valid_until,
        }
        for (person, held_role), c in sorted(in_force.items())
        if person in people
    ]


async def names(pool: Pool, person_ids: list[str]) -> dict[str, str | None]:
    """People's names by person id, opened (None: erased); an unknown id is left out."""
    rows = await pool.fetch(
        f"SELECT person_id, name FROM {NAME}.people WHERE person_id = ANY($1::text[])",
        person_ids,
    )
    return await _opened_names(pool, {r["person_id"]: r["name"] for r in rows})
