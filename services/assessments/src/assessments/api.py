"""HTTP API of the assessments service.

Assessors record assessments, the labelling board approves them; the public sees what was
assessed, when and by whom, never a rating or score (R11). Results are for the board
and the auditor. A write route parses its command and runs its handler
(``assessments.application``); a read route asks its query (``assessments.queries``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from assessments import application as app
from assessments import queries
from assessments.application import Approval, ApproveAssessment, Bronze, Gold, Silver
from assessments.domain.policy import AssessmentRules
from clr_events.service import policies
from clr_events.service.auth import Actor, Role, require
from clr_events.service.commands import CommandContext, command
from clr_events.service.inputs import Id

Assessor = Annotated[CommandContext, Depends(command(Role.ASSESSOR))]
Board = Annotated[CommandContext, Depends(command(Role.LABELLING_BOARD))]
Reader = Annotated[Actor, Depends(require(Role.LABELLING_BOARD, Role.AUDITOR))]

router = APIRouter()


def rules_of(request: Request) -> AssessmentRules:
    """The assessment rules in force."""
    chosen: AssessmentRules = request.app.state.rules
    return chosen


@router.post("/assessments/bronze", status_code=201, tags=["assessments"])
async def record_bronze(body: Bronze, ctx: Assessor, request: Request) -> JSONResponse:
    """Record a Bronze benchmarking interview (R1, R2, R9, R12)."""
    rules = rules_of(request)
    return await ctx.run(lambda uow: app.record_bronze(body, uow, rules=rules))


@router.post("/assessments/silver", status_code=201, tags=["assessments"])
async def record_silver(body: Silver, ctx: Assessor, request: Request) -> JSONResponse:
    """Record a Silver audit (R1, R6, R9, R12)."""
    rules = rules_of(request)
    return await ctx.run(lambda uow: app.record_silver(body, uow, rules=rules))


@router.post("/assessments/gold", status_code=201, tags=["assessments"])
async def record_gold(body: Gold, ctx: Assessor, request: Request) -> JSONResponse:
    """Record a Gold assessment (R1, R7, R9, R12)."""
    rules = rules_of(request)
    return await ctx.run(lambda uow: app.record_gold(body, uow, rules=rules))


@router.post("/assessments/{assessment_id}/approval", status_code=201, tags=["assessments"])
async def approve(assessment_id: Id, body: Approval, ctx: Board) -> JSONResponse:
    """The approving body approves an assessment, once (a second approval is a 409)."""
    cmd = ApproveAssessment(assessment_id=assessment_id, approval=body)
    return await ctx.run(lambda uow: app.approve_assessment(cmd, uow))


# ---------------------------------------------------------------------- reads
@router.get("/assessments/{assessment_id}", tags=["assessments"])
async def get_assessment(assessment_id: Id, request: Request) -> dict[str, Any]:
    """What was assessed, when, by whom, and its approval: no ratings or scores (R11)."""
    return await queries.public_assessment(request.app.state.runtime.store, assessment_id)


@router.get("/assessments/{assessment_id}/results", tags=["assessments"])
async def get_results(assessment_id: Id, request: Request, _reader: Reader) -> dict[str, Any]:
    """The full record with ratings and scores: labelling board and auditor only (R11)."""
    events = await queries.assessment_events(request.app.state.runtime.store, assessment_id)
    return {"events": [{"type": type(e).__name__, **e.model_dump(mode="json")} for e in events]}


@router.get("/assessments", tags=["assessments"])
async def list_assessments(request: Request, org_id: Id) -> dict[str, Any]:
    """An organisation's assessments (public fields only)."""
    pool = request.app.state.runtime.pool
    return {"items": await queries.organisation_assessments(pool, org_id)}


@router.get("/reference/organisations/{org_id}", tags=["reference"])
async def known_organisation(org_id: Id, request: Request) -> dict[str, Any]:
    """What this service has learned of an organisation from the collaboration events."""
    return await queries.reference_organisation(request.app.state.runtime.units, org_id)


@router.get("/reference/experts/{person_id}", tags=["reference"])
async def known_expert(person_id: Id, request: Request) -> dict[str, Any]:
    """What this service has learned of an expert from the training events."""
    return await queries.reference_expert(request.app.state.runtime.units, person_id)


@router.get("/criteria", tags=["policy"], deprecated=True)
async def criteria(request: Request) -> dict[str, Any]:
    """The assessment rules in force, as ``GET /policy`` answers them (without
    ``versions``); kept for the clients that read them here."""
    return policies.document(rules_of(request))
