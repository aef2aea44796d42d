"""Every collaboration handler on the in-memory unit of work: events, rows, answers, refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pytest

from clr_events.application.memory import InMemoryUnitsOfWork
from clr_events.application.uow import Cause, Result, UnitOfWork, execute
from clr_events.contracts import label_decisions as labels
from clr_events.errors import ConcurrencyError
from clr_events.rules import NotFoundError, RuleViolationError
from collaboration import application as app
from collaboration.domain.policy import ECCP_2019, PARTNERSHIPS_2020
from tests.unit.consumed import consume

Handler = Callable[[UnitOfWork], Awaitable[Result]]


@pytest.fixture
def units() -> InMemoryUnitsOfWork:
    return InMemoryUnitsOfWork()


async def run(units: InMemoryUnitsOfWork, handler: Handler) -> Result:
    return await execute(units, Cause("admin", "corr"), handler)


def figures(**changes: Any) -> app.Figures:
    values: dict[str, Any] = {
        "management_fte": 1.0,
        "committed_members": 30,
        "member_types": ["sme", "research"],
        "english_website": True,
        **changes,
    }
    return app.Figures.model_validate(values)


async def register(
    units: InMemoryUnitsOfWork, org_id: str, country: str = "DE", **fig: Any
) -> None:
    cmd = app.RegisterOrganisation(
        org_id=org_id, name=f" {org_id} ", country=country, sector="Energy", figures=figures(**fig)
    )
    await run(units, lambda uow: app.register_organisation(cmd, uow))


def types(units: InMemoryUnitsOfWork, stream_id: str) -> list[str]:
    return [row.type for row in units.store.rows if row.stream_id == stream_id]


async def test_register_organisation_stores_the_profile_and_its_index_row(
    units: InMemoryUnitsOfWork,
) -> None:
    cmd = app.RegisterOrganisation(
        org_id="org-1", name=" One ", country="DE", sector=" Energy ", figures=figures()
    )
    result = await run(units, lambda uow: app.register_organisation(cmd, uow))
    assert result == Result(201, {"org_id": "org-1", "stream_version": 1})
    assert types(units, "organisation:org-1") == ["OrganisationRegistered"]
    assert units.store.rows[0].metadata_json == '{"actor":"admin","correlation_id":"corr"}'
    assert units.tables["organisations"] == [
        {"org_id": "org-1", "name": "One", "country": "DE", "sector": "Energy"}
    ]
    with pytest.raises(ConcurrencyError):  # the id is taken: nothing changes
        await run(units, lambda uow: app.register_organisation(cmd, uow))
    assert len(units.store.rows) == 1


async def test_register_organisation_without_an_id_gets_one(units: InMemoryUnitsOfWork) -> None:
    cmd = app.RegisterOrganisation(name="One", country="DE", sector="Energy", figures=figures())
    result = await run(units, lambda uow: app.register_organisation(cmd, uow))
    assert types(units, f"organisation:{result.body['org_id']}") == ["OrganisationRegistered"]


async def test_update_figures_records_a_change_and_nothing_when_unchanged(
    units: InMemoryUnitsOfWork,
) -> None:
    await register(units, "org-1")
    changed = app.UpdateFigures(org_id="org-1", figures=figures(committed_members=40))
    assert await run(units, lambda uow: app.update_figures(changed, uow)) == Result(
        200, {"org_id": "org-1", "stream_version": 2}
    )
    assert await run(units, lambda uow: app.update_figures(changed, uow)) == Result(
        200, {"org_id": "org-1"}
    )
    missing = app.UpdateFigures(org_id="nobody", figures=figures())
    with pytest.raises(NotFoundError):
        await run(units, lambda uow: app.update_figures(missing, uow))


async def test_validate_profile_validates_once_and_marks_the_index(
    units: InMemoryUnitsOfWork,
) -> None:
    await register(units, "org-1")
    cmd = app.ValidateProfile(
        org_id="org-1", validation=app.Validate(validated_on=date(2024, 1, 10))
    )
    first = await run(units, lambda uow: app.validate_profile(cmd, uow, criteria=ECCP_2019))
    assert first == Result(
        201, {"org_id": "org-1", "validated_on": "2024-01-10", "stream_version": 2}
    )
    assert units.tables["organisations"][0]["validated_on"] == date(2024, 1, 10)
    later = app.ValidateProfile(
        org_id="org-1", validation=app.Validate(validated_on=date(2024, 5, 1))
    )
    again = await run(units, lambda uow: app.validate_profile(later, uow, criteria=ECCP_2019))
    assert again == Result(200, {"org_id": "org-1", "validated_on": "2024-01-10"})
    assert types(units, "organisation:org-1") == ["OrganisationRegistered", "ProfileValidated"]


async def test_validate_profile_refuses_a_weak_profile_and_stores_nothing(
    units: InMemoryUnitsOfWork,
) -> None:
    await register(units, "org-1", committed_members=3)
    cmd = app.ValidateProfile(
        org_id="org-1", validation=app.Validate(validated_on=date(2024, 1, 10))
    )
    with pytest.raises(RuleViolationError) as refused:
        await run(units, lambda uow: app.validate_profile(cmd, uow, criteria=ECCP_2019))
    assert [v.rule for v in refused.value.violations] == ["R13"]
    assert units.tables["organisations"][0].get("validated_on") is None


async def test_form_partnership_checks_partners_against_the_index(
    units: InMemoryUnitsOfWork,
) -> None:
    for org_id, country in (("a", "DE"), ("b", "FR"), ("c", "IT")):
        await register(units, org_id, country)
    cmd = app.FormPartnership(
        partnership_id="p-1",
        name="Partnership",
        strand="ESCP-S3",
        call_id="COS-2020",
        member_org_ids=["a", "b", "c"],
        start_on=date(2021, 1, 1),
        duration_months=24,
    )
    result = await run(units, lambda uow: app.form_partnership(cmd, uow, rules=PARTNERSHIPS_2020))
    assert result == Result(201, {"partnership_id": "p-1", "stream_version": 1})
    unknown = cmd.model_copy(update={"partnership_id": "p-2", "member_org_ids": ["a", "b", "x"]})
    with pytest.raises(RuleViolationError) as refused:
        await run(units, lambda uow: app.form_partnership(unknown, uow, rules=PARTNERSHIPS_2020))
    assert "partner x is not a registered cluster organisation" in str(refused.value)


async def test_add_partner_joins_a_known_organisation(units: InMemoryUnitsOfWork) -> None:
    for org_id, country in (("a", "DE"), ("b", "FR"), ("c", "IT"), ("d", "ES")):
        await register(units, org_id, country)
    formed = app.FormPartnership(
        partnership_id="p-1",
        name="Partnership",
        strand="ESCP-4i",
        call_id="COS-2020",
        member_org_ids=["a", "b", "c"],
        start_on=date(2021, 1, 1),
        duration_months=24,
    )
    await run(units, lambda uow: app.form_partnership(formed, uow, rules=PARTNERSHIPS_2020))

    def join(org_id: str, partnership_id: str = "p-1") -> app.JoinPartnership:
        partner = app.AddPartner(org_id=org_id, joined_on=date(2022, 1, 1))
        return app.JoinPartnership(partnership_id=partnership_id, partner=partner)

    result = await run(units, lambda uow: app.add_partner(join("d"), uow, rules=PARTNERSHIPS_2020))
    assert result == Result(201, {"partnership_id": "p-1", "stream_version": 2})
    with pytest.raises(RuleViolationError):  # already a partner
        await run(units, lambda uow: app.add_partner(join("d"), uow, rules=PARTNERSHIPS_2020))
    with pytest.raises(NotFoundError, match="no organisation 'x'"):
        await run(units, lambda uow: app.add_partner(join("x"), uow, rules=PARTNERSHIPS_2020))
    with pytest.raises(NotFoundError, match="partnership"):
        await run(
            units, lambda uow: app.add_partner(join("d", "p-9"), uow, rules=PARTNERSHIPS_2020)
        )


async def test_sign_agreement_and_its_extension(units: InMemoryUnitsOfWork) -> None:
    first = app.SignAgreement(
        agreement_id="ag-1", parties=["One", "Two"], third_country="JP", signed_on=date(2023, 1, 1)
    )
    result = await run(units, lambda uow: app.sign_agreement(first, uow, rules=PARTNERSHIPS_2020))
    assert result == Result(201, {"agreement_id": "ag-1", "stream_version": 1})
    extension = first.model_copy(
        update={"agreement_id": "ag-2", "extends": "ag-1", "signed_on": date(2024, 1, 1)}
    )
    await run(units, lambda uow: app.sign_agreement(extension, uow, rules=PARTNERSHIPS_2020))
    assert types(units, "agreement:ag-2") == ["CooperationAgreementSigned"]
    dangling = extension.model_copy(update={"agreement_id": "ag-3", "extends": "ag-9"})
    with pytest.raises(RuleViolationError, match="ag-9 to extend does not exist"):
        await run(units, lambda uow: app.sign_agreement(dangling, uow, rules=PARTNERSHIPS_2020))


async def test_record_matchmaking_names_unknown_participants(units: InMemoryUnitsOfWork) -> None:
    await register(units, "a")
    cmd = app.RecordMatchmaking(
        event_id="m-1",
        theme="Energy",
        held_on=date(2024, 3, 1),
        countries=["DE", "JP"],
        participant_org_ids=["a"],
        meetings_b2b=4,
    )
    result = await run(units, lambda uow: app.record_matchmaking(cmd, uow))
    assert result == Result(201, {"event_id": "m-1", "stream_version": 1})
    ghost = cmd.model_copy(update={"event_id": "m-2", "participant_org_ids": ["a", "ghost"]})
    with pytest.raises(RuleViolationError, match="participant ghost"):
        await run(units, lambda uow: app.record_matchmaking(ghost, uow))
    assert types(units, "matchmaking:m-2") == []


def awarded(level: str) -> labels.LabelAwarded:
    """Organisation org-1's award at ``level``, valid to 2026-03-31, renewable to 2027-03-31."""
    return labels.LabelAwarded(
        org_id="org-1",
        level=level,
        expert_ids=[],
        decided_by="b",
        assessment_id="a-1",
        assessed_on=date(2024, 3, 5),
        awarded_on=date(2024, 4, 2),
        valid_until=date(2026, 3, 31),
        renewal_deadline=date(2027, 3, 31),
        policy_version="2026.2",
    )


