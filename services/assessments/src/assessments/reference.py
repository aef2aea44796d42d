"""What this service knows of organisations and experts: fed by the other services'
public events (never their databases), read by the commands as the domain's facts
(through the unit of work's ``Rows``).

Handlers are upserts keyed by the aggregate, so an event arriving twice changes nothing;
Kafka keys keep one organisation's or person's events in order.
"""

from __future__ import annotations

from assessments.domain.model import Certification, ExpertFacts, OrgFacts
from clr_events.application.uow import Rows
from clr_events.consumers.dispatch import Subscriptions
from clr_events.contracts import collaboration as orgs
from clr_events.contracts import training_certification as people
from clr_events.envelope import Envelope
from clr_events.pg import Connection

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.known_organisations (
        org_id text PRIMARY KEY, country text NOT NULL, validated_on date);
    CREATE TABLE IF NOT EXISTS {schema}.known_experts (
        person_id text PRIMARY KEY, country text NOT NULL, affiliations text[] NOT NULL);
    CREATE TABLE IF NOT EXISTS {schema}.expert_certifications (
        person_id text NOT NULL, role text NOT NULL, valid_from date NOT NULL,
        valid_until date NOT NULL, revoked_on date, PRIMARY KEY (person_id, role));
    """
]

subscriptions = Subscriptions()


@subscriptions.on(orgs.OrganisationRegistered)
async def _registered(conn: Connection, event: orgs.OrganisationRegistered, _: Envelope) -> None:
    await conn.execute(
        "INSERT INTO assessments.known_organisations (org_id, country) VALUES ($1, $2)"
        " ON CONFLICT (org_id) DO UPDATE SET country = excluded.country",
        event.org_id,
        event.country,
    )


@subscriptions.on(orgs.ProfileValidated)
async def _validated(conn: Connection, event: orgs.ProfileValidated, _: Envelope) -> None:
    await conn.execute(
        "UPDATE assessments.known_organisations SET validated_on = $2 WHERE org_id = $1",
        event.org_id,
        event.validated_on,
    )


@subscriptions.on(people.PersonRegistered)
async def _person(conn: Connection, event: people.PersonRegistered, _: Envelope) -> None:
    await conn.execute(
        "INSERT INTO assessments.known_experts (person_id, country, affiliations)"
        " VALUES ($1, $2, $3) ON CONFLICT (person_id) DO NOTHING",
        event.person_id,
        event.country,
        event.affiliation_org_ids,
    )


@subscriptions.on(people.AffiliationsChanged)
async def _affiliations(conn: Connection, event: people.AffiliationsChanged, _: Envelope) -> None:
    await conn.execute(
        "UPDATE assessments.known_experts SET affiliations = $2 WHERE person_id = $1",
        event.person_id,
        event.affiliation_org_ids,
    )


@subscriptions.on(people.ExpertCertified)
async def _certified(conn: Connection, event: people.ExpertCertified, _: Envelope) -> None:
    await conn.execute(
        "INSERT INTO assessments.expert_certifications"
        " (person_id, role, valid_from, valid_until) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (person_id, role) DO UPDATE SET valid_from = excluded.valid_from,"
        " valid_until = excluded.valid_until, revoked_on = NULL",
        event.person_id,
        event.role,
        event.valid_from,
        event.valid_until,
    )


@subscriptions.on(people.CertificationRenewed)
async def _renewed(conn: Connection, event: people.CertificationRenewed, _: Envelope) -> None:
    await conn.execute(
        "UPDATE assessments.expert_certifications SET valid_until = $3"
        " WHERE person_id = $1 AND role = $2",
        event.person_id,
        event.role,
        event.valid_until,
    )


@subscriptions.on(people.CertificationRevoked)
async def _revoked(conn: Connection, event: people.CertificationRevoked, _: Envelope) -> None:
    await conn.execute(
        "UPDATE assessments.expert_certifications SET revoked_on = $3"
        " WHERE person_id = $1 AND role = $2",
        event.person_id,
        event.role,
        event.revoked_on,
    )


async def organisation(rows: Rows, org_id: str) -> OrgFacts | None:
    """The organisation as far as this service knows it."""
    found = await rows.find(
        "known_organisations", ("org_id", "country", "validated_on"), org_id=org_id
    )
    return None if not found else OrgFacts(org_id, found[0]["country"], found[0]["validated_on"])


async def experts(rows: Rows, person_ids: list[str]) -> dict[str, ExpertFacts]:
    """The experts as far as this service knows them, with their certifications."""
    people = await rows.find(
        "known_experts", ("person_id", "country", "affiliations"), person_id=person_ids
    )
    certs = await rows.find(
        "expert_certifications",
        ("person_id", "role", "valid_from", "valid_until", "revoked_on"),
        person_id=person_ids,
    )
    by_person: dict[str, dict[str, Certification]] = {}
    for c in certs:
        by_person.setdefault(c["person_id"], {})[c["role"]] = Certification(
            c["valid_from"], c["valid_until"], c["revoked_on"]
        )
    return {
        r["person_id"]: ExpertFacts(
            r["person_id"],
            r["country"],
            frozenset(r["affiliations"]),
            by_person.get(r["person_id"], {}),
        )
        for r in people
    }
