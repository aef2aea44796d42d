"""HTTP API of training and certification: commands need a training admin, reads are public."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from clr_events.pg import Connection
from clr_events.service.auth import Role
from clr_events.service.commands import CommandContext, DomainEvents, Id, Streams, command, new_id
from clr_events.service.inputs import Code, Day, Happened, Many, Name, Offset, Text
from training_certification.domain import model
from training_certification.domain.events import EVENTS, CourseRegistered, TrainingEvent
from training_certification.domain.policy import CERTIFICATION_2026_1, ExpertRole

Admin = Annotated[CommandContext, Depends(command(Role.TRAINING_ADMIN))]
EVENT_TYPES: DomainEvents[TrainingEvent] = DomainEvents(*EVENTS)
POLICY = CERTIFICATION_2026_1

router = APIRouter()


def streams(request: Request) -> Streams[TrainingEvent]:
    return Streams(request.app.state.runtime.store, EVENT_TYPES)


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


async def _course(conn: Connection, s: Streams[TrainingEvent], course_id: str) -> CourseRegistered:
    events = await s.load_existing(conn, f"course:{course_id}", "course")
    first = events[0]
    assert isinstance(first, CourseRegistered)
    return first


async def _on_person(
    ctx: CommandContext,
    request: Request,
    person_id: str,
    decide: Callable[[model.Person, Connection], Any],
) -> JSONResponse:
    """Load a person, let the domain decide, append, and keep the index tables in step."""
    s = streams(request)

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        events = await s.load_existing(conn, f"person:{person_id}", "person")
        person = model.Person.replay(events)
        new = await decide(person, conn)
        result = await s.append(conn, f"person:{person_id}", len(events), new, ctx.cause)
        await _index(conn, model.Person.replay([*events, *new]))
        body: dict[str, Any] = {"person_id": person_id, "events": [type(e).__name__ for e in new]}
        if result is not None:
            body["stream_version"] = result.version
        return (201 if new else 200), body

    return await ctx.run(work)


async def _index(conn: Connection, person: model.Person) -> None:
    """The query tables: people and their certifications, as of the person's events."""
    await conn.execute(
        "INSERT INTO training_certification.people (person_id, name, country, affiliations)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (person_id) DO UPDATE"
        " SET affiliations = excluded.affiliations",
        person.person_id,
        person.registered.name,
        person.registered.country,
        list(person.affiliations),
    )
    for role, cert in person.certifications.items():
        await conn.execute(
            "INSERT INTO training_certification.certifications"
            " (person_id, role, valid_from, valid_until, revoked_on) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (person_id, role) DO UPDATE SET valid_from = excluded.valid_from,"
            " valid_until = excluded.valid_until, revoked_on = excluded.revoked_on",
            person.person_id,
            role,
            cert.valid_from,
            cert.valid_until,
            cert.revoked_on,
        )


# -------------------------------------------------------------------- courses
@router.post("/courses", status_code=201, tags=["courses"])
async def register_course(body: RegisterCourse, ctx: Admin, request: Request) -> JSONResponse:
    """Offer a course (its kind decides the certificate it leads to)."""
    s = streams(request)
    course_id = body.course_id or new_id()

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        events = model.register_course(
            course_id=course_id, title=body.title, kind=body.kind, starts_on=body.starts_on
        )
        await s.append(conn, f"course:{course_id}", 0, events, ctx.cause)
        return 201, {"course_id": course_id}

    return await ctx.run(work)


# --------------------------------------------------------------------- people
@router.post("/people", status_code=201, tags=["people"])
async def register_person(body: RegisterPerson, ctx: Admin, request: Request) -> JSONResponse:
    """Register an expert or trainer with the organisations they work for."""
    s = streams(request)
    person_id = body.person_id or new_id()

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        events = model.register_person(
            person_id=person_id,
            name=body.name,
            country=body.country,
            affiliation_org_ids=body.affiliation_org_ids,
        )
        await s.append(conn, f"person:{person_id}", 0, events, ctx.cause)
        await _index(conn, model.Person.replay(events))
        return 201, {"person_id": person_id}

    return await ctx.run(work)


@router.put("/people/{person_id}/affiliations", tags=["people"])
async def change_affiliations(
    person_id: Id, body: Affiliations, ctx: Admin, request: Request
) -> JSONResponse:
    """Replace the organisations a person works for (R9 reads them)."""

    async def decide(person: model.Person, _conn: Connection) -> list[TrainingEvent]:
        return model.change_affiliations(person, body.affiliation_org_ids, body.changed_on)

    return await _on_person(ctx, request, person_id, decide)


