"""Re-decide the recorded history: every decision through its recorded policy and inputs.

Each award, renewal and refusal records the policy version that took it, that version's
fingerprint and its inputs (``approval``: the approved assessment as the decision got
it). ``redecide`` reads the store in position order, rebuilds each label record from the
events before a decision (expiries, withdrawals and corrections are facts, replayed as
recorded), takes the decision again with the same code path as the service
(``application.decide``) under the recorded version, and compares every field but the
inputs themselves. Expected: no difference. A difference names the position, the record,
the field, what was recorded and what the policy decides now: a rule changed without a new
version (the fingerprints differ too), or a recorded decision altered.

A decision recorded before decisions carried their inputs is re-decided from the inputs
the service received, when asked (``--inputs-from-kafka``: every ``ApprovedForDecision``
on the restricted ``assessments.decisions`` topic, kept for ever, by assessment id);
without them it is counted, not compared. A field a decision was recorded without (one
added to decisions later: the renewal deadline, the fingerprint) is not compared either,
and counted per field (``not_recorded``). Run it as ``python -m label_decisions.redecide``
(or through the ``clr_audit.commands`` entry point ``redecide``) with the service's
settings (``CLR_DATABASE_URL``; for Kafka the ``CLR_KAFKA_*`` settings and the
installation's ``CLR_INSTANCE``); ``--schema`` reads another copy of the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from clr_events.codec import from_kafka
from clr_events.contracts.assessments import ApprovedForDecision
from clr_events.kafka.reader import read_to_end
from clr_events.registry import registry
from clr_events.settings import ConnectionSettings
from clr_events.store.base import StoredEvent
from clr_events.store.postgres import PostgresEventStore
from label_decisions import NAME
from label_decisions.application import EVENT_TYPES, decide
from label_decisions.domain.events import LabelAwarded, LabelEvent, LabelRefused, LabelRenewed
from label_decisions.domain.label_record import LabelRecord
from label_decisions.domain.policy import POLICIES, Level

APPROVALS = "assessments.decisions"
"""The restricted topic of the approvals the service decides on."""
DECISIONS = (LabelAwarded, LabelRenewed, LabelRefused)
"""The events a policy decides (the others are facts: the clock, the board)."""
INPUTS = "approval"
"""The recorded inputs: not an outcome, so not compared."""


@dataclass(frozen=True)
class Difference:
    """One field of a recorded decision that the recorded policy does not reproduce."""

    position: int
    stream_id: str
    type: str
    field: str
    recorded: Any
    redecided: Any


@dataclass
class Report:
    """What a re-decision of the history found."""

    events: int = 0
    decisions: int = 0
    redecided: int = 0
    inputs_from_kafka: int = 0
    without_inputs: int = 0
    not_recorded: dict[str, int] = field(default_factory=dict)
    """Fields some decisions were recorded without (added later), how many times."""
    differences: list[Difference] = field(default_factory=list)
    records: dict[str, LabelRecord] = field(default_factory=dict, repr=False)
    """Each record as the events read so far make it (a continuation starts from here)."""

    @property
    def ok(self) -> bool:
        """No difference."""
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON data."""
        return {
            "ok": self.ok,
            "events": self.events,
            "decisions": self.decisions,
            "redecided": self.redecided,
            "inputs_from_kafka": self.inputs_from_kafka,
            "without_inputs": self.without_inputs,
            "not_recorded": dict(sorted(self.not_recorded.items())),
            "differences": [vars(d) for d in self.differences],
        }


def _outcome(event: LabelEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={INPUTS})


def _compare(
    report: Report, row: StoredEvent, recorded: LabelEvent, redone: list[LabelEvent]
) -> None:
    def differ(name: str, was: Any, now: Any) -> None:
        report.differences.append(Difference(row.position, row.stream_id, row.type, name, was, now))

    if len(redone) != 1 or type(redone[0]) is not type(recorded):
        differ("decision", row.type, [type(e).__name__ for e in redone])
        return
    was, now = _outcome(recorded), _outcome(redone[0])
    fields = type(recorded).model_fields
    for name in sorted(was.keys() | now.keys()):
        if was.get(name) == now.get(name):
            continue
        if (
            was.get(name) is None
            and name not in recorded.model_fields_set
            and name in fields
            and not fields[name].is_required()
        ):  # recorded before decisions carried this field (an optional one added later)
            report.not_recorded[name] = report.not_recorded.get(name, 0) + 1
            continue
        differ(name, was.get(name), now.get(name))


