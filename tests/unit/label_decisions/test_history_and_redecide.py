"""A record on a past day from its history (valid time), as recorded at a past moment
(transaction time), and the recorded decisions re-decided through their recorded policy."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points

from clr_events.application.memory import InMemoryUnitsOfWork
from clr_events.application.uow import Cause, execute
from label_decisions import application as app
from label_decisions import redecide
from label_decisions.application import Correction, CorrectLabel, Withdrawal, WithdrawLabel
from label_decisions.domain.label_record import LabelRecord
from label_decisions.domain.policy import POLICY_2026_1, POLICY_2026_2, Level
from label_decisions.redecide import redecide_events
from tests.unit.label_decisions.test_handlers import POLICY, approval, decide, run

ORG = "org-1"


async def record_as(units: InMemoryUnitsOfWork, recorded_at: datetime | None = None) -> LabelRecord:
    async with units.begin(Cause("reader", "corr")) as uow:
        return await app.load(uow, ORG, Level.BRONZE, recorded_at)


def view(record: LabelRecord, on: date) -> tuple[str, date | None]:
    shown = app.view(record, POLICY, on)
    return shown["status"], shown["valid_until"]


async def correct(units: InMemoryUnitsOfWork, valid_until: date) -> None:
    cmd = CorrectLabel(
        org_id=ORG,
        level=Level.BRONZE,
        correction=Correction(valid_until=valid_until, reason="typo"),
    )
    await run(units, lambda uow: app.correct_label(cmd, uow, policy=POLICY, today=date(2024, 6, 1)))


async def test_a_past_day_shows_the_record_as_its_history_made_it() -> None:
    units = InMemoryUnitsOfWork()
    # awarded on approval 2024-04-20, valid until 2026-03-31
    await decide(units, approval())
    record = await record_as(units)
    assert record.period_on(date(2005, 1, 1), POLICY) is None
    assert view(record, date(2005, 1, 1)) == ("none", None)
    assert view(record, date(2024, 4, 19)) == ("none", None)
    assert view(record, date(2024, 4, 20)) == ("valid", date(2026, 3, 31))
    # lapsed past its window, then awarded anew: the gap is expired, not valid
    await decide(
        units, approval("a-2", conducted_on=date(2027, 6, 1), approved_on=date(2027, 7, 1))
    )
    record = await record_as(units)
    assert view(record, date(2027, 5, 1)) == ("expired", date(2026, 3, 31))
    assert view(record, date(2026, 6, 1)) == ("in_renewal_window", date(2026, 3, 31))
    assert view(record, date(2027, 7, 1)) == ("valid", date(2029, 6, 30))


async def test_as_recorded_at_shows_the_record_before_a_correction_of_a_past_validity() -> None:
    units = InMemoryUnitsOfWork()
    await decide(units, approval())
    await correct(units, date(2025, 9, 30))  # the validity ended earlier than recorded
    # the store stamps its own time; set the two moments apart, as a day apart
    award, correction = units.store.rows
    moment = datetime(2024, 4, 20, 12, tzinfo=UTC)
    units.store.rows[0] = award._replace(recorded_at=moment)
    units.store.rows[1] = correction._replace(recorded_at=moment + timedelta(days=1))

    now = await record_as(units)
    assert view(now, date(2025, 12, 1)) == ("in_renewal_window", date(2025, 9, 30))
    before = await record_as(units, moment + timedelta(hours=1))
    assert view(before, date(2025, 12, 1)) == ("valid", date(2026, 3, 31))
    assert await record_as(units, moment - timedelta(seconds=1)) == LabelRecord(ORG, Level.BRONZE)


async def test_every_recorded_decision_is_re_decided_alike() -> None:
    units = InMemoryUnitsOfWork()
    await decide(units, approval())
    await decide(
        units, approval("a-2", conducted_on=date(2025, 10, 1), approved_on=date(2025, 10, 2))
    )
    await decide(units, approval("a-3", indicator_count=30))  # a refusal (R2)
    await correct(units, date(2029, 6, 30))
    withdrawal = WithdrawLabel(
        org_id=ORG,
        level=Level.BRONZE,
        withdrawal=Withdrawal(reason="misconduct", withdrawn_on=date(2025, 11, 1)),
    )
    await run(
        units,
        lambda uow: app.withdraw_label(withdrawal, uow, policy=POLICY, today=date(2024, 6, 1)),
    )
    # a decision of the older policy: recorded by its version, re-decided by it
    older = approval("b-1", org_id="org-2", approved_on=date(2024, 4, 21))
    await execute(
        units,
        Cause("label_decisions", "corr"),
        lambda uow: app.decide_on_approval(older, uow, policy=POLICY_2026_1),
    )

    report = redecide_events(await units.store.read_all(0, 100))

    assert report.ok, report.differences
    assert (report.events, report.decisions, report.redecided) == (6, 4, 4)
    assert [r.type for r in units.store.rows][:3] == [
        "LabelAwarded",
        "LabelRenewed",
        "LabelRefused",
    ]


async def test_a_tampered_decision_and_a_changed_rule_are_reported() -> None:
    units = InMemoryUnitsOfWork()
    await decide(units, approval())
    (row,) = units.store.rows
    data = json.loads(row.data_json)
    assert data["policy_fingerprint"] == POLICY_2026_2.fingerprint
    assert data["approval"]["assessment_id"] == "a-1"
    units.store.rows[0] = row._replace(data_json=json.dumps({**data, "valid_until": "2027-03-31"}))

    report = redecide_events(await units.store.read_all(0, 100))

    assert [(d.position, d.field, d.recorded, d.redecided) for d in report.differences] == [
        (1, "valid_until", "2027-03-31", "2026-03-31")
    ]
    # a decision recorded under a fingerprint the code no longer has: a rule changed
    units.store.rows[0] = row._replace(
        data_json=json.dumps({**data, "policy_fingerprint": "sha256:" + "0" * 64})
    )
    assert [d.field for d in redecide_events(await units.store.read_all(0, 100)).differences] == [
        "policy_fingerprint"
    ]


async def test_a_decision_recorded_without_its_inputs_is_counted_not_compared() -> None:
    units = InMemoryUnitsOfWork()
    await decide(units, approval())
    (row,) = units.store.rows
    data = json.loads(row.data_json)
    del data["approval"], data["policy_fingerprint"]
    units.store.rows[0] = row._replace(data_json=json.dumps(data))

    stored = await units.store.read_all(0, 100)

    report = redecide_events(stored)
    assert report.ok
    assert (report.decisions, report.redecided, report.without_inputs) == (1, 0, 1)
    # with the approvals the service received (from assessments.decisions), it is
    # re-decided; the fingerprint it was recorded without is counted, not compared
    report = redecide_events(stored, inputs={"a-1": approval()})
    assert report.ok, report.differences
    assert (report.redecided, report.inputs_from_kafka, report.without_inputs) == (1, 1, 0)
    assert report.not_recorded == {"policy_fingerprint": 1}
    # and a different approval under the same id is a difference
    other = approval(conducted_on=date(2024, 1, 14))
    changed = redecide_events(stored, inputs={"a-1": other}).differences
    assert {d.field for d in changed} == {"assessed_on", "valid_until", "renewal_deadline"}


async def test_a_row_altered_into_no_event_is_named() -> None:
    units = InMemoryUnitsOfWork()
    await decide(units, approval())
    (row,) = units.store.rows
    units.store.rows[0] = row._replace(data_json=json.dumps({"org_id": "org-1"}))

    report = redecide_events(await units.store.read_all(0, 100))

    assert [(d.position, d.field) for d in report.differences] == [(1, "event")]


def test_redecide_is_an_audit_command() -> None:
    (command,) = [e for e in entry_points(group="clr_audit.commands") if e.name == "redecide"]
    assert command.load() is redecide.main
