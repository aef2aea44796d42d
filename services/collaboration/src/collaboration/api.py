"""HTTP API of the collaboration service: commands need a bearer token, reads are public.

A write route parses its command and runs its handler (``collaboration.application``); a
read route asks its query (``collaboration.queries``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from clr_events.service.auth import Role
from clr_events.service.commands import CommandContext, command
from clr_events.service.inputs import Id, Offset
from clr_events.settings import RenewalWindows
from collaboration import application as app
from collaboration import queries
from collaboration.application import (
    AddPartner,
    Figures,
    FormPartnership,
    JoinPartnership,
    RecordMatchmaking,
    RegisterOrganisation,
    SignAgreement,
    UpdateFigures,
    Validate,
    ValidateProfile,
)
from collaboration.domain.policy import ListingCriteria, PartnershipRules

Admin = Annotated[CommandContext, Depends(command(Role.COLLABORATION_ADMIN))]

router = APIRouter()


def criteria_of(request: Request) -> ListingCriteria:
    """The listing criteria in force (R13)."""
    chosen: ListingCriteria = request.app.state.listing_criteria
    return chosen


def rules_of(request: Request) -> PartnershipRules:
    """The partnership rules in force (R14)."""
    chosen: PartnershipRules = request.app.state.partnership_rules
    return chosen


# ------------------------------------------------------------------ organisations
@router.post("/organisations", status_code=201, tags=["organisations"])
async def register_organisation(body: RegisterOrganisation, ctx: Admin) -> JSONResponse:
    """Register a cluster organisation's profile (not yet validated)."""
    return await ctx.run(lambda uow: app.register_organisation(body, uow))


@router.put("/organisations/{org_id}/figures", tags=["organisations"])
async def update_figures(org_id: Id, body: Figures, ctx: Admin) -> JSONResponse:
    """Replace the profile figures R13 looks at."""
    cmd = UpdateFigures(org_id=org_id, figures=body)
    return await ctx.run(lambda uow: app.update_figures(cmd, uow))


@router.post("/organisations/{org_id}/validation", status_code=201, tags=["organisations"])
async def validate_profile(
    org_id: Id, body: Validate, ctx: Admin, request: Request
) -> JSONResponse:
    """R13: validate the profile; a refusal names every criterion it fails."""
    cmd = ValidateProfile(org_id=org_id, validation=body)
    chosen = criteria_of(request)
    return await ctx.run(lambda uow: app.validate_profile(cmd, uow, criteria=chosen))


@router.get("/organisations/{org_id}", tags=["organisations"])
async def get_organisation(org_id: Id, request: Request) -> dict[str, Any]:
    """A profile with its validation and the labels it holds (public)."""
    runtime = request.app.state.runtime
    windows: RenewalWindows = request.app.state.renewal_windows
    return await queries.organisation(
        runtime.store, runtime.pool, org_id, today=date.today(), windows=windows
    )


@router.get("/organisations", tags=["organisations"])
async def list_organisations(
    request: Request,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    validated: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Registered organisations, filtered by country and validation (public)."""
    pool = request.app.state.runtime.pool
    items = await queries.organisations(pool, country, validated, limit, offset)
    return {"items": items, "limit": limit, "offset": offset}


# ------------------------------------------------------------------- partnerships
@router.post("/partnerships", status_code=201, tags=["partnerships"])
async def form_partnership(body: FormPartnership, ctx: Admin, request: Request) -> JSONResponse:
    """R14: label a strategic cluster partnership with its first partners."""
    chosen = rules_of(request)
    return await ctx.run(lambda uow: app.form_partnership(body, uow, rules=chosen))


@router.post("/partnerships/{partnership_id}/partners", status_code=201, tags=["partnerships"])
async def add_partner(
    partnership_id: Id, body: AddPartner, ctx: Admin, request: Request
) -> JSONResponse:
    """R14: a new partner joins."""
    cmd = JoinPartnership(partnership_id=partnership_id, partner=body)
    chosen = rules_of(request)
    return await ctx.run(lambda uow: app.add_partner(cmd, uow, rules=chosen))


@router.get("/partnerships/{partnership_id}", tags=["partnerships"])
async def get_partnership(partnership_id: Id, request: Request) -> dict[str, Any]:
    """A partnership and its partners (public)."""
    return await queries.partnership(request.app.state.runtime.store, partnership_id)


# -------------------------------------------------------------------- agreements
@router.post("/agreements", status_code=201, tags=["agreements"])
async def sign_agreement(body: SignAgreement, ctx: Admin, request: Request) -> JSONResponse:
    """A cooperation agreement with a third country (or an extension of one)."""
    chosen = rules_of(request)
    return await ctx.run(lambda uow: app.sign_agreement(body, uow, rules=chosen))


@router.get("/agreements/{agreement_id}", tags=["agreements"])
async def get_agreement(agreement_id: Id, request: Request) -> dict[str, Any]:
    """One agreement (public)."""
    return await queries.agreement(request.app.state.runtime.store, agreement_id)


# ------------------------------------------------------------------- matchmaking
@router.post("/matchmaking-events", status_code=201, tags=["matchmaking"])
async def record_matchmaking(body: RecordMatchmaking, ctx: Admin) -> JSONResponse:
    """A matchmaking mission with its participants and outcomes."""
    return await ctx.run(lambda uow: app.record_matchmaking(body, uow))


@router.get("/matchmaking-events/{event_id}", tags=["matchmaking"])
async def get_matchmaking(event_id: Id, request: Request) -> dict[str, Any]:
    """One matchmaking event (public)."""
    return await queries.matchmaking_event(request.app.state.runtime.store, event_id)