Inputs = Mapping[str, ApprovedForDecision]
"""The approvals the service received, by assessment id (for decisions recorded without)."""


def redecide_events(
    stored: Iterable[StoredEvent], report: Report | None = None, inputs: Inputs | None = None
) -> Report:
    """Re-decide every decision among ``stored`` (every event of the store, in position
    order, or a continuation of them with the same ``report``); ``inputs``: for decisions
    recorded without theirs."""
    report = report if report is not None else Report()
    for row in stored:
        report.events += 1
        try:
            event = EVENT_TYPES.decode(row)
            record = report.records.get(row.stream_id) or LabelRecord(
                event.org_id, Level(event.level)
            )
        except Exception as error:  # an altered row that is no event of this service
            report.differences.append(
                Difference(row.position, row.stream_id, row.type, "event", str(error), None)
            )
            continue
        report.records[row.stream_id] = record
        if isinstance(event, DECISIONS):
            report.decisions += 1
            _redecide(report, row, record, event, inputs or {})
        record.apply(event)
    return report


def _redecide(
    report: Report,
    row: StoredEvent,
    record: LabelRecord,
    event: LabelAwarded | LabelRenewed | LabelRefused,
    inputs: Inputs,
) -> None:
    if event.approval is not None:
        cmd = ApprovedForDecision.model_validate(event.approval)
    elif event.assessment_id in inputs:
        cmd = inputs[event.assessment_id]
        report.inputs_from_kafka += 1
    else:
        report.without_inputs += 1
        return
    if event.policy_version not in POLICIES:
        report.differences.append(
            Difference(
                row.position, row.stream_id, row.type, "policy_version", event.policy_version, None
            )
        )
        return
    report.redecided += 1
    _compare(report, row, event, decide(record, cmd, POLICIES[event.policy_version]))


async def inputs_from_kafka(kafka: ConnectionSettings) -> dict[str, ApprovedForDecision]:
    """Every approval on ``assessments.decisions`` (of the installation), by assessment id."""
    approvals: dict[str, ApprovedForDecision] = {}
    for record in await read_to_end(kafka, kafka.topic(APPROVALS)):
        try:
            envelope = from_kafka(record.key, record.value, record.headers)
            contract = registry.decode(envelope.type, envelope.data)
        except Exception:  # a record the consumer dead-lettered: it decided nothing
            continue
        if isinstance(contract, ApprovedForDecision):
            approvals[contract.assessment_id] = contract
    return approvals


async def redecide_store(
    database_url: str, schema: str = NAME, inputs: Inputs | None = None
) -> Report:
    """Re-decide every decision in the store of ``schema``."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = PostgresEventStore(pool, schema=schema)
        report = Report()
        async for page in store.replay():
            redecide_events(page, report, inputs)
        return report
    finally:
        await pool.close()


async def _run(settings: ConnectionSettings, schema: str, from_kafka: bool) -> Report:
    inputs = await inputs_from_kafka(settings) if from_kafka else None
    return await redecide_store(settings.database_url, schema, inputs)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the report as JSON; exit 0 when nothing differs, 1 otherwise (2:
    no store to read)."""
    parser = argparse.ArgumentParser(
        prog="redecide",
        description="Re-decide every recorded label decision through its recorded policy"
        " version and inputs, and report the differences (expected: none).",
    )
    parser.add_argument("--schema", default=NAME, help=f"the store's schema (default {NAME})")
    parser.add_argument(
        "--database-url", default=None, help="default: CLR_DATABASE_URL, as the service"
    )
    parser.add_argument(
        "--inputs-from-kafka",
        action="store_true",
        help=f"re-decide decisions recorded without their inputs from {APPROVALS}",
    )
    args = parser.parse_args(argv)
    settings = ConnectionSettings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    try:
        report = asyncio.run(_run(settings, args.schema, args.inputs_from_kafka))
    except asyncpg.UndefinedTableError:
        sys.stderr.write(f"redecide: no event store in schema {args.schema!r} of the database\n")
        return 2
    sys.stdout.write(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
