"""Every label decisions handler on the in-memory unit of work: the consumer's decision,
the board's withdrawal and correction, the clock's expiry, and the records index."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import orjson
import pytest

from clr_events.application.memory import InMemoryUnitsOfWork
from clr_events.application.uow import Cause, Result, UnitOfWork, execute
from clr_events.contracts.assessments import ApprovedForDecision
from clr_events.rules import NotFoundError, RuleViolationError
from label_decisions import application as app
from label_decisions import service
from label_decisions.domain.policy import POLICY_2026_2, Level
from tests.unit.consumed import consume

Handler = Callable[[UnitOfWork], Awaitable[Result]]
POLICY = POLICY_2026_2
TODAY = date(2024, 6, 1)


@pytest.fixture
def units() -> InMemoryUnitsOfWork:
    return InMemoryUnitsOfWork()


async def run(units: InMemoryUnitsOfWork, handler: Handler, actor: str = "board") -> Result:
    return await execute(units, Cause(actor, "corr"), handler)


def approval(aid: str = "a-1", **changes: Any) -> ApprovedForDecision:
    values: dict[str, Any] = {
        "assessment_id": aid,
        "org_id": "org-1",
        "kind": "bronze_benchmarking",
        "level": "bronze",
        "conducted_on": date(2024, 3, 14),
        "approved_on": date(2024, 4, 20),
        "approver": "EUCLES board",
        "expert_ids": ["expert-1"],
        "criteria_version": "bronze-2019",
        "profile_validated_on": date(2023, 1, 1),
        "indicator_count": 36,
        **changes,
    }
    return ApprovedForDecision.model_validate(values)


async def decide(units: InMemoryUnitsOfWork, event: ApprovedForDecision) -> Result:
    """Deliver the approval to the service's consumer handlers, as the consumer would; what
    it records is caused by the approval, in the approval's correlation chain."""
    before = len(units.store.rows)
    arrived, result = await consume(units, app.consumed(POLICY), event)
    for row in units.store.rows[before:]:
        metadata = orjson.loads(row.metadata_json)
        assert (metadata["causation_id"], metadata["correlation_id"]) == (
            arrived.id,
            arrived.correlationid,
        )
    assert result is not None
    return result


def record_row(units: InMemoryUnitsOfWork) -> dict[str, Any]:
    (row,) = units.tables["records"]
    return row


async def test_an_approval_awards_a_label_once_and_indexes_the_record(
    units: InMemoryUnitsOfWork,
) -> None:
    assert await decide(units, approval()) == Result(200, {"events": ["LabelAwarded"]})
    assert [(r.stream_id, r.type) for r in units.store.rows] == [("org-1:bronze", "LabelAwarded")]
    assert record_row(units) == {
        "org_id": "org-1",
        "level": "bronze",
        "valid_until": date(2026, 3, 31),
        "withdrawn_on": None,
        "expired_until": None,
        "stream_version": 1,
    }
    assert await decide(units, approval()) == Result(200, {"events": []})  # decided before
    assert len(units.store.rows) == 1


async def test_an_approval_that_breaks_the_rules_is_recorded_as_a_refusal(
    units: InMemoryUnitsOfWork,
) -> None:
    assert await decide(units, approval(profile_validated_on=None)) == Result(
        200, {"events": ["LabelRefused"]}
    )
    assert record_row(units)["valid_until"] is None


async def test_the_board_withdraws_a_label_with_its_name_on_it(
    units: InMemoryUnitsOfWork,
) -> None:
    await decide(units, approval())
    cmd = app.WithdrawLabel(
        org_id="org-1",
        level=Level.BRONZE,
        withdrawal=app.Withdrawal(reason="fraud", withdrawn_on=date(2024, 5, 1)),
    )
    result = await run(units, lambda uow: app.withdraw_label(cmd, uow, policy=POLICY, today=TODAY))
    assert result.status == 201
    assert result.body["status"] == "withdrawn"
    assert result.body["withdrawn_on"] == "2024-05-01"
    assert '"withdrawn_by":"board"' in units.store.rows[-1].data_json
    assert record_row(units)["withdrawn_on"] == date(2024, 5, 1)
    with pytest.raises(RuleViolationError):
        await run(units, lambda uow: app.withdraw_label(cmd, uow, policy=POLICY, today=TODAY))
    nobody = cmd.model_copy(update={"org_id": "org-9"})
    with pytest.raises(NotFoundError):
        await run(units, lambda uow: app.withdraw_label(nobody, uow, policy=POLICY, today=TODAY))


