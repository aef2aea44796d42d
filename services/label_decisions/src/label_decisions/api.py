"""HTTP API of label decisions.

Decisions themselves come from approved assessments on Kafka, not from HTTP. Over HTTP:
the public reads an organisation's labels; the labelling board withdraws and corrects
(R15) and can run the expiry clock now; the auditor reads the full decision history,
refusals included, and verifies the hash chain of the store.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from clr_events.service.auth import Actor, Role, require
from clr_events.service.commands import CommandContext, command
from clr_events.service.inputs import Day, Happened, Id, RecordedAt
from clr_events.service.runtime import Runtime
from label_decisions import application as app
from label_decisions import clock, queries
from label_decisions.application import Correction, CorrectLabel, Withdrawal, WithdrawLabel
from label_decisions.domain.policy import DecisionPolicy, Level

Board = Annotated[CommandContext, Depends(command(Role.LABELLING_BOARD))]
Auditor = Annotated[Actor, Depends(require(Role.AUDITOR, Role.LABELLING_BOARD))]

router = APIRouter()


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def policy_of(request: Request) -> DecisionPolicy:
    policy: DecisionPolicy = request.app.state.policy
    return policy


class ExpiryRun(BaseModel):
    today: Happened | None = Field(None, description="default: today; never a later day")


@router.get("/labels/{org_id}", tags=["labels"])
async def get_labels(
    org_id: Id, request: Request, on: Day | None = None, recorded_at: RecordedAt | None = None
) -> dict[str, Any]:
    """An organisation's label record per level on a day (``on``, valid time; default
    today), status from the record's history (R10); ``recorded_at`` (transaction time):
    as the records stood then, before any later decision or correction."""
    runtime, day = runtime_of(request), on or date.today()
    records = await queries.labels(runtime.units, org_id, policy_of(request), day, recorded_at)
    body: dict[str, Any] = {"org_id": org_id, "labels": records}
    if recorded_at is not None:
        body["recorded_at"] = recorded_at
    return body


@router.get("/labels/{org_id}/{level}/history", tags=["labels"])
async def get_history(
    org_id: Id, level: Level, request: Request, _actor: Auditor
) -> dict[str, Any]:
    """Every event of a record, refusals included, with its provenance: event id, stream
    version, global position, who or what caused it (actor, causation and correlation
    ids), its stored metadata and its chain hash (hex)."""
    return await queries.history(runtime_of(request).store, org_id, level)


@router.get("/records", tags=["audit"])
async def list_records(
    request: Request,
    _actor: Auditor,
    refused_only: bool = False,
    after: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}:[a-z]{1,16}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Every label record, those holding only refusals included (``refused_only``: just
    those), in ``org_id:level`` order; page on with ``after`` = the last ``record``."""
    rows = await queries.records(runtime_of(request).pool, after, refused_only, limit)
    items = [
        {
            "record": f"{r['org_id']}:{r['level']}",
            "org_id": r["org_id"],
            "level": r["level"],
            "refusals_only": r["valid_until"] is None,
            "valid_until": r["valid_until"],
            "withdrawn_on": r["withdrawn_on"],
            "events": r["stream_version"],
            "history": f"/labels/{r['org_id']}/{r['level']}/history",
        }
        for r in rows
    ]
    return {"items": items, "next_after": items[-1]["record"] if len(items) == limit else None}


@router.post("/labels/{org_id}/{level}/withdrawal", status_code=201, tags=["labels"])
async def withdraw(
    org_id: Id, level: Level, body: Withdrawal, ctx: Board, request: Request
) -> JSONResponse:
    """The board withdraws a current label, with a reason."""
    cmd = WithdrawLabel(org_id=org_id, level=level, withdrawal=body)
    policy = policy_of(request)
    return await ctx.run(
        lambda uow: app.withdraw_label(cmd, uow, policy=policy, today=date.today())
    )


@router.post("/labels/{org_id}/{level}/corrections", status_code=201, tags=["labels"])
async def correct(
    org_id: Id, level: Level, body: Correction, ctx: Board, request: Request
) -> JSONResponse:
    """R15: correct a validity by a compensating event; nothing is rewritten."""
    cmd = CorrectLabel(org_id=org_id, level=level, correction=body)
    policy = policy_of(request)
    return await ctx.run(lambda uow: app.correct_label(cmd, uow, policy=policy, today=date.today()))


@router.post("/expiry-runs", tags=["labels"])
async def run_expiry(body: ExpiryRun, request: Request, ctx: Board) -> dict[str, Any]:
    """Run the expiry clock now (it also runs by itself); idempotent. The board's command
    is the cause of the expiries it records (``run_id``)."""
    expired = await clock.expire_due(
        runtime_of(request), body.today, policy=policy_of(request), cause=ctx.cause
    )
    return {
        "expired": expired,
        "today": body.today or date.today(),
        "run_id": ctx.cause.causation_id,
    }
