"""HTTP API of the collaboration service: commands need a bearer token, reads are public."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clr_events.pg import Connection
from clr_events.rules import NotFoundError
from clr_events.service.auth import Role
from clr_events.service.commands import CommandContext, DomainEvents, Id, Streams, command, new_id
from clr_events.service.inputs import (
    Code,
    Count,
    Day,
    Fte,
    Happened,
    Many,
    Months,
    Name,
    Offset,
    Url,
)
from clr_events.store.base import AppendResult
from collaboration.domain import model
from collaboration.domain.events import (
    EVENTS,
    CollaborationEvent,
    CooperationAgreementSigned,
    ProfileFigures,
)
from collaboration.domain.policy import ECCP_2019, PARTNERSHIPS_2020

Admin = Annotated[CommandContext, Depends(command(Role.COLLABORATION_ADMIN))]
EVENT_TYPES: DomainEvents[CollaborationEvent] = DomainEvents(*EVENTS)

router = APIRouter()


def streams(request: Request) -> Streams[CollaborationEvent]:
    return Streams(request.app.state.runtime.store, EVENT_TYPES)


# ------------------------------------------------------------------ request bodies
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]


class Figures(BaseModel):
    """The figures R13 looks at, as a client sends them (bounded; stored as ``ProfileFigures``)."""

    model_config = ConfigDict(extra="forbid")

    management_fte: Fte
    committed_members: Count
    member_types: Many[Code]
    english_website: bool
    cluster_programme: Name | None = None
    """A recognised regional or national cluster programme the organisation belongs to."""

    def stored(self) -> ProfileFigures:
        """The figures as the domain keeps them."""
        return ProfileFigures(**self.model_dump())


class RegisterOrganisation(BaseModel):
    org_id: Id | None = None
    name: Name
    country: Country
    region: Name | None = None
    website: Url | None = None
    sector: Name = Field(description="comparative portfolio")
    eccp_profile_id: Code | None = None
    figures: Figures


class Validate(BaseModel):
    validated_on: Happened
    waive: bool = Field(False, description="apply the cluster programme waiver (R13)")


class FormPartnership(BaseModel):
    partnership_id: Id | None = None
    name: Name
    strand: Code
    call_id: Code
    member_org_ids: Many[Id]
    start_on: Day
    duration_months: Months


class AddPartner(BaseModel):
    org_id: Id
    joined_on: Happened


class SignAgreement(BaseModel):
    agreement_id: Id | None = None
    parties: Many[Name]
    third_country: Country
    signed_on: Happened
    place: Name | None = None
    extends: Id | None = None


class RecordMatchmaking(BaseModel):
    event_id: Id | None = None
    theme: Name
    held_on: Happened
    countries: Many[Country]
    participant_org_ids: Many[Id]
    meetings_c2c: Count = 0
    meetings_b2b: Count = 0
    cooperation_cases: Count = 0
    agreements: Count = 0


# -------------------------------------------------------------------- helpers
async def _organisation(
    conn: Connection, s: Streams[CollaborationEvent], org_id: str
) -> tuple[int, model.Organisation]:
    events = await s.load_existing(conn, f"organisation:{org_id}", "organisation")
    return len(events), model.Organisation.replay(events)


async def _members(conn: Connection, org_ids: list[str]) -> tuple[list[model.Member], list[str]]:
    rows = await conn.fetch(
        "SELECT org_id, country FROM collaboration.organisations WHERE org_id = ANY($1)", org_ids
    )
    known = {row["org_id"]: row["country"] for row in rows}
    members = [model.Member(o, known[o]) for o in org_ids if o in known]
    return members, [o for o in org_ids if o not in known]


def _position(result: AppendResult | None) -> dict[str, Any]:
    return {} if result is None else {"stream_version": result.version}


# ------------------------------------------------------------------ organisations
@router.post("/organisations", status_code=201, tags=["organisations"])
async def register_organisation(
    body: RegisterOrganisation, ctx: Admin, request: Request
) -> JSONResponse:
    """Register a cluster organisation's profile (not yet validated)."""
    s = streams(request)
    org_id = body.org_id or new_id()

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        events = model.register_organisation(
            org_id=org_id,
            name=body.name,
            country=body.country,
            region=body.region,
            website=body.website,
            sector=body.sector,
            eccp_profile_id=body.eccp_profile_id,
            figures=body.figures.stored(),
        )
        result = await s.append(conn, f"organisation:{org_id}", 0, events, ctx.cause)
        await conn.execute(
            "INSERT INTO collaboration.organisations (org_id, name, country, sector)"
            " VALUES ($1, $2, $3, $4)",
            org_id,
            body.name.strip(),
            body.country,
            body.sector.strip(),
        )
        return 201, {"org_id": org_id, **_position(result)}

    return await ctx.run(work)


