"""Commands of the assessments service and their handlers (no HTTP here).

Recording gathers the facts (the organisation and experts as the reference consumer keeps
them, earlier assessments from the ``assessments`` index), lets the domain decide, stages
the new stream and indexes it; approval appends to the assessment's stream.

The reference facts come from the other services' public events (never their databases):
the handlers of ``CONSUMED`` keep them in this service's tables, and ``organisation`` and
``experts`` read them back as the domain's facts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assessments.domain import model
from assessments.domain.events import EVENTS, AssessmentEvent, Conducted, IndicatorResult
from assessments.domain.model import Certification, ExpertFacts, OrgFacts
from assessments.domain.policy import AssessmentRules, Kind
from clr_events.application.uow import (
    DomainEvents,
    EventHandler,
    Result,
    Rows,
    Streams,
    UnitOfWork,
    handles,
    new_id,
)
from clr_events.contracts import collaboration as orgs
from clr_events.contracts import training_certification as people
from clr_events.envelope import Envelope
from clr_events.registry import Contract
from clr_events.service.inputs import Code, Count, Happened, Id, Many, Measure, Name, Percent

EVENT_TYPES: DomainEvents[AssessmentEvent] = DomainEvents(*EVENTS)


def streams(uow: UnitOfWork) -> Streams[AssessmentEvent]:
    """The service's streams in ``uow``."""
    return Streams(uow, EVENT_TYPES)


# ------------------------------------------------------------------ commands
class Indicator(BaseModel):
    """One Gold indicator against its threshold, as a client sends it (bounded)."""

    model_config = ConfigDict(extra="forbid")

    code: Code
    score: Measure
    threshold: Measure

    def stored(self) -> IndicatorResult:
        """The indicator as the domain keeps it."""
        return IndicatorResult(**self.model_dump())


class Bronze(BaseModel):
    assessment_id: Id | None = None
    org_id: Id
    expert_id: Id
    conducted_on: Happened
    mode: Literal["on_site", "video"]
    ratings: Many[Code] = Field(description="one of red, yellow, green per indicator (R2)")
    criteria_version: Code | None = Field(None, description="default: the set in force (R12)")


class Silver(BaseModel):
    assessment_id: Id | None = None
    org_id: Id
    auditor_id: Id
    conducted_on: Happened
    mode: Literal["on_site", "video"] = "on_site"
    first_benchmarking_id: Id
    second_benchmarking_id: Id
    improvement_areas: Many[Name]
    areas_validated: Many[bool]
    baseline_met: bool
    criteria_version: Code | None = None


class Gold(BaseModel):
    assessment_id: Id | None = None
    org_id: Id
    expert_ids: Many[Id]
    conducted_on: Happened
    indicators: Many[Indicator]
    score_pct: Percent
    on_site_days: Count
    evidence_documents: Count
    criteria_version: Code | None = None


class Approval(BaseModel):
    approved_on: Happened
    approver: Name = Field(
        "EUCLES board",
        description="the approving body (ESCA, EUCLES board); the person who approved is"
        " recorded from the bearer token's subject, never from the body",
    )


class ApproveAssessment(BaseModel):
    assessment_id: Id
    approval: Approval


# ------------------------------------------------------------------ helpers
_EARLIER = ("assessment_id", "org_id", "kind", "conducted_on", "approved_on")


async def _earlier(uow: UnitOfWork, **where: Any) -> list[model.EarlierAssessment]:
    """Assessments already recorded here, selected by column values."""
    rows = await uow.rows.find("assessments", _EARLIER, **where)
    return [
        model.EarlierAssessment(
            r["assessment_id"], r["org_id"], Kind(r["kind"]), r["conducted_on"], r["approved_on"]
        )
        for r in rows
    ]


async def _one_earlier(uow: UnitOfWork, assessment_id: str) -> model.EarlierAssessment | None:
    found = await _earlier(uow, assessment_id=assessment_id)
    return found[0] if found else None


