"""Commands of training and certification and their handlers (no HTTP here).

A person's commands load the person, let the domain decide, stage the new events and keep
the query rows (``people``, ``certifications``) in step with the person's events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from clr_events import personal
from clr_events.application.uow import DomainEvents, Result, Streams, UnitOfWork, new_id
from clr_events.service.inputs import Code, Day, Happened, Id, Many, Name, Text
from training_certification.domain import model
from training_certification.domain.events import (
    EVENTS,
    CourseRegistered,
    PersonRegistered,
    TrainingEvent,
)
from training_certification.domain.policy import CertificationPolicy, ExpertRole

EVENT_TYPES: DomainEvents[TrainingEvent] = DomainEvents(*EVENTS)


def streams(uow: UnitOfWork) -> Streams[TrainingEvent]:
    """The service's streams in ``uow``."""
    return Streams(uow, EVENT_TYPES)


# ------------------------------------------------------------------ commands
class RegisterCourse(BaseModel):
    course_id: Id | None = None
    title: Name
    kind: Code
    starts_on: Day


class RegisterPerson(BaseModel):
    person_id: Id | None = None
    name: Name
    country: str = Field(pattern=r"^[A-Z]{2}$")
    affiliation_org_ids: Many[Id] = []


class Affiliations(BaseModel):
    affiliation_org_ids: Many[Id]
    changed_on: Happened


class CourseStep(BaseModel):
    course_id: Id
    on: Happened


class Certify(BaseModel):
    role: ExpertRole
    on: Happened


class Revoke(BaseModel):
    role: ExpertRole
    on: Happened
    reason: Text


class ChangeAffiliations(BaseModel):
    person_id: Id
    change: Affiliations


class Enrol(BaseModel):
    person_id: Id
    step: CourseStep


class Complete(BaseModel):
    person_id: Id
    step: CourseStep


class CertifyPerson(BaseModel):
    person_id: Id
    certification: Certify


class RenewCertification(BaseModel):
    person_id: Id
    renewal: Certify


class RevokeCertification(BaseModel):
    person_id: Id
    revocation: Revoke


class ErasePerson(BaseModel):
    person_id: Id


# ------------------------------------------------------------------ helpers
def data_subject(person_id: str) -> str:
    """The data subject a person's key belongs to."""
    return f"person:{person_id}"


async def _course(s: Streams[TrainingEvent], course_id: str) -> CourseRegistered:
    events = await s.load_existing(model.course_stream(course_id), "course")
    first = events[0]
    assert isinstance(first, CourseRegistered)
    return first


Decide = Callable[[model.Person, Streams[TrainingEvent]], Awaitable[list[TrainingEvent]]]


async def _on_person(uow: UnitOfWork, person_id: str, decide: Decide) -> Result:
    """Load a person, let the domain decide, stage, and keep the query rows in step."""
    s = streams(uow)
    person = model.Person.replay(await s.load_existing(model.person_stream(person_id), "person"))
    new = await decide(person, s)
    version = s.append(person.stream, person.version, new)
    for event in new:
        person.apply(event)
    await _index(uow, person)
    body: dict[str, object] = {"person_id": person_id, "events": [type(e).__name__ for e in new]}
    if version is not None:
        body["stream_version"] = version
    return Result(201 if new else 200, body)


async def _index(uow: UnitOfWork, person: model.Person) -> None:
    """The query rows: a person and their certifications, as of the person's events."""
    await uow.rows.upsert(
        "people",
        {"person_id": person.person_id},
        {
            "name": None if person.erased_on else person.registered.name,
            "country": person.registered.country,
            "affiliations": list(person.affiliations),
        },
    )
    for role, cert in person.certifications.items():
        await uow.rows.upsert(
            "certifications",
            {"person_id": person.person_id, "role": role},
            {
                "valid_from": cert.valid_from,
                "valid_until": cert.valid_until,
                "revoked_on": cert.revoked_on,
            },
        )