async def test_a_correction_compensates_the_validity(units: InMemoryUnitsOfWork) -> None:
    await decide(units, approval())
    cmd = app.CorrectLabel(
        org_id="org-1",
        level=Level.BRONZE,
        correction=app.Correction(valid_until=date(2026, 4, 30), reason="typo"),
    )
    result = await run(units, lambda uow: app.correct_label(cmd, uow, policy=POLICY, today=TODAY))
    assert result.body["valid_until"] == "2026-04-30"
    assert result.body["status"] == "valid"
    assert [r.type for r in units.store.rows] == ["LabelAwarded", "LabelRecordCorrected"]
    assert record_row(units)["valid_until"] == date(2026, 4, 30)
    assert record_row(units)["stream_version"] == 2


async def test_the_clock_expires_a_passed_label_once(units: InMemoryUnitsOfWork) -> None:
    await decide(units, approval())
    early = app.ExpireLabel(org_id="org-1", level=Level.BRONZE, today=date(2026, 3, 31))
    assert await run(units, lambda uow: app.expire_label(early, uow, policy=POLICY)) == Result(
        200, {"expired": 0}
    )
    due = app.ExpireLabel(org_id="org-1", level=Level.BRONZE, today=date(2026, 4, 1))
    assert await run(units, lambda uow: app.expire_label(due, uow, policy=POLICY)) == Result(
        200, {"expired": 1}
    )
    assert await run(units, lambda uow: app.expire_label(due, uow, policy=POLICY)) == Result(
        200, {"expired": 0}
    )
    assert record_row(units)["expired_until"] == date(2026, 3, 31)


async def test_decisions_carry_their_provenance_to_the_public_contract(
    units: InMemoryUnitsOfWork,
) -> None:
    relied = {
        "expert_id": "expert-1",
        "role": "benchmarking_expert",
        "valid_from": "2020-01-01",
        "valid_until": "2027-12-31",
        "certification_id": "0b5c6a0e-cert",
        "as_of_position": 42,
    }
    await decide(units, approval(approved_by="anna@eucles", certifications=[relied]))
    await decide(
        units,
        approval(
            "a-2",
            level="silver",
            kind="silver_audit",
            profile_validated_on=None,
            approved_by="anna@eucles",
            certifications=[relied],
        ),
    )
    awarded = (await units.store.read_stream("org-1:bronze"))[0]
    refused = (await units.store.read_stream("org-1:silver"))[0]
    for stored in (awarded, refused):
        assert stored.data["approved_by"] == "anna@eucles"
        assert stored.data["certifications"] == [relied]
        assert stored.data["policy_version"] == POLICY.version
    public = service.TRANSLATE(awarded)
    assert public is not None
    assert (public.data["approved_by"], public.data["certifications"]) == ("anna@eucles", [relied])
    assert service.TRANSLATE(refused) is None  # refusals stay private
    due = app.ExpireLabel(org_id="org-1", level=Level.BRONZE, today=date(2026, 4, 1))
    await run(units, lambda uow: app.expire_label(due, uow, policy=POLICY), "label_decisions")
    expired = (await units.store.read_stream("org-1:bronze"))[-1]
    assert expired.type == "LabelExpired" and expired.data["policy_version"] == POLICY.version


async def test_a_withdrawal_carries_the_policy_version(units: InMemoryUnitsOfWork) -> None:
    await decide(units, approval())
    cmd = app.WithdrawLabel(
        org_id="org-1",
        level=Level.BRONZE,
        withdrawal=app.Withdrawal(reason="fraud", withdrawn_on=date(2024, 5, 1)),
    )
    await run(units, lambda uow: app.withdraw_label(cmd, uow, policy=POLICY, today=TODAY))
    withdrawn = (await units.store.read_stream("org-1:bronze"))[-1]
    assert withdrawn.data["policy_version"] == POLICY.version
    public = service.TRANSLATE(withdrawn)
    assert public is not None and public.data["policy_version"] == POLICY.version