async def _subject(uow: UnitOfWork, org_id: str, expert_ids: list[str]) -> model.Subject:
    return model.Subject(
        org_id,
        await known_organisation(uow.rows, org_id),
        tuple(expert_ids),
        await known_experts(uow.rows, expert_ids),
    )


async def _recorded(uow: UnitOfWork, events: list[AssessmentEvent]) -> Result:
    """Stage a new assessment's stream and index it."""
    recorded = events[0]
    assert isinstance(recorded, Conducted)
    streams(uow).append(model.assessment_stream(recorded.assessment_id), 0, events)
    await uow.rows.upsert(
        "assessments",
        {"assessment_id": recorded.assessment_id},
        {
            "org_id": recorded.org_id,
            "kind": recorded.kind,
            "conducted_on": recorded.conducted_on,
            "expert_ids": list(recorded.expert_ids),
            "criteria_version": recorded.criteria_version,
        },
    )
    return Result(
        201,
        {"assessment_id": recorded.assessment_id, "criteria_version": recorded.criteria_version},
    )


# ------------------------------------------------------------------ handlers
async def record_bronze(cmd: Bronze, uow: UnitOfWork, *, rules: AssessmentRules) -> Result:
    """Record a Bronze benchmarking interview (R1, R2, R9, R12)."""
    events = model.record_bronze(
        assessment_id=cmd.assessment_id or new_id(),
        subject=await _subject(uow, cmd.org_id, [cmd.expert_id]),
        conducted_on=cmd.conducted_on,
        mode=cmd.mode,
        ratings=cmd.ratings,
        criteria_version=cmd.criteria_version,
        rules=rules,
    )
    return await _recorded(uow, events)


async def record_silver(cmd: Silver, uow: UnitOfWork, *, rules: AssessmentRules) -> Result:
    """Record a Silver audit (R1, R6, R9, R12)."""
    events = model.record_silver(
        assessment_id=cmd.assessment_id or new_id(),
        subject=await _subject(uow, cmd.org_id, [cmd.auditor_id]),
        conducted_on=cmd.conducted_on,
        mode=cmd.mode,
        first=await _one_earlier(uow, cmd.first_benchmarking_id),
        second=await _one_earlier(uow, cmd.second_benchmarking_id),
        improvement_areas=cmd.improvement_areas,
        areas_validated=cmd.areas_validated,
        baseline_met=cmd.baseline_met,
        criteria_version=cmd.criteria_version,
        rules=rules,
    )
    return await _recorded(uow, events)


async def record_gold(cmd: Gold, uow: UnitOfWork, *, rules: AssessmentRules) -> Result:
    """Record a Gold assessment (R1, R7, R9, R12)."""
    events = model.record_gold(
        assessment_id=cmd.assessment_id or new_id(),
        subject=await _subject(uow, cmd.org_id, cmd.expert_ids),
        conducted_on=cmd.conducted_on,
        indicators=[indicator.stored() for indicator in cmd.indicators],
        score_pct=cmd.score_pct,
        on_site_days=cmd.on_site_days,
        evidence_documents=cmd.evidence_documents,
        earlier_golds=await _earlier(uow, org_id=cmd.org_id, kind=Kind.GOLD.value),
        criteria_version=cmd.criteria_version,
        rules=rules,
    )
    return await _recorded(uow, events)


async def approve_assessment(cmd: ApproveAssessment, uow: UnitOfWork) -> Result:
    """The approving body approves an assessment, once (a second approval is a 409)."""
    s = streams(uow)
    events = await s.load_existing(model.assessment_stream(cmd.assessment_id), "assessment")
    assessment = model.Assessment.replay(events)
    org = await known_organisation(uow.rows, assessment.conducted.org_id)
    approval = cmd.approval
    new = model.approve(
        assessment,
        approved_on=approval.approved_on,
        approver=approval.approver,
        org=org,
        approved_by=uow.cause.actor,
    )
    s.append(assessment.stream, assessment.version, new)
    await uow.rows.update(
        "assessments", {"assessment_id": cmd.assessment_id}, {"approved_on": approval.approved_on}
    )
    return Result(
        201,
        {"assessment_id": cmd.assessment_id, "approved_on": approval.approved_on.isoformat()},
    )


