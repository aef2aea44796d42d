"""What this service knows of organisations and experts: fed by the other services'
public events (never their databases), read by the commands as the domain's facts
(through the unit of work's ``Rows``).

Handlers are upserts keyed by the aggregate, so an event arriving twice changes nothing;
Kafka keys keep one organisation's or person's events in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from assessments.domain.model import Certification, ExpertFacts, OrgFacts
from clr_events.application.postgres import PostgresRows
from clr_events.application.uow import Rows
from clr_events.consumers.dispatch import Subscriptions
from clr_events.contracts import collaboration as orgs
from clr_events.contracts import training_certification as people
from clr_events.envelope import Envelope
from clr_events.pg import Connection
from clr_events.registry import Contract

SCHEMA = "assessments"


# ------------------------------------------------------------ what is learned
async def organisation_registered(
    event: orgs.OrganisationRegistered, rows: Rows, _envelope: Envelope
) -> None:
    """An organisation and its country (R9 compares experts' countries with it)."""
    await rows.upsert("known_organisations", {"org_id": event.org_id}, {"country": event.country})


async def profile_validated(event: orgs.ProfileValidated, rows: Rows, _envelope: Envelope) -> None:
    """The profile's validation day (R1)."""
    await rows.update(
        "known_organisations", {"org_id": event.org_id}, {"validated_on": event.validated_on}
    )


async def person_registered(
    event: people.PersonRegistered, rows: Rows, _envelope: Envelope
) -> None:
    """A person, their country and affiliations (R9)."""
    await rows.insert(
        "known_experts",
        {"person_id": event.person_id},
        {"country": event.country, "affiliations": event.affiliation_org_ids},
    )


async def affiliations_changed(
    event: people.AffiliationsChanged, rows: Rows, _envelope: Envelope
) -> None:
    """The organisations a person now works for (R9)."""
    await rows.update(
        "known_experts",
        {"person_id": event.person_id},
        {"affiliations": event.affiliation_org_ids},
    )


async def expert_certified(event: people.ExpertCertified, rows: Rows, envelope: Envelope) -> None:
    """A role certification (a new one replaces a revoked or lapsed one); its id is the
    event's, so a decision can name the certification it relied on."""
    await rows.upsert(
        "expert_certifications",
        {"person_id": event.person_id, "role": event.role},
        {
            "valid_from": event.valid_from,
            "valid_until": event.valid_until,
            "revoked_on": None,
            "certification_id": envelope.id,
            "as_of_position": envelope.globalposition,
        },
    )


async def certification_renewed(
    event: people.CertificationRenewed, rows: Rows, envelope: Envelope
) -> None:
    """A certification extended."""
    await rows.update(
        "expert_certifications",
        {"person_id": event.person_id, "role": event.role},
        {"valid_until": event.valid_until, "as_of_position": envelope.globalposition},
    )


async def certification_revoked(
    event: people.CertificationRevoked, rows: Rows, envelope: Envelope
) -> None:
    """A certification revoked from a day on."""
    await rows.update(
        "expert_certifications",
        {"person_id": event.person_id, "role": event.role},
        {"revoked_on": event.revoked_on, "as_of_position": envelope.globalposition},
    )


Learn = Callable[[Any, Rows, Envelope], Awaitable[None]]

LEARN: dict[type[Contract], Learn] = {
    orgs.OrganisationRegistered: organisation_registered,
    orgs.ProfileValidated: profile_validated,
    people.PersonRegistered: person_registered,
    people.AffiliationsChanged: affiliations_changed,
    people.ExpertCertified: expert_certified,
    people.CertificationRenewed: certification_renewed,
    people.CertificationRevoked: certification_revoked,
}
"""Each public event this service learns from, and its handler."""


def _subscriptions() -> Subscriptions:
    handlers = Subscriptions()
    for contract, learn in LEARN.items():

        async def handle(
            conn: Connection, event: Any, envelope: Envelope, learn: Learn = learn
        ) -> None:
            await learn(event, PostgresRows(conn, SCHEMA), envelope)

        handlers.on(contract)(handle)
    return handlers


subscriptions = _subscriptions()
"""The consumer of ``collaboration.events`` and ``training_certification.events``: each
handler in the consumer's transaction (with the message's inbox entry and checkpoint)."""


# ------------------------------------------------------------------ reads
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
        (
            "person_id",
            "role",
            "valid_from",
            "valid_until",
            "revoked_on",
            "certification_id",
            "as_of_position",
        ),
        person_id=person_ids,
    )
    by_person: dict[str, dict[str, Certification]] = {}
    for c in certs:
        by_person.setdefault(c["person_id"], {})[c["role"]] = Certification(
            c["valid_from"],
            c["valid_until"],
            c["revoked_on"],
            c["certification_id"],
            c["as_of_position"],
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
