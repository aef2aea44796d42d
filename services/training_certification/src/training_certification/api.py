"""HTTP API of training and certification: commands need a training admin, reads are public.

A write route parses its command and runs its handler (``training_certification.application``);
a read route asks its query (``training_certification.queries``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from clr_events.service.auth import Role
from clr_events.service.commands import CommandContext, command
from clr_events.service.inputs import Day, Id, Offset, RecordedAt
from training_certification import application as app
from training_certification import queries
from training_certification.application import (
    Affiliations,
    Certify,
    CertifyPerson,
    ChangeAffiliations,
    Complete,
    CourseStep,
    Enrol,
    ErasePerson,
    RegisterCourse,
    RegisterPerson,
    RenewCertification,
    Revoke,
    RevokeCertification,
)
from training_certification.domain.policy import CertificationPolicy, ExpertRole

Admin = Annotated[CommandContext, Depends(command(Role.TRAINING_ADMIN))]
RegistryAdmin = Annotated[CommandContext, Depends(command(Role.REGISTRY_ADMIN))]

router = APIRouter()


def policy_of(request: Request) -> CertificationPolicy:
    """The certification policy in force."""
    chosen: CertificationPolicy = request.app.state.policy
    return chosen


# -------------------------------------------------------------------- courses
@router.post("/courses", status_code=201, tags=["courses"])
async def register_course(body: RegisterCourse, ctx: Admin) -> JSONResponse:
    """Offer a course (its kind decides the certificate it leads to)."""
    return await ctx.run(lambda uow: app.register_course(body, uow))


# --------------------------------------------------------------------- people
@router.post("/people", status_code=201, tags=["people"])
async def register_person(body: RegisterPerson, ctx: Admin) -> JSONResponse:
    """Register an expert or trainer with the organisations they work for."""
    return await ctx.run(lambda uow: app.register_person(body, uow))


@router.put("/people/{person_id}/affiliations", tags=["people"])
async def change_affiliations(person_id: Id, body: Affiliations, ctx: Admin) -> JSONResponse:
    """Replace the organisations a person works for (R9 reads them)."""
    cmd = ChangeAffiliations(person_id=person_id, change=body)
    return await ctx.run(lambda uow: app.change_affiliations(cmd, uow))


@router.post("/people/{person_id}/enrolments", status_code=201, tags=["people"])
async def enrol(person_id: Id, body: CourseStep, ctx: Admin) -> JSONResponse:
    """Enrol a person in a course."""
    cmd = Enrol(person_id=person_id, step=body)
    return await ctx.run(lambda uow: app.enrol(cmd, uow))


@router.post("/people/{person_id}/completions", status_code=201, tags=["people"])
async def complete(person_id: Id, body: CourseStep, ctx: Admin) -> JSONResponse:
    """Record a completion: the course's certificate is issued."""
    cmd = Complete(person_id=person_id, step=body)
    return await ctx.run(lambda uow: app.complete(cmd, uow))


@router.post("/people/{person_id}/certifications", status_code=201, tags=["people"])
async def certify(person_id: Id, body: Certify, ctx: Admin, request: Request) -> JSONResponse:
    """Certify a person for an expert role (validity and prerequisites: the policy)."""
    cmd = CertifyPerson(person_id=person_id, certification=body)
    policy = policy_of(request)
    return await ctx.run(lambda uow: app.certify(cmd, uow, policy=policy))


@router.post("/people/{person_id}/certifications/renewals", status_code=201, tags=["people"])
async def renew(person_id: Id, body: Certify, ctx: Admin, request: Request) -> JSONResponse:
    """Extend a certification in force."""
    cmd = RenewCertification(person_id=person_id, renewal=body)
    policy = policy_of(request)
    return await ctx.run(lambda uow: app.renew(cmd, uow, policy=policy))


@router.post("/people/{person_id}/certifications/revocations", status_code=201, tags=["people"])
async def revoke(person_id: Id, body: Revoke, ctx: Admin) -> JSONResponse:
    """Revoke a certification from a day on."""
    cmd = RevokeCertification(person_id=person_id, revocation=body)
    return await ctx.run(lambda uow: app.revoke(cmd, uow))


@router.post(
    "/people/{person_id}/erasure",
    status_code=201,
    tags=["people"],
    responses={200: {"description": "Erased before: nothing recorded."}},
)
async def erase(person_id: Id, ctx: RegistryAdmin) -> JSONResponse:
    """Erase a person's personal data (GDPR art. 17): their key is destroyed, so their
    name, sealed under it wherever it was copied, can no longer be read; the erasure is
    itself recorded (``PersonalDataErased``). A repeat records nothing (200)."""
    return await ctx.run(lambda uow: app.erase_person(ErasePerson(person_id=person_id), uow))


# ---------------------------------------------------------------------- reads
@router.get("/people/{person_id}", tags=["people"])
async def get_person(person_id: Id, request: Request) -> dict[str, Any]:
    """A person's certificates and certifications (public); the name is opened here, and
    is null once the person's data was erased."""
    runtime = request.app.state.runtime
    return await queries.person_profile(runtime.store, runtime.pool, person_id)


@router.get("/experts", tags=["people"])
async def list_experts(
    request: Request,
    role: ExpertRole | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    on: Day | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    recorded_at: RecordedAt | None = None,
) -> dict[str, Any]:
    """Experts certified for a role and in force on a day (default today), by country;
    ``recorded_at`` (transaction time): as the certifications were recorded then. Another
    day than today, or a moment, is answered from every certification event in the store
    (each period of a role, not only its latest)."""
    day = on or date.today()
    rows = await queries.experts(
        request.app.state.runtime.pool,
        day,
        role=role,
        country=country,
        limit=limit,
        offset=offset,
        recorded_at=recorded_at,
    )
    body: dict[str, Any] = {"on": day, "items": rows, "limit": limit, "offset": offset}
    if recorded_at is not None:
        body["recorded_at"] = recorded_at
    return body


@router.get("/names", tags=["people"])
async def list_names(
    request: Request,
    person_id: Annotated[list[Id], Query(min_length=1, max_length=1000)],
) -> dict[str, Any]:
    """People's names, opened here for the readers that show them (the public page): null
    for an erased person. Names are never published on a topic; ask here, do not keep."""
    names = await queries.names(request.app.state.runtime.pool, person_id)
    return {"items": [{"person_id": p, "name": n} for p, n in sorted(names.items())]}
