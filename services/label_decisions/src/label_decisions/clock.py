"""The expiry clock: every label whose validity has passed gets its ``LabelExpired``.

Each expiry runs ``application.expire_label`` in a unit of work of its own; a record
changed meanwhile (a board withdrawal, another instance's run) is left to the next run.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime

from clr_events.application.uow import Cause, Result, UnitOfWork, execute
from clr_events.errors import ConcurrencyError
from clr_events.service.runtime import Runtime
from label_decisions import application
from label_decisions.application import ExpireLabel
from label_decisions.domain.policy import DecisionPolicy, Level

log = logging.getLogger(__name__)


def clock_run_cause(actor: str) -> Cause:
    """The cause of one run of the clock: a new run id, its events' causation id."""
    run_id = f"clock-run:expiry:{uuid.uuid4().hex}"
    return Cause(actor, run_id, run_id)


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
    cause = cause or clock_run_cause(runtime.name)
    started = datetime.now(UTC)
    due = await runtime.pool.fetch(
        f"SELECT org_id, level FROM {runtime.name}.records WHERE withdrawn_on IS NULL"
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
            f"INSERT INTO {runtime.name}.clock_runs (run_id, job, actor, today, started_at, events)"
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