@router.put("/organisations/{org_id}/figures", tags=["organisations"])
async def update_figures(org_id: Id, body: Figures, ctx: Admin, request: Request) -> JSONResponse:
    """Replace the profile figures R13 looks at."""
    s = streams(request)

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        version, org = await _organisation(conn, s, org_id)
        result = await s.append(
            conn,
            f"organisation:{org_id}",
            version,
            model.update_figures(org, body.stored()),
            ctx.cause,
        )
        return 200, {"org_id": org_id, **_position(result)}

    return await ctx.run(work)


@router.post("/organisations/{org_id}/validation", status_code=201, tags=["organisations"])
async def validate_profile(
    org_id: Id, body: Validate, ctx: Admin, request: Request
) -> JSONResponse:
    """R13: validate the profile; a refusal names every criterion it fails."""
    s = streams(request)

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        version, org = await _organisation(conn, s, org_id)
        events = model.validate_profile(
            org, on=body.validated_on, criteria=ECCP_2019, waive=body.waive
        )
        result = await s.append(conn, f"organisation:{org_id}", version, events, ctx.cause)
        if not events:
            assert org.validated is not None
            return 200, {"org_id": org_id, "validated_on": org.validated.validated_on.isoformat()}
        await conn.execute(
            "UPDATE collaboration.organisations SET validated_on = $2 WHERE org_id = $1",
            org_id,
            body.validated_on,
        )
        return 201, {
            "org_id": org_id,
            "validated_on": body.validated_on.isoformat(),
            **_position(result),
        }

    return await ctx.run(work)


@router.get("/organisations/{org_id}", tags=["organisations"])
async def get_organisation(org_id: Id, request: Request) -> dict[str, Any]:
    """A profile with its validation and the labels it holds (public)."""
    s = streams(request)
    runtime = request.app.state.runtime
    async with runtime.pool.acquire() as conn:
        _, org = await _organisation(conn, s, org_id)
        labels = await conn.fetch(
            "SELECT level, valid_until, withdrawn_on, expired"
            " FROM collaboration.organisation_labels WHERE org_id = $1 ORDER BY level",
            org_id,
        )
    today = date.today()
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
                "status": label_status(row["valid_until"], row["withdrawn_on"], today),
            }
            for row in labels
        ],
    }


def label_status(valid_until: date, withdrawn_on: date | None, today: date) -> str:
    """What a profile shows of a label on a day."""
    if withdrawn_on is not None and withdrawn_on <= today:
        return "withdrawn"
    return "valid" if today <= valid_until else "expired"


