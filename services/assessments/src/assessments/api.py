"""HTTP API of the assessments service.

Assessors record assessments, the labelling board approves them; the public sees what was
assessed, when and by whom, never a rating or score (R11). Results are for the board
and the auditor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from assessments import reference
from assessments.domain import model
from assessments.domain.events import (
    EVENTS,
    AssessmentApproved,
    AssessmentEvent,
    Conducted,
    IndicatorResult,
)
from assessments.domain.policy import RULES_2026_1, Kind
from clr_events.pg import Connection
from clr_events.rules import NotFoundError
from clr_events.service.auth import Actor, Role, require
from clr_events.service.commands import CommandContext, DomainEvents, Id, Streams, command, new_id
from clr_events.service.inputs import Code, Count, Happened, Many, Measure, Name, Percent

Assessor = Annotated[CommandContext, Depends(command(Role.ASSESSOR))]
Board = Annotated[CommandContext, Depends(command(Role.LABELLING_BOARD))]
Reader = Annotated[Actor, Depends(require(Role.LABELLING_BOARD, Role.AUDITOR))]
EVENT_TYPES: DomainEvents[AssessmentEvent] = DomainEvents(*EVENTS)
RULES = RULES_2026_1

router = APIRouter()


def streams(request: Request) -> Streams[AssessmentEvent]:
    return Streams(request.app.state.runtime.store, EVENT_TYPES)


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
    approver: Name = Field("EUCLES board", description="the approving body (ESCA, EUCLES board)")


async def _earlier(conn: Connection, where: str, *args: Any) -> list[model.EarlierAssessment]:
    """Assessments already recorded here, selected by ``where``."""
    rows = await conn.fetch(
        "SELECT assessment_id, org_id, kind, conducted_on, approved_on"
        f" FROM assessments.assessments WHERE {where}",
        *args,
    )
    return [
        model.EarlierAssessment(
            r["assessment_id"], r["org_id"], Kind(r["kind"]), r["conducted_on"], r["approved_on"]
        )
        for r in rows
    ]


async def _one_earlier(conn: Connection, assessment_id: str) -> model.EarlierAssessment | None:
    found = await _earlier(conn, "assessment_id = $1", assessment_id)
    return found[0] if found else None


async def _record(
    ctx: CommandContext,
    request: Request,
    org_id: str,
    expert_ids: list[str],
    assessment_id: str | None,
    decide: Callable[[Connection, model.Subject, str], Awaitable[list[AssessmentEvent]]],
) -> JSONResponse:
    """Gather the facts, let the domain decide, append and index the new assessment."""
    s = streams(request)
    chosen = assessment_id or new_id()

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        subject = model.Subject(
            org_id,
            await reference.organisation(conn, org_id),
            tuple(expert_ids),
            await reference.experts(conn, expert_ids),
        )
        events = await decide(conn, subject, chosen)
        await s.append(conn, f"assessment:{chosen}", 0, events, ctx.cause)
        recorded = events[0]
        assert isinstance(recorded, Conducted)
        await conn.execute(
            "INSERT INTO assessments.assessments"
            " (assessment_id, org_id, kind, conducted_on, expert_ids, criteria_version)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            chosen,
            org_id,
            recorded.kind,
            recorded.conducted_on,
            list(recorded.expert_ids),
            recorded.criteria_version,
        )
        return 201, {"assessment_id": chosen, "criteria_version": recorded.criteria_version}

    return await ctx.run(work)


@router.post("/assessments/bronze", status_code=201, tags=["assessments"])
async def record_bronze(body: Bronze, ctx: Assessor, request: Request) -> JSONResponse:
    """Record a Bronze benchmarking interview (R1, R2, R9, R12)."""

    async def decide(
        _conn: Connection, subject: model.Subject, chosen_id: str
    ) -> list[AssessmentEvent]:
        return model.record_bronze(
            assessment_id=chosen_id,
            subject=subject,
            conducted_on=body.conducted_on,
            mode=body.mode,
            ratings=body.ratings,
            criteria_version=body.criteria_version,
            rules=RULES,
        )

    return await _record(ctx, request, body.org_id, [body.expert_id], body.assessment_id, decide)


@router.post("/assessments/silver", status_code=201, tags=["assessments"])
async def record_silver(body: Silver, ctx: Assessor, request: Request) -> JSONResponse:
    """Record a Silver audit (R1, R6, R9, R12)."""

    async def decide(
        conn: Connection, subject: model.Subject, chosen_id: str
    ) -> list[AssessmentEvent]:
        return model.record_silver(
            assessment_id=chosen_id,
            subject=subject,
            conducted_on=body.conducted_on,
            mode=body.mode,
            first=await _one_earlier(conn, body.first_benchmarking_id),
            second=await _one_earlier(conn, body.second_benchmarking_id),
            improvement_areas=body.improvement_areas,
            areas_validated=body.areas_validated,
            baseline_met=body.baseline_met,
            criteria_version=body.criteria_version,
            rules=RULES,
        )

    return await _record(ctx, request, body.org_id, [body.auditor_id], body.assessment_id, decide)


@router.post("/assessments/gold", status_code=201, tags=["assessments"])
async def record_gold(body: Gold, ctx: Assessor, request: Request) -> JSONResponse:
    """Record a Gold assessment (R1, R7, R9, R12)."""

    async def decide(
        conn: Connection, subject: model.Subject, chosen_id: str
    ) -> list[AssessmentEvent]:
        return model.record_gold(
            assessment_id=chosen_id,
            subject=subject,
            conducted_on=body.conducted_on,
            indicators=[indicator.stored() for indicator in body.indicators],
            score_pct=body.score_pct,
            on_site_days=body.on_site_days,
            evidence_documents=body.evidence_documents,
            earlier_golds=await _earlier(
                conn, "org_id = $1 AND kind = $2", body.org_id, Kind.GOLD.value
            ),
            criteria_version=body.criteria_version,
            rules=RULES,
        )

    return await _record(ctx, request, body.org_id, body.expert_ids, body.assessment_id, decide)


@router.post("/assessments/{assessment_id}/approval", status_code=201, tags=["assessments"])
async def approve(assessment_id: Id, body: Approval, ctx: Board, request: Request) -> JSONResponse:
    """The approving body approves an assessment, once (a second approval is a 409)."""
    s = streams(request)

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        stream = f"assessment:{assessment_id}"
        events = await s.load_existing(conn, stream, "assessment")
        org = await reference.organisation(conn, events[0].org_id)
        new = model.approve(events, approved_on=body.approved_on, approver=body.approver, org=org)
        await s.append(conn, stream, len(events), new, ctx.cause)
        await conn.execute(
            "UPDATE assessments.assessments SET approved_on = $2 WHERE assessment_id = $1",
            assessment_id,
            body.approved_on,
        )
        return 201, {"assessment_id": assessment_id, "approved_on": body.approved_on.isoformat()}

    return await ctx.run(work)


# ---------------------------------------------------------------------- reads
async def _load(request: Request, assessment_id: str) -> list[AssessmentEvent]:
    async with request.app.state.runtime.pool.acquire() as conn:
        return await streams(request).load_existing(
            conn, f"assessment:{assessment_id}", "assessment"
        )


def _public(events: list[AssessmentEvent]) -> dict[str, Any]:
    recorded = events[0]
    assert isinstance(recorded, Conducted)
    approval = next((e for e in events if isinstance(e, AssessmentApproved)), None)
    return {
        **recorded.model_dump(
            include={
                "assessment_id",
                "org_id",
                "kind",
                "level",
                "conducted_on",
                "mode",
                "expert_ids",
                "criteria_version",
            }
        ),
        "approved_on": approval.approved_on if approval else None,
        "approver": approval.approver if approval else None,
    }


@router.get("/assessments/{assessment_id}", tags=["assessments"])
async def get_assessment(assessment_id: Id, request: Request) -> dict[str, Any]:
    """What was assessed, when, by whom, and its approval: no ratings or scores (R11)."""
    return _public(await _load(request, assessment_id))


@router.get("/assessments/{assessment_id}/results", tags=["assessments"])
async def get_results(assessment_id: Id, request: Request, _reader: Reader) -> dict[str, Any]:
    """The full record with ratings and scores: labelling board and auditor only (R11)."""
    events = await _load(request, assessment_id)
    return {"events": [{"type": type(e).__name__, **e.model_dump(mode="json")} for e in events]}


@router.get("/assessments", tags=["assessments"])
async def list_assessments(request: Request, org_id: Id) -> dict[str, Any]:
    """An organisation's assessments (public fields only)."""
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT assessment_id, org_id, kind, conducted_on, approved_on, expert_ids,"
        " criteria_version FROM assessments.assessments WHERE org_id = $1"
        " ORDER BY conducted_on, assessment_id",
        org_id,
    )
    return {"items": [dict(row) for row in rows]}