async def test_the_label_handlers_keep_each_labels_latest_state(
    units: InMemoryUnitsOfWork,
) -> None:
    common = {"org_id": "org-1", "level": "bronze", "expert_ids": [], "decided_by": "b"}
    award = awarded("bronze")
    renewal = labels.LabelRenewed(
        **common,
        assessment_id="a-2",
        assessed_on=date(2026, 2, 1),
        renewed_on=date(2026, 2, 20),
        previous_valid_until=date(2026, 3, 31),
        valid_until=date(2029, 3, 31),
        renewal_deadline=date(2030, 3, 31),
        policy_version="2026.2",
    )
    await consume(units, app.CONSUMED, award, 1)
    await consume(units, app.CONSUMED, renewal, 2)
    await consume(units, app.CONSUMED, award, 1)  # late: changes nothing
    withdrawal = labels.LabelWithdrawn(
        org_id="org-1", level="bronze", reason="r", withdrawn_on=date(2026, 6, 1), withdrawn_by="b"
    )
    await consume(units, app.CONSUMED, withdrawal, 3)
    await consume(units, app.CONSUMED, withdrawal.model_copy(update={"level": "gold"}), 1)
    assert units.tables["organisation_labels"] == [
        {
            "org_id": "org-1",
            "level": "bronze",
            "valid_until": date(2029, 3, 31),
            "renewal_deadline": date(2030, 3, 31),
            "withdrawn_on": date(2026, 6, 1),
            "expired": False,
            "stream_version": 3,
        }
    ]