@router.get("/organisations", tags=["organisations"])
async def list_organisations(
    request: Request,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    validated: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Registered organisations, filtered by country and validation (public)."""
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT org_id, name, country, sector, validated_on FROM collaboration.organisations"
        " WHERE ($1::text IS NULL OR country = $1)"
        " AND ($2::bool IS NULL OR (validated_on IS NOT NULL) = $2)"
        " ORDER BY org_id LIMIT $3 OFFSET $4",
        country,
        validated,
        limit,
        offset,
    )
    return {"items": [dict(row) for row in rows], "limit": limit, "offset": offset}


# ------------------------------------------------------------------- partnerships
@router.post("/partnerships", status_code=201, tags=["partnerships"])
async def form_partnership(body: FormPartnership, ctx: Admin, request: Request) -> JSONResponse:
    """R14: label a strategic cluster partnership with its first partners."""
    s = streams(request)
    partnership_id = body.partnership_id or new_id()

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        members, unknown = await _members(conn, body.member_org_ids)
        events = model.form_partnership(
            partnership_id=partnership_id,
            name=body.name,
            strand=body.strand,
            call_id=body.call_id,
            members=members,
            unknown_org_ids=unknown,
            start_on=body.start_on,
            duration_months=body.duration_months,
            rules=PARTNERSHIPS_2020,
        )
        result = await s.append(conn, f"partnership:{partnership_id}", 0, events, ctx.cause)
        return 201, {"partnership_id": partnership_id, **_position(result)}

    return await ctx.run(work)


@router.post("/partnerships/{partnership_id}/partners", status_code=201, tags=["partnerships"])
async def add_partner(
    partnership_id: Id, body: AddPartner, ctx: Admin, request: Request
) -> JSONResponse:
    """R14: a new partner joins."""
    s = streams(request)

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        stream = f"partnership:{partnership_id}"
        events = await s.load_existing(conn, stream, "partnership")
        members, unknown = await _members(conn, [body.org_id])
        if unknown:
            raise NotFoundError(f"no organisation {body.org_id!r}")
        new = model.add_partner(
            model.Partnership.replay(events),
            members[0],
            joined_on=body.joined_on,
            rules=PARTNERSHIPS_2020,
        )
        result = await s.append(conn, stream, len(events), new, ctx.cause)
        return 201, {"partnership_id": partnership_id, **_position(result)}

    return await ctx.run(work)


@router.get("/partnerships/{partnership_id}", tags=["partnerships"])
async def get_partnership(partnership_id: Id, request: Request) -> dict[str, Any]:
    """A partnership and its partners (public)."""
    async with request.app.state.runtime.pool.acquire() as conn:
        events = await streams(request).load_existing(
            conn, f"partnership:{partnership_id}", "partnership"
        )
    partnership = model.Partnership.replay(events)
    return {**partnership.formed.model_dump(mode="json"), "member_org_ids": partnership.members}


# -------------------------------------------------------------------- agreements
@router.post("/agreements", status_code=201, tags=["agreements"])
async def sign_agreement(body: SignAgreement, ctx: Admin, request: Request) -> JSONResponse:
    """A cooperation agreement with a third country (or an extension of one)."""
    s = streams(request)
    agreement_id = body.agreement_id or new_id()

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        extends = None
        if body.extends is not None:
            _, earlier = await s.load(conn, f"agreement:{body.extends}")
            first = earlier[0] if earlier else None
            extends = first if isinstance(first, CooperationAgreementSigned) else None
        events = model.sign_agreement(
            agreement_id=agreement_id,
            parties=body.parties,
            third_country=body.third_country,
            signed_on=body.signed_on,
            place=body.place,
            extends=extends,
            extends_id=body.extends,
            rules=PARTNERSHIPS_2020,
        )
        result = await s.append(conn, f"agreement:{agreement_id}", 0, events, ctx.cause)
        return 201, {"agreement_id": agreement_id, **_position(result)}

    return await ctx.run(work)


@router.get("/agreements/{agreement_id}", tags=["agreements"])
async def get_agreement(agreement_id: Id, request: Request) -> dict[str, Any]:
    """One agreement (public)."""
    async with request.app.state.runtime.pool.acquire() as conn:
        events = await streams(request).load_existing(
            conn, f"agreement:{agreement_id}", "agreement"
        )
    return events[0].model_dump(mode="json")


# ------------------------------------------------------------------- matchmaking
@router.post("/matchmaking-events", status_code=201, tags=["matchmaking"])
async def record_matchmaking(body: RecordMatchmaking, ctx: Admin, request: Request) -> JSONResponse:
    """A matchmaking mission with its participants and outcomes."""
    s = streams(request)
    event_id = body.event_id or new_id()

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        _, unknown = await _members(conn, body.participant_org_ids)
        events = model.record_matchmaking(
            event_id=event_id,
            theme=body.theme,
            held_on=body.held_on,
            countries=body.countries,
            participant_org_ids=body.participant_org_ids,
            unknown_org_ids=unknown,
            meetings_c2c=body.meetings_c2c,
            meetings_b2b=body.meetings_b2b,
            cooperation_cases=body.cooperation_cases,
            agreements=body.agreements,
        )
        result = await s.append(conn, f"matchmaking:{event_id}", 0, events, ctx.cause)
        return 201, {"event_id": event_id, **_position(result)}

    return await ctx.run(work)


@router.get("/matchmaking-events/{event_id}", tags=["matchmaking"])
async def get_matchmaking(event_id: Id, request: Request) -> dict[str, Any]:
    """One matchmaking event (public)."""
    async with request.app.state.runtime.pool.acquire() as conn:
        events = await streams(request).load_existing(
            conn, f"matchmaking:{event_id}", "matchmaking event"
        )
    return events[0].model_dump(mode="json")