@router.get("/reference/organisations/{org_id}", tags=["reference"])
async def known_organisation(org_id: Id, request: Request) -> dict[str, Any]:
    """What this service has learned of an organisation from the collaboration events."""
    async with request.app.state.runtime.pool.acquire() as conn:
        org = await reference.organisation(conn, org_id)
    if org is None:
        raise NotFoundError(f"organisation {org_id!r} is not known here (yet)")
    return {"org_id": org.org_id, "country": org.country, "validated_on": org.validated_on}


@router.get("/reference/experts/{person_id}", tags=["reference"])
async def known_expert(person_id: Id, request: Request) -> dict[str, Any]:
    """What this service has learned of an expert from the training events."""
    async with request.app.state.runtime.pool.acquire() as conn:
        found = await reference.experts(conn, [person_id])
    if person_id not in found:
        raise NotFoundError(f"expert {person_id!r} is not known here (yet)")
    expert = found[person_id]
    return {
        "person_id": person_id,
        "country": expert.country,
        "affiliations": sorted(expert.affiliations),
        "certifications": {
            role: {
                "valid_from": c.valid_from,
                "valid_until": c.valid_until,
                "revoked_on": c.revoked_on,
            }
            for role, c in expert.certifications.items()
        },
    }


@router.get("/criteria", tags=["policy"])
async def criteria() -> dict[str, Any]:
    """The assessment rules in force: indicator-set versions (R12) and procedure figures."""
    return {
        "version": RULES.version,
        "eligibility_required_from": RULES.eligibility_required_from,
        "criteria": [
            {
                "name": c.name,
                "kind": c.kind.value,
                "in_force_from": c.in_force_from,
                "in_force_until": c.in_force_until,
                "indicator_count": c.indicator_count,
            }
            for c in RULES.criteria
        ],
        "silver_gap_months": RULES.silver_gap_months,
        "gold_days_first": RULES.gold_days_first,
        "gold_days_renewal": RULES.gold_days_renewal,
    }
