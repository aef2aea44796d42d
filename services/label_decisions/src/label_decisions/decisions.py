"""Taking decisions: approved assessments in, label events out, and the expiry clock.

Both run inside a transaction that loads the record, lets the domain decide, appends with
the expected version and updates the ``records`` index. A concurrent change to the same
record (a board withdrawal, another instance's expiry run) is a transient error for the
consumer, which retries; an approval decided before is decided again to nothing.
"""

from __future__ import annotations

import logging
from datetime import date

from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.consumers.dispatch import Subscriptions
from clr_events.consumers.runner import TransientError
from clr_events.contracts.assessments import ApprovedForDecision
from clr_events.envelope import Envelope
from clr_events.errors import ConcurrencyError
from clr_events.pg import Connection
from clr_events.rules import RuleViolationError
from clr_events.service.commands import Cause, DomainEvents, Streams
from clr_events.service.runtime import Runtime
from label_decisions.domain.events import EVENTS, LabelEvent
from label_decisions.domain.label_record import (
    ApprovedAssessment,
    LabelRecord,
    Outcome,
    stream_id,
)
from label_decisions.domain.policy import POLICIES, DecisionPolicy, Level

log = logging.getLogger(__name__)

NAME = "label_decisions"
SYSTEM = "label_decisions"
EVENT_TYPES: DomainEvents[LabelEvent] = DomainEvents(*EVENTS)


class DecisionSettings(BaseSettings):
    """``CLR_DECISION_POLICY_VERSION`` and how often the expiry clock runs."""

    model_config = SettingsConfigDict(env_prefix="CLR_DECISION_")

    policy_version: str = "2026.2"
    expiry_interval_seconds: float = 60.0

    def policy(self) -> DecisionPolicy:
        """The chosen policy version."""
        try:
            return POLICIES[self.policy_version]
        except KeyError as unknown:
            known = ", ".join(POLICIES)
            raise ValueError(
                f"unknown decision policy {self.policy_version!r}; known: {known}"
            ) from unknown


MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.records (
        org_id text NOT NULL, level text NOT NULL, valid_until date, withdrawn_on date,
        expired_until date, stream_version int NOT NULL, PRIMARY KEY (org_id, level));
    CREATE INDEX IF NOT EXISTS records_due ON {schema}.records (valid_until)
        WHERE withdrawn_on IS NULL;
    """
]


def streams(runtime: Runtime) -> Streams[LabelEvent]:
    """The label record streams of the service's store."""
    return Streams(runtime.store, EVENT_TYPES)


async def load(
    conn: Connection, runtime: Runtime, org_id: str, level: Level
) -> tuple[list[LabelEvent], LabelRecord]:
    """A record's events and state (an empty record if it has none)."""
    _, events = await streams(runtime).load(conn, stream_id(org_id, level))
    return events, LabelRecord.replay(org_id, level, events)


async def save(
    conn: Connection,
    runtime: Runtime,
    record: LabelRecord,
    expected: int,
    new: list[LabelEvent],
    cause: Cause,
) -> None:
    """Append the new events and bring the index row up to date."""
    if not new:
        return
    await streams(runtime).append(
        conn, stream_id(record.org_id, record.level), expected, new, cause
    )
    for event in new:
        record.apply(event)
    await conn.execute(
        f"INSERT INTO {NAME}.records (org_id, level, valid_until, withdrawn_on, expired_until,"
        " stream_version) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, level) DO UPDATE"
        " SET valid_until = excluded.valid_until, withdrawn_on = excluded.withdrawn_on,"
        " expired_until = excluded.expired_until, stream_version = excluded.stream_version",
        record.org_id,
        record.level.value,
        record.valid_until,
        record.withdrawn_on,
        record.expired_until,
        record.version,
    )


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
    )


def subscriptions(runtime: Runtime, settings: DecisionSettings) -> Subscriptions:
    """The consumer of ``assessments.decisions``."""
    policy = settings.policy()
    handlers = Subscriptions()

    @handlers.on(ApprovedForDecision)
    async def _decide(conn: Connection, event: ApprovedForDecision, envelope: Envelope) -> None:
        assessment = approved_assessment(event)
        events, record = await load(conn, runtime, assessment.org_id, assessment.level)
        decided_by = f"decision policy {policy.version}, on approval by {event.approver}"
        eligible = (
            event.profile_validated_on is not None
            and event.profile_validated_on <= assessment.assessed_on
        )
        try:
            new = record.decide(assessment, eligible=eligible, policy=policy, decided_by=decided_by)
        except RuleViolationError as refused:
            new = record.refuse(
                assessment, refused.violations, policy=policy, decided_by=decided_by
            )
        cause = Cause(SYSTEM, envelope.correlationid or envelope.id, envelope.id)
        try:
            await save(conn, runtime, record, len(events), new, cause)
        except ConcurrencyError as conflict:
            raise TransientError(str(conflict)) from conflict

    return handlers


async def expire_due(runtime: Runtime, today: date | None = None) -> int:
    """Record ``LabelExpired`` for every label whose validity has passed; the count.

    Idempotent: a record already expired at its current ``valid_until`` is skipped, and
    a record changed meanwhile by another writer is left to the next run.
    """
    day = today or date.today()
    due = await runtime.pool.fetch(
        f"SELECT org_id, level FROM {NAME}.records WHERE withdrawn_on IS NULL"
        " AND valid_until < $1 AND expired_until IS DISTINCT FROM valid_until",
        day,
    )
    expired = 0
    for row in due:
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                events, record = await load(conn, runtime, row["org_id"], Level(row["level"]))
                new = record.expire(day)
                await save(
                    conn,
                    runtime,
                    record,
                    len(events),
                    new,
                    Cause(SYSTEM, f"expiry:{day.isoformat()}"),
                )
                expired += len(new)
        except ConcurrencyError:
            log.info("record %s:%s changed during the expiry run", row["org_id"], row["level"])
    return expired
