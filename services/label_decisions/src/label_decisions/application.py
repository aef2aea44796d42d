"""Commands of label decisions and their handlers (no HTTP, no Kafka here).

Every handler loads one label record, lets it decide, stages its new events and keeps the
``records`` index (what the expiry clock scans) in step. The decision on an approved
assessment comes from the consumer (``consumed``), withdrawals and corrections from the
board over HTTP, expiries from the clock (``clock``): all through these handlers and a
unit of work.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from clr_events.application.uow import (
    DomainEvents,
    EventHandler,
    Result,
    Streams,
    UnitOfWork,
    handles,
)
from clr_events.contracts.assessments import ApprovedForDecision
from clr_events.envelope import Envelope
from clr_events.registry import Contract
from clr_events.rules import NotFoundError, RuleViolationError
from clr_events.service.inputs import Day, Happened, Id, Text
from label_decisions.domain.events import EVENTS, LabelEvent, ReliedCertification
from label_decisions.domain.label_record import (
    ApprovedAssessment,
    LabelRecord,
    Outcome,
    record_stream,
)
from label_decisions.domain.policy import DecisionPolicy, Level

EVENT_TYPES: DomainEvents[LabelEvent] = DomainEvents(*EVENTS)


def streams(uow: UnitOfWork) -> Streams[LabelEvent]:
    """The service's streams in ``uow``."""
    return Streams(uow, EVENT_TYPES)


# ------------------------------------------------------------------ commands
class Withdrawal(BaseModel):
    reason: Text
    withdrawn_on: Happened


class Correction(BaseModel):
    valid_until: Day
    reason: Text


class WithdrawLabel(BaseModel):
    org_id: Id
    level: Level
    withdrawal: Withdrawal


class CorrectLabel(BaseModel):
    org_id: Id
    level: Level
    correction: Correction


class ExpireLabel(BaseModel):
    org_id: str
    level: Level
    today: date


# ------------------------------------------------------------------ helpers
async def load(
    uow: UnitOfWork, org_id: str, level: Level, recorded_at: datetime | None = None
) -> LabelRecord:
    """A record as its events make it (an empty record, version 0, if it has none);
    ``recorded_at``: as its events recorded by then made it (transaction time: the
    registry as it stood before any later decision or correction; a read, never a write)."""
    if recorded_at is None:
        return await streams(uow).fold(record_stream(org_id, level), LabelRecord(org_id, level))
    stored = await uow.read(record_stream(org_id, level))
    events = [EVENT_TYPES.decode(row) for row in stored if row.recorded_at <= recorded_at]
    return LabelRecord.replay(org_id, level, events)


async def save(uow: UnitOfWork, record: LabelRecord, new: list[LabelEvent]) -> None:
    """Stage the new events and bring the index row up to date."""
    if not new:
        return
    streams(uow).append(record.stream, record.version, new)
    for event in new:
        record.apply(event)
    await uow.rows.upsert(
        "records",
        {"org_id": record.org_id, "level": record.level.value},
        {
            "valid_until": record.valid_until,
            "withdrawn_on": record.withdrawn_on,
            "expired_until": record.expired_until,
            "stream_version": record.version,
        },
    )


def view(record: LabelRecord, policy: DecisionPolicy, today: date) -> dict[str, Any]:
    """A record as the API shows it on a day, from its history (R10): the status and
    dates of the period of validity that governs the day (none yet: status ``none``)."""
    period = record.period_on(today, policy)
    return {
        "org_id": record.org_id,
        "level": record.level.value,
        "status": record.status(today, policy).value,
        "valid_until": period.valid_until if period else None,
        "renewal_deadline": period.renewal_deadline if period else None,
        "withdrawn_on": period.withdrawn_on if period else None,
        "as_of": today,
    }


async def _existing(uow: UnitOfWork, org_id: str, level: Level) -> LabelRecord:
    record = await load(uow, org_id, level)
    if record.version == 0:
        raise NotFoundError(f"no {level.value} label record for {org_id!r}")
    return record


