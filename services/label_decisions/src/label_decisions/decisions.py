"""Taking decisions: approved assessments in, label events out, and the expiry clock.

Both run the handlers of ``label_decisions.application`` in a unit of work: the consumer's
joins the runner's transaction (with the message's inbox entry and checkpoint), each
expiry its own. A concurrent change to the same record (a board withdrawal, another
instance's expiry run) is a transient error for the consumer, which retries; an approval
decided before is decided again to nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime

from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.application.uow import Cause, Result, UnitOfWork, execute
from clr_events.consumers.dispatch import Subscriptions
from clr_events.consumers.runner import TransientError
from clr_events.contracts.assessments import ApprovedForDecision
from clr_events.envelope import Envelope
from clr_events.errors import ConcurrencyError
from clr_events.migrations import load
from clr_events.pg import Connection
from clr_events.service.runtime import Runtime
from label_decisions import application
from label_decisions.application import ExpireLabel
from label_decisions.domain.policy import POLICIES, DecisionPolicy, Level

log = logging.getLogger(__name__)

NAME = "label_decisions"
SYSTEM = "label_decisions"


class DecisionSettings(BaseSettings):
    """``CLR_DECISION_POLICY_VERSION`` and how often the expiry clock runs."""

    model_config = SettingsConfigDict(env_prefix="CLR_DECISION_")

    policy_version: str = POLICIES.default
    expiry_interval_seconds: float = 60.0

    def policy(self) -> DecisionPolicy:
        """The chosen policy version."""
        return POLICIES.choose(self.policy_version)


MIGRATIONS = load("label_decisions")
"""The service's own tables: ``migrations/``."""


def subscriptions(runtime: Runtime, settings: DecisionSettings) -> Subscriptions:
    """The consumer of ``assessments.decisions``."""
    policy = settings.policy()
    handlers = Subscriptions()

    @handlers.on(ApprovedForDecision)
    async def _decide(conn: Connection, event: ApprovedForDecision, envelope: Envelope) -> None:
        cause = Cause(SYSTEM, envelope.correlationid or envelope.id, envelope.id)
        uow = runtime.units.joined(conn, cause)
        result = await application.decide_on_approval(event, uow, policy=policy)
        try:
            await uow.commit(result)
        except ConcurrencyError as conflict:
            raise TransientError(str(conflict)) from conflict

    return handlers


def clock_run_cause() -> Cause:
    """The cause of one run of the clock: a new run id, its events' causation id."""
    run_id = f"clock-run:expiry:{uuid.uuid4().hex}"
    return Cause(SYSTEM, run_id, run_id)


async def expire_due(
    runtime: Runtime,
    today: date | None = None,
    *,
    policy: DecisionPolicy,
    cause: Cause | None = None,
) -> int:
    """Record ``LabelExpired`` for every label whose validity has passed; the count.

    Each run has a cause: by default a clock run of its own (``clock_run_cause``); run over
    HTTP, the board's command. Its id is the causation id of every expiry it records, and
    a run that recorded any is kept in ``clock_runs`` (what an auditor resolves it by).
    Idempotent: a record already expired at its current ``valid_until`` is skipped, and
    a record changed meanwhile by another writer is left to the next run.
    """
    day = today or date.today()
    cause = cause or clock_run_cause()
    started = datetime.now(UTC)
    due = await runtime.pool.fetch(
        f"SELECT org_id, level FROM {NAME}.records WHERE withdrawn_on IS NULL"
        " AND valid_until < $1 AND expired_until IS DISTINCT FROM valid_until",
        day,
    )
    expired = 0
    for row in due:
        cmd = ExpireLabel(org_id=row["org_id"], level=Level(row["level"]), today=day)

        async def expire(uow: UnitOfWork, cmd: ExpireLabel = cmd) -> Result:
            return await application.expire_label(cmd, uow, policy=policy)

        try:
            result = await execute(runtime.units, cause, expire)
            expired += int(result.body["expired"])
        except ConcurrencyError:
            log.info("record %s:%s changed during the expiry run", row["org_id"], row["level"])
    if expired:
        await runtime.pool.execute(
            f"INSERT INTO {NAME}.clock_runs (run_id, job, actor, today, started_at, events)"
            " VALUES ($1, 'expiry', $2, $3, $4, $5) ON CONFLICT (run_id) DO UPDATE"
            " SET events = clock_runs.events + EXCLUDED.events",
            cause.causation_id,
            cause.actor,
            day,
            started,
            expired,
        )
        log.info("expiry run %s recorded %d expiries", cause.causation_id, expired)
    return expired