# ------------------------------------------------------ the reference facts
async def known_organisation(rows: Rows, org_id: str) -> OrgFacts | None:
    """The organisation as far as this service knows it."""
    found = await rows.find(
        "known_organisations", ("org_id", "country", "validated_on"), org_id=org_id
    )
    return None if not found else OrgFacts(org_id, found[0]["country"], found[0]["validated_on"])


async def known_experts(rows: Rows, person_ids: list[str]) -> dict[str, ExpertFacts]:
    """The experts as far as this service knows them, with their certifications."""
    known = await rows.find(
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
        for r in known
    }


# ------------------------------------- events consumed: the reference facts
async def organisation_registered(
    event: orgs.OrganisationRegistered, uow: UnitOfWork, _envelope: Envelope
) -> None:
    """An organisation and its country (R9 compares experts' countries with it)."""
    await uow.rows.upsert(
        "known_organisations", {"org_id": event.org_id}, {"country": event.country}
    )


async def profile_validated(
    event: orgs.ProfileValidated, uow: UnitOfWork, _envelope: Envelope
) -> None:
    """The profile's validation day (R1)."""
    await uow.rows.update(
        "known_organisations", {"org_id": event.org_id}, {"validated_on": event.validated_on}
    )


async def person_registered(
    event: people.PersonRegistered, uow: UnitOfWork, _envelope: Envelope
) -> None:
    """A person, their country and affiliations (R9)."""
    await uow.rows.insert(
        "known_experts",
        {"person_id": event.person_id},
        {"country": event.country, "affiliations": event.affiliation_org_ids},
    )


async def affiliations_changed(
    event: people.AffiliationsChanged, uow: UnitOfWork, _envelope: Envelope
) -> None:
    """The organisations a person now works for (R9)."""
    await uow.rows.update(
        "known_experts",
        {"person_id": event.person_id},
        {"affiliations": event.affiliation_org_ids},
    )


async def expert_certified(
    event: people.ExpertCertified, uow: UnitOfWork, envelope: Envelope
) -> None:
    """A role certification (a new one replaces a revoked or lapsed one); its id is the
    event's, so a decision can name the certification it relied on."""
    await uow.rows.upsert(
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
    event: people.CertificationRenewed, uow: UnitOfWork, envelope: Envelope
) -> None:
    """A certification extended."""
    await uow.rows.update(
        "expert_certifications",
        {"person_id": event.person_id, "role": event.role},
        {"valid_until": event.valid_until, "as_of_position": envelope.globalposition},
    )


async def certification_revoked(
    event: people.CertificationRevoked, uow: UnitOfWork, envelope: Envelope
) -> None:
    """A certification revoked from a day on."""
    await uow.rows.update(
        "expert_certifications",
        {"person_id": event.person_id, "role": event.role},
        {"revoked_on": event.revoked_on, "as_of_position": envelope.globalposition},
    )


CONSUMED: dict[type[Contract], EventHandler] = dict(
    (
        handles(orgs.OrganisationRegistered, organisation_registered),
        handles(orgs.ProfileValidated, profile_validated),
        handles(people.PersonRegistered, person_registered),
        handles(people.AffiliationsChanged, affiliations_changed),
        handles(people.ExpertCertified, expert_certified),
        handles(people.CertificationRenewed, certification_renewed),
        handles(people.CertificationRevoked, certification_revoked),
    )
)
"""The events this service consumes (``collaboration.events``,
``training_certification.events``: what it knows of organisations and experts), and their
handlers. Each is an upsert keyed by the aggregate, so an event arriving twice changes
nothing; Kafka keys keep one organisation's or person's events in order."""