# ------------------------------------------------------------------ handlers
async def register_course(cmd: RegisterCourse, uow: UnitOfWork) -> Result:
    """Offer a course (its kind decides the certificate it leads to)."""
    course_id = cmd.course_id or new_id()
    events = model.register_course(
        course_id=course_id, title=cmd.title, kind=cmd.kind, starts_on=cmd.starts_on
    )
    streams(uow).append(model.course_stream(course_id), 0, events)
    return Result(201, {"course_id": course_id})


async def register_person(cmd: RegisterPerson, uow: UnitOfWork) -> Result:
    """Register an expert or trainer with the organisations they work for."""
    person_id = cmd.person_id or new_id()
    events = model.register_person(
        person_id=person_id,
        name=cmd.name,
        country=cmd.country,
        affiliation_org_ids=cmd.affiliation_org_ids,
    )
    subject = data_subject(person_id)
    key = await personal.key_for(uow.rows, subject)
    events = [
        e.model_copy(update={"name": personal.seal(key, subject, e.name)})
        if isinstance(e, PersonRegistered)
        else e
        for e in events
    ]
    streams(uow).append(model.person_stream(person_id), 0, events)
    await _index(uow, model.Person.replay(events))
    return Result(201, {"person_id": person_id})


async def change_affiliations(cmd: ChangeAffiliations, uow: UnitOfWork) -> Result:
    """Replace the organisations a person works for (R9 reads them)."""

    async def decide(person: model.Person, _s: Streams[TrainingEvent]) -> list[TrainingEvent]:
        return model.change_affiliations(
            person, cmd.change.affiliation_org_ids, cmd.change.changed_on
        )

    return await _on_person(uow, cmd.person_id, decide)


async def enrol(cmd: Enrol, uow: UnitOfWork) -> Result:
    """Enrol a person in a course."""

    async def decide(person: model.Person, s: Streams[TrainingEvent]) -> list[TrainingEvent]:
        return model.enrol(person, await _course(s, cmd.step.course_id), cmd.step.on)

    return await _on_person(uow, cmd.person_id, decide)


async def complete(cmd: Complete, uow: UnitOfWork) -> Result:
    """Record a completion: the course's certificate is issued."""

    async def decide(person: model.Person, s: Streams[TrainingEvent]) -> list[TrainingEvent]:
        return model.complete(person, await _course(s, cmd.step.course_id), cmd.step.on)

    return await _on_person(uow, cmd.person_id, decide)


async def certify(cmd: CertifyPerson, uow: UnitOfWork, *, policy: CertificationPolicy) -> Result:
    """Certify a person for an expert role (validity and prerequisites: the policy)."""
    c = cmd.certification

    async def decide(person: model.Person, _s: Streams[TrainingEvent]) -> list[TrainingEvent]:
        return model.certify(person, c.role, on=c.on, by=uow.cause.actor, policy=policy)

    return await _on_person(uow, cmd.person_id, decide)


async def renew(cmd: RenewCertification, uow: UnitOfWork, *, policy: CertificationPolicy) -> Result:
    """Extend a certification in force."""
    r = cmd.renewal

    async def decide(person: model.Person, _s: Streams[TrainingEvent]) -> list[TrainingEvent]:
        return model.renew(person, r.role, on=r.on, policy=policy)

    return await _on_person(uow, cmd.person_id, decide)


async def revoke(cmd: RevokeCertification, uow: UnitOfWork) -> Result:
    """Revoke a certification from a day on."""
    r = cmd.revocation

    async def decide(person: model.Person, _s: Streams[TrainingEvent]) -> list[TrainingEvent]:
        return model.revoke(person, r.role, on=r.on, reason=r.reason)

    return await _on_person(uow, cmd.person_id, decide)


async def erase_person(cmd: ErasePerson, uow: UnitOfWork) -> Result:
    """Erase a person's personal data: their key goes, and with it every copy of what was
    sealed under it; the erasure itself is an event (once: a repeat records nothing)."""

    async def decide(person: model.Person, _s: Streams[TrainingEvent]) -> list[TrainingEvent]:
        now = datetime.now(UTC)  # one reading: the key's erasure and the event's day agree
        await personal.erase(uow.rows, data_subject(person.person_id), now)
        return model.erase(person, now.date())

    return await _on_person(uow, cmd.person_id, decide)
