"""Every assessments handler on the in-memory unit of work, with the reference facts put
in its tables by the reference consumer's own handlers; and those handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pytest

from assessments import application as app
from assessments import service
from assessments.domain.policy import RULES_2026_1
from clr_events.application.memory import InMemoryRows, InMemoryUnitsOfWork
from clr_events.application.uow import Cause, Result, UnitOfWork, execute
from clr_events.contracts import collaboration as orgs
from clr_events.contracts import training_certification as people
from clr_events.envelope import Envelope
from clr_events.errors import ConcurrencyError
from clr_events.registry import Contract
from clr_events.rules import ConflictError, NotFoundError, RuleViolationError
from tests.unit.consumed import consume

Handler = Callable[[UnitOfWork], Awaitable[Result]]
RULES = RULES_2026_1


async def learn(units: InMemoryUnitsOfWork, event: Contract) -> Envelope:
    """Deliver ``event`` to the reference handlers as the consumer would; its envelope."""
    arrived, _ = await consume(units, app.CONSUMED, event)
    return arrived


async def learned(units: InMemoryUnitsOfWork) -> None:
    """What the reference consumer learns of organisation org-1 and experts at and de."""
    await learn(
        units,
        orgs.OrganisationRegistered(org_id="org-1", name="One", country="DE", sector="Energy"),
    )
    await learn(
        units,
        orgs.ProfileValidated(
            org_id="org-1", validated_on=date(2020, 5, 1), criteria_version="eccp-2019"
        ),
    )
    for person_id, country, roles in (
        ("at", "AT", ["benchmarking_expert", "gold_assessor", "silver_auditor"]),
        ("de", "DE", ["benchmarking_expert", "gold_assessor", "trainer"]),
    ):
        await learn(
            units,
            people.PersonRegistered(
                person_id=person_id, name=person_id, country=country, affiliation_org_ids=[]
            ),
        )
        for role in roles:
            await learn(
                units,
                people.ExpertCertified(
                    person_id=person_id,
                    role=role,
                    valid_from=date(2012, 1, 1),
                    valid_until=date(2025, 12, 31),
                    certified_by="admin",
                ),
            )
            await learn(
                units,
                people.CertificationRenewed(
                    person_id=person_id, role=role, valid_until=date(2030, 12, 31)
                ),
            )
    await learn(
        units,
        people.CertificationRevoked(
            person_id="de", role="trainer", revoked_on=date(2020, 1, 1), reason="left"
        ),
    )


@pytest.fixture
async def units() -> InMemoryUnitsOfWork:
    created = InMemoryUnitsOfWork()
    await learned(created)
    return created


async def run(units: InMemoryUnitsOfWork, handler: Handler) -> Result:
    return await execute(units, Cause("assessor", "corr"), handler)


def bronze(assessment_id: str, on: date, **changes: Any) -> app.Bronze:
    values: dict[str, Any] = {
        "assessment_id": assessment_id,
        "org_id": "org-1",
        "expert_id": "at",
        "conducted_on": on,
        "mode": "video",
        "ratings": ["green"] * 36,
        **changes,
    }
    return app.Bronze.model_validate(values)


async def record_bronze(units: InMemoryUnitsOfWork, cmd: app.Bronze) -> Result:
    return await run(units, lambda uow: app.record_bronze(cmd, uow, rules=RULES))


async def test_record_bronze_stores_the_stream_and_indexes_it(units: InMemoryUnitsOfWork) -> None:
    result = await record_bronze(units, bronze("b-1", date(2024, 3, 5)))
    assert result == Result(201, {"assessment_id": "b-1", "criteria_version": "bronze-2019"})
    assert [(r.stream_id, r.type) for r in units.store.rows] == [
        ("assessment:b-1", "BenchmarkingInterviewConducted")
    ]
    assert units.tables["assessments"] == [
        {
            "assessment_id": "b-1",
            "org_id": "org-1",
            "kind": "bronze_benchmarking",
            "conducted_on": date(2024, 3, 5),
            "expert_ids": ["at"],
            "criteria_version": "bronze-2019",
        }
    ]
    with pytest.raises(ConcurrencyError):  # the id is taken
        await record_bronze(units, bronze("b-1", date(2024, 3, 6)))


async def test_record_bronze_checks_the_facts_the_consumer_learned(
    units: InMemoryUnitsOfWork,
) -> None:
    with pytest.raises(RuleViolationError) as refused:
        await record_bronze(units, bronze("b-1", date(2024, 3, 5), org_id="org-9", expert_id="x"))
    assert {v.rule for v in refused.value.violations} >= {"R1", "R9"}
    assert units.store.rows == []
    assert "assessments" not in units.tables


async def test_record_silver_finds_its_two_benchmarkings_in_the_index(
    units: InMemoryUnitsOfWork,
) -> None:
    await record_bronze(units, bronze("b-1", date(2023, 6, 1)))
    await record_bronze(units, bronze("b-2", date(2025, 1, 10)))
    cmd = app.Silver(
        assessment_id="s-1",
        org_id="org-1",
        auditor_id="at",
        conducted_on=date(2025, 1, 10),
        first_benchmarking_id="b-1",
        second_benchmarking_id="b-2",
        improvement_areas=["strategy", "services", "financing"],
        areas_validated=[True, True, True],
        baseline_met=True,
    )
    result = await run(units, lambda uow: app.record_silver(cmd, uow, rules=RULES))
    assert result.body == {"assessment_id": "s-1", "criteria_version": "silver-2019"}
    missing = cmd.model_copy(update={"assessment_id": "s-2", "first_benchmarking_id": "b-9"})
    with pytest.raises(RuleViolationError, match="first benchmarking is not"):
        await run(units, lambda uow: app.record_silver(missing, uow, rules=RULES))


def gold(assessment_id: str, on: date, days: int) -> app.Gold:
    return app.Gold.model_validate(
        {
            "assessment_id": assessment_id,
            "org_id": "org-1",
            "expert_ids": ["at", "de"],
            "conducted_on": on,
            "indicators": [{"code": f"G{i}", "score": 4, "threshold": 3} for i in range(31)],
            "score_pct": 88.0,
            "on_site_days": days,
            "evidence_documents": 9,
        }
    )


async def test_record_gold_knows_a_renewal_from_the_earlier_golds_in_the_index(
    units: InMemoryUnitsOfWork,
) -> None:
    first = gold("g-1", date(2022, 6, 3), days=2)
    await run(units, lambda uow: app.record_gold(first, uow, rules=RULES))
    approval = app.ApproveAssessment(
        assessment_id="g-1", approval=app.Approval(approved_on=date(2022, 7, 1))
    )
    await run(units, lambda uow: app.approve_assessment(approval, uow))
    renewal = gold("g-2", date(2025, 6, 3), days=1)
    result = await run(units, lambda uow: app.record_gold(renewal, uow, rules=RULES))
    assert result.body == {"assessment_id": "g-2", "criteria_version": "gold-2020"}


async def test_approve_once_and_index_the_approval(units: InMemoryUnitsOfWork) -> None:
    await record_bronze(units, bronze("b-1", date(2024, 3, 5)))
    cmd = app.ApproveAssessment(
        assessment_id="b-1", approval=app.Approval(approved_on=date(2024, 4, 1))
    )
    result = await run(units, lambda uow: app.approve_assessment(cmd, uow))
    assert result == Result(201, {"assessment_id": "b-1", "approved_on": "2024-04-01"})
    assert units.tables["assessments"][0]["approved_on"] == date(2024, 4, 1)
    approved = units.store.rows[-1]
    assert approved.type == "AssessmentApproved"
    assert '"profile_validated_on":"2020-05-01"' in approved.data_json
    with pytest.raises(ConflictError):
        await run(units, lambda uow: app.approve_assessment(cmd, uow))
    await record_bronze(units, bronze("b-2", date(2024, 3, 5)))
    early = app.ApproveAssessment(
        assessment_id="b-2", approval=app.Approval(approved_on=date(2024, 1, 1))
    )
    with pytest.raises(RuleViolationError, match="cannot precede"):
        await run(units, lambda uow: app.approve_assessment(early, uow))
    assert units.tables["assessments"][1].get("approved_on") is None
    missing = cmd.model_copy(update={"assessment_id": "b-9"})
    with pytest.raises(NotFoundError):
        await run(units, lambda uow: app.approve_assessment(missing, uow))


async def test_the_reference_handlers_keep_what_the_commands_read(
    units: InMemoryUnitsOfWork,
) -> None:
    async with units.begin(Cause("t", "t")) as uow:
        org = await app.known_organisation(uow.rows, "org-1")
        found = await app.known_experts(uow.rows, ["at", "de", "nobody"])
    assert org is not None and (org.country, org.validated_on) == ("DE", date(2020, 5, 1))
    assert set(found) == {"at", "de"}
    assert found["de"].certifications["gold_assessor"].valid_until == date(2030, 12, 31)
    assert found["de"].certifications["trainer"].revoked_on == date(2020, 1, 1)
    again = people.PersonRegistered(person_id="at", name="x", country="FR", affiliation_org_ids=[])
    await learn(units, again)  # a repeat changes nothing
    changed = people.AffiliationsChanged(
        person_id="at", affiliation_org_ids=["org-1"], changed_on=date(2024, 1, 1)
    )
    await learn(units, changed)
    (at,) = await InMemoryRows(units.tables).find(
        "known_experts", ("country", "affiliations"), person_id="at"
    )
    assert at == {"country": "AT", "affiliations": ["org-1"]}


async def test_an_approval_names_the_person_and_the_certifications_relied_on(
    units: InMemoryUnitsOfWork,
) -> None:
    await record_bronze(units, bronze("b-1", date(2024, 3, 5)))
    (conducted,) = await units.store.read_stream("assessment:b-1")
    (relied,) = conducted.data["certifications"]
    async with units.begin(Cause("t", "t")) as uow:
        known = (await app.known_experts(uow.rows, ["at"]))["at"]
    cert = known.certifications["benchmarking_expert"]
    assert cert.certification_id is not None and cert.certification_id.startswith("ev-")
    assert relied == {
        "expert_id": "at",
        "role": "benchmarking_expert",
        "valid_from": "2012-01-01",
        "valid_until": "2030-12-31",
        "certification_id": cert.certification_id,
        "as_of_position": cert.as_of_position,
    }
    cmd = app.ApproveAssessment(
        assessment_id="b-1",
        approval=app.Approval(approved_on=date(2024, 4, 1), approver="typed in the body"),
    )
    board = Cause("board-member@eucles", "corr")
    await execute(units, board, lambda uow: app.approve_assessment(cmd, uow))
    _, approved = await units.store.read_stream("assessment:b-1")
    assert approved.data["approved_by"] == "board-member@eucles"  # the actor, not the body
    assert approved.data["approver"] == "typed in the body"
    assert approved.data["certifications"] == [relied]
    decision = service.DECISIONS(approved)
    assert decision is not None
    assert decision.data["approved_by"] == "board-member@eucles"
    assert decision.data["certifications"] == [relied]