async def test_a_correction_moves_the_validity_and_an_expiry_marks_it_late_ones_change_nothing(
    units: InMemoryUnitsOfWork,
) -> None:
    await consume(units, app.CONSUMED, awarded("silver"), 1)
    correction = labels.LabelRecordCorrected(
        org_id="org-1",
        level="silver",
        previous_valid_until=date(2026, 3, 31),
        valid_until=date(2026, 1, 31),
        renewal_deadline=date(2027, 1, 31),
        reason="typo in the decision",
        corrected_by="board",
    )
    await consume(units, app.CONSUMED, correction, 2)
    expiry = labels.LabelExpired(
        org_id="org-1", level="silver", valid_until=date(2026, 1, 31), expired_on=date(2026, 2, 1)
    )
    await consume(units, app.CONSUMED, expiry, 3)
    late = correction.model_copy(update={"valid_until": date(2030, 1, 1)})
    await consume(units, app.CONSUMED, late, 2)  # redelivered after the expiry: nothing
    assert units.tables["organisation_labels"] == [
        {
            "org_id": "org-1",
            "level": "silver",
            "valid_until": date(2026, 1, 31),
            "renewal_deadline": date(2027, 1, 31),
            "withdrawn_on": None,
            "expired": True,
            "stream_version": 3,
        }
    ]