@router.post("/people/{person_id}/enrolments", status_code=201, tags=["people"])
async def enrol(person_id: Id, body: CourseStep, ctx: Admin, request: Request) -> JSONResponse:
    """Enrol a person in a course."""

    async def decide(person: model.Person, conn: Connection) -> list[TrainingEvent]:
        return model.enrol(person, await _course(conn, streams(request), body.course_id), body.on)

    return await _on_person(ctx, request, person_id, decide)


@router.post("/people/{person_id}/completions", status_code=201, tags=["people"])
async def complete(person_id: Id, body: CourseStep, ctx: Admin, request: Request) -> JSONResponse:
    """Record a completion: the course's certificate is issued."""

    async def decide(person: model.Person, conn: Connection) -> list[TrainingEvent]:
        course = await _course(conn, streams(request), body.course_id)
        return model.complete(person, course, body.on)

    return await _on_person(ctx, request, person_id, decide)


@router.post("/people/{person_id}/certifications", status_code=201, tags=["people"])
async def certify(person_id: Id, body: Certify, ctx: Admin, request: Request) -> JSONResponse:
    """Certify a person for an expert role (validity and prerequisites: the policy)."""

    async def decide(person: model.Person, _conn: Connection) -> list[TrainingEvent]:
        return model.certify(person, body.role, on=body.on, by=ctx.actor.subject, policy=POLICY)

    return await _on_person(ctx, request, person_id, decide)


@router.post("/people/{person_id}/certifications/renewals", status_code=201, tags=["people"])
async def renew(person_id: Id, body: Certify, ctx: Admin, request: Request) -> JSONResponse:
    """Extend a certification in force."""

    async def decide(person: model.Person, _conn: Connection) -> list[TrainingEvent]:
        return model.renew(person, body.role, on=body.on, policy=POLICY)

    return await _on_person(ctx, request, person_id, decide)


@router.post("/people/{person_id}/certifications/revocations", status_code=201, tags=["people"])
async def revoke(person_id: Id, body: Revoke, ctx: Admin, request: Request) -> JSONResponse:
    """Revoke a certification from a day on."""

    async def decide(person: model.Person, _conn: Connection) -> list[TrainingEvent]:
        return model.revoke(person, body.role, on=body.on, reason=body.reason)

    return await _on_person(ctx, request, person_id, decide)


# ---------------------------------------------------------------------- reads
@router.get("/people/{person_id}", tags=["people"])
async def get_person(person_id: Id, request: Request) -> dict[str, Any]:
    """A person's certificates and certifications (public)."""
    async with request.app.state.runtime.pool.acquire() as conn:
        events = await streams(request).load_existing(conn, f"person:{person_id}", "person")
    person = model.Person.replay(events)
    return {
        "person_id": person_id,
        "name": person.registered.name,
        "country": person.registered.country,
        "affiliation_org_ids": list(person.affiliations),
        "certificates": person.certificates,
        "certifications": {
            role: {
                "valid_from": c.valid_from,
                "valid_until": c.valid_until,
                "revoked_on": c.revoked_on,
            }
            for role, c in person.certifications.items()
        },
    }


@router.get("/experts", tags=["people"])
async def list_experts(
    request: Request,
    role: ExpertRole | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    on: Day | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Experts certified for a role and in force on a day (default today), by country."""
    day = on or date.today()
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT p.person_id, p.name, p.country, c.role, c.valid_from, c.valid_until"
        " FROM training_certification.certifications c JOIN training_certification.people p"
        " USING (person_id) WHERE ($1::text IS NULL OR c.role = $1)"
        " AND ($2::text IS NULL OR p.country = $2) AND c.valid_from <= $3"
        " AND c.valid_until >= $3 AND (c.revoked_on IS NULL OR c.revoked_on > $3)"
        " ORDER BY p.person_id, c.role LIMIT $4 OFFSET $5",
        role.value if role else None,
        country,
        day,
        limit,
        offset,
    )
    return {"on": day, "items": [dict(row) for row in rows], "limit": limit, "offset": offset}


@router.get("/policy", tags=["policy"])
async def policy() -> dict[str, Any]:
    """The certification policy in force (its values are design assumptions)."""
    return {
        "version": POLICY.version,
        "validity_months": {r.value: m for r, m in POLICY.validity_months.items()},
        "prerequisites": {r.value: list(p) for r, p in POLICY.prerequisites.items()},
    }
