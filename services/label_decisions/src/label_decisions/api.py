"""HTTP API of label decisions.

Decisions themselves come from approved assessments on Kafka, not from HTTP. Over HTTP:
the public reads an organisation's labels; the labelling board withdraws and corrects
(R15) and can run the expiry clock now; the auditor reads the full decision history,
refusals included, and verifies the hash chain of the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from clr_events.pg import Connection
from clr_events.rules import NotFoundError
from clr_events.service.auth import Actor, Role, require
from clr_events.service.commands import CommandContext, Id, command
from clr_events.service.inputs import Day, Happened, Position, Text
from clr_events.service.runtime import Runtime
from label_decisions import decisions
from label_decisions.domain.events import LabelEvent
from label_decisions.domain.label_record import LabelRecord
from label_decisions.domain.policy import DecisionPolicy, Level, renewal_deadline

Board = Annotated[CommandContext, Depends(command(Role.LABELLING_BOARD))]
Auditor = Annotated[Actor, Depends(require(Role.AUDITOR, Role.LABELLING_BOARD))]

router = APIRouter()


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def policy_of(request: Request) -> DecisionPolicy:
    policy: DecisionPolicy = request.app.state.policy
    return policy


class Withdrawal(BaseModel):
    reason: Text
    withdrawn_on: Happened


class Correction(BaseModel):
    valid_until: Day
    reason: Text


class ExpiryRun(BaseModel):
    today: Happened | None = Field(None, description="default: today; never a later day")


def _view(record: LabelRecord, policy: DecisionPolicy, today: date) -> dict[str, Any]:
    deadline = (
        renewal_deadline(policy, record.level, record.valid_until) if record.valid_until else None
    )
    return {
        "org_id": record.org_id,
        "level": record.level.value,
        "status": record.status(today, policy).value,
        "valid_until": record.valid_until,
        "renewal_deadline": deadline,
        "withdrawn_on": record.withdrawn_on,
        "as_of": today,
    }


@router.get("/labels/{org_id}", tags=["labels"])
async def get_labels(org_id: Id, request: Request, on: Day | None = None) -> dict[str, Any]:
    """An organisation's label record per level, status derived from the dates (R10)."""
    runtime, policy = runtime_of(request), policy_of(request)
    today = on or date.today()
    records = []
    async with runtime.pool.acquire() as conn:
        for level in Level:
            _, record = await decisions.load(conn, runtime, org_id, level)
            if record.valid_until is not None:
                records.append(_view(record, policy, today))
    return {"org_id": org_id, "labels": records}


@router.get("/labels/{org_id}/{level}/history", tags=["labels"])
async def get_history(
    org_id: Id, level: Level, request: Request, _actor: Auditor
) -> dict[str, Any]:
    """Every decision on a record, refusals included, with who or what decided."""
    runtime = runtime_of(request)
    stored = await runtime.store.read_stream(f"{org_id}:{level.value}")
    if not stored:
        raise NotFoundError(f"no {level.value} label record for {org_id!r}")
    return {
        "org_id": org_id,
        "level": level.value,
        "events": [
            {
                "version": e.version,
                "position": e.position,
                "type": e.type,
                "recorded_at": e.recorded_at,
                "data": e.data,
                "actor": e.metadata.get("actor"),
                "correlation_id": e.metadata.get("correlation_id"),
            }
            for e in stored
        ],
    }


async def _change(
    ctx: CommandContext,
    request: Request,
    org_id: str,
    level: Level,
    change: Callable[[LabelRecord], list[LabelEvent]],
) -> JSONResponse:
    runtime = runtime_of(request)

    async def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        events, record = await decisions.load(conn, runtime, org_id, level)
        if not events:
            raise NotFoundError(f"no {level.value} label record for {org_id!r}")
        new = change(record)
        await decisions.save(conn, runtime, record, len(events), new, ctx.cause)
        return 201, _view(record, policy_of(request), date.today())

    return await ctx.run(work)


@router.post("/labels/{org_id}/{level}/withdrawal", status_code=201, tags=["labels"])
async def withdraw(
    org_id: Id, level: Level, body: Withdrawal, ctx: Board, request: Request
) -> JSONResponse:
    """The board withdraws a current label, with a reason."""
    return await _change(
        ctx,
        request,
        org_id,
        level,
        lambda r: r.withdraw(reason=body.reason, by=ctx.actor.subject, on=body.withdrawn_on),
    )


@router.post("/labels/{org_id}/{level}/corrections", status_code=201, tags=["labels"])
async def correct(
    org_id: Id, level: Level, body: Correction, ctx: Board, request: Request
) -> JSONResponse:
    """R15: correct a validity by a compensating event; nothing is rewritten."""
    return await _change(
        ctx,
        request,
        org_id,
        level,
        lambda r: r.correct(valid_until=body.valid_until, reason=body.reason, by=ctx.actor.subject),
    )


@router.post("/expiry-runs", tags=["labels"])
async def run_expiry(body: ExpiryRun, request: Request, _ctx: Board) -> dict[str, Any]:
    """Run the expiry clock now (it also runs by itself); idempotent."""
    expired = await decisions.expire_due(runtime_of(request), body.today)
    return {"expired": expired, "today": body.today or date.today()}


@router.get("/policy", tags=["policy"])
async def get_policy(request: Request) -> dict[str, Any]:
    """The decision policy in force: its version and every setting."""
    policy = policy_of(request)
    return {
        "version": policy.version,
        "month_end": policy.month_end.value,
        "eligibility_required_from": policy.eligibility_required_from,
        "levels": {
            level.value: {
                "first_validity_months": rules.first_validity_months,
                "renewal_window_months": rules.renewal_window_months,
                "renewal_extension_months": rules.renewal_extension_months,
                "renewal_earliest_months": rules.renewal_earliest_months,
            }
            for level, rules in policy.levels.items()
        },
        "bronze_indicator_count": policy.bronze_indicator_count,
        "silver_improvement_areas": policy.silver_improvement_areas,
        "gold_indicator_count": policy.gold_indicator_count,
        "gold_min_score_pct": policy.gold_min_score_pct,
        "gold_days_first": policy.gold_days_first,
        "gold_days_renewal": policy.gold_days_renewal,
    }


@router.get("/verification", tags=["audit"])
async def verify(
    request: Request,
    _actor: Auditor,
    first: Position = 1,
    last: Position | None = None,
) -> dict[str, Any]:
    """Re-hash the decision history over a range of positions: every alteration is named."""
    report = await runtime_of(request).store.verify(first, last)
    return {
        "ok": report.ok,
        "first_position": report.first_position,
        "last_position": report.last_position,
        "checked": report.checked,
        "problems": list(report.problems),
    }