def approved_assessment(event: ApprovedForDecision) -> ApprovedAssessment:
    """The restricted contract as the domain's input."""
    return ApprovedAssessment(
        assessment_id=event.assessment_id,
        org_id=event.org_id,
        level=Level(event.level),
        assessed_on=event.conducted_on,
        approved_on=event.approved_on,
        expert_ids=tuple(event.expert_ids),
        outcome=Outcome(
            indicator_count=event.indicator_count,
            indicators_passed=event.indicators_passed,
            score_pct=event.score_pct,
            on_site_days=event.on_site_days,
            evidence_documents=event.evidence_documents,
            improvement_areas_validated=(
                tuple(event.improvement_areas_validated)
                if event.improvement_areas_validated is not None
                else None
            ),
            baseline_met=event.baseline_met,
        ),
        approved_by=event.approved_by,
        certifications=(
            tuple(ReliedCertification.model_validate(c.model_dump()) for c in event.certifications)
            if event.certifications is not None
            else None
        ),
    )


# ------------------------------------------------------------------ handlers
def decide(
    record: LabelRecord, cmd: ApprovedForDecision, policy: DecisionPolicy
) -> list[LabelEvent]:
    """The decision on an approved assessment, given the record as it stood: an award, a
    renewal or a refusal, recording the policy's version and fingerprint and the inputs
    (``approval``); [] if decided before. Pure: the handler and ``redecide`` share it."""
    assessment = approved_assessment(cmd)
    decided_by = f"decision policy {policy.version}, on approval by {cmd.approver}"
    eligible = (
        cmd.profile_validated_on is not None and cmd.profile_validated_on <= assessment.assessed_on
    )
    try:
        new = record.decide(assessment, eligible=eligible, policy=policy, decided_by=decided_by)
    except RuleViolationError as refused:
        new = record.refuse(assessment, refused.violations, policy=policy, decided_by=decided_by)
    approval = cmd.model_dump(mode="json")
    return [event.model_copy(update={"approval": approval}) for event in new]


async def decide_on_approval(
    cmd: ApprovedForDecision, uow: UnitOfWork, *, policy: DecisionPolicy
) -> Result:
    """Award, renew or refuse a label on an approved assessment (decided once)."""
    record = await load(uow, cmd.org_id, Level(cmd.level))
    new = decide(record, cmd, policy)
    await save(uow, record, new)
    return Result(200, {"events": [type(e).__name__ for e in new]})


async def withdraw_label(
    cmd: WithdrawLabel, uow: UnitOfWork, *, policy: DecisionPolicy, today: date
) -> Result:
    """The board withdraws a current label, with a reason."""
    record = await _existing(uow, cmd.org_id, cmd.level)
    w = cmd.withdrawal
    await save(
        uow,
        record,
        record.withdraw(reason=w.reason, by=uow.cause.actor, on=w.withdrawn_on, policy=policy),
    )
    return Result(201, view(record, policy, today))


async def correct_label(
    cmd: CorrectLabel, uow: UnitOfWork, *, policy: DecisionPolicy, today: date
) -> Result:
    """R15: correct a validity by a compensating event; nothing is rewritten."""
    record = await _existing(uow, cmd.org_id, cmd.level)
    c = cmd.correction
    await save(
        uow,
        record,
        record.correct(
            valid_until=c.valid_until, reason=c.reason, by=uow.cause.actor, policy=policy
        ),
    )
    return Result(201, view(record, policy, today))


async def expire_label(cmd: ExpireLabel, uow: UnitOfWork, *, policy: DecisionPolicy) -> Result:
    """Record ``LabelExpired`` if the label's validity has passed (else nothing)."""
    record = await load(uow, cmd.org_id, cmd.level)
    new = record.expire(cmd.today, policy)
    await save(uow, record, new)
    return Result(200, {"expired": len(new)})


# ------------------------------------------------ events consumed: approvals
def consumed(policy: DecisionPolicy) -> dict[type[Contract], EventHandler]:
    """The events this service consumes (``assessments.decisions``), and their handlers,
    deciding by ``policy``. A concurrent change to the same record (a board withdrawal,
    another instance's expiry run) makes the consumer retry; an approval decided before is
    decided again to nothing."""

    async def approved(event: ApprovedForDecision, uow: UnitOfWork, _: Envelope) -> Result:
        return await decide_on_approval(event, uow, policy=policy)

    return dict((handles(ApprovedForDecision, approved),))
