"""R13 and R14 in the collaboration domain: given events, when a command, then events or error."""

from __future__ import annotations

from datetime import date

import pytest

from clr_events.rules import RuleViolationError
from collaboration.domain import model
from collaboration.domain.events import ProfileFigures
from collaboration.domain.policy import ECCP_2019, PARTNERSHIPS_2020


def organisation(**figures: object) -> model.Organisation:
    values: dict[str, object] = {
        "management_fte": 1.0,
        "committed_members": 30,
        "member_types": ["sme", "research"],
        "english_website": True,
        **figures,
    }
    events = model.register_organisation(
        org_id="org-1",
        name="Cluster One",
        country="DE",
        region=None,
        website="https://one.example.eu",
        sector="Energy",
        eccp_profile_id=None,
        figures=ProfileFigures.model_validate(values),
    )
    return model.Organisation.replay(events)


def messages(error: pytest.ExceptionInfo[RuleViolationError]) -> list[str]:
    return [f"{v.rule}: {v.message}" for v in error.value.violations]


def test_r13_a_profile_meeting_every_criterion_is_validated() -> None:
    (event,) = model.validate_profile(
        organisation(), on=date(2024, 1, 10), criteria=ECCP_2019, waive=False
    )
    assert type(event).__name__ == "ProfileValidated"
    assert event.model_dump()["validated_on"] == date(2024, 1, 10)


def test_r13_every_failed_criterion_is_named() -> None:
    weak = organisation(
        management_fte=0.2, committed_members=9, member_types=["sme"], english_website=False
    )
    with pytest.raises(RuleViolationError) as refused:
        model.validate_profile(weak, on=date(2024, 1, 10), criteria=ECCP_2019, waive=False)
    found = messages(refused)
    assert len(found) == 4
    assert all(m.startswith("R13: ") for m in found)
    assert "0.5 FTE" in found[0] and "0.2" in found[0]
    assert "15 committed members" in found[1]


def test_r13_a_waiver_needs_a_recognised_programme() -> None:
    weak = organisation(management_fte=0.1, committed_members=3)
    with pytest.raises(RuleViolationError) as refused:
        model.validate_profile(weak, on=date(2024, 1, 10), criteria=ECCP_2019, waive=True)
    assert messages(refused) == [
        "R13: a waiver needs the recognised cluster programme the organisation belongs to"
    ]
    waived = organisation(management_fte=0.1, committed_members=3, cluster_programme="go-cluster")
    (event,) = model.validate_profile(waived, on=date(2024, 1, 10), criteria=ECCP_2019, waive=True)
    assert event.model_dump()["waived_by_programme"] == "go-cluster"


def test_r13_validating_twice_records_nothing() -> None:
    org = organisation()
    events = model.validate_profile(org, on=date(2024, 1, 10), criteria=ECCP_2019, waive=False)
    again = model.Organisation.replay([org.registered, *events])
    assert model.validate_profile(again, on=date(2024, 2, 1), criteria=ECCP_2019, waive=False) == []


def form(strand: str, *members: tuple[str, str], unknown: list[str] | None = None) -> list[object]:
    return list(
        model.form_partnership(
            partnership_id="p-1",
            name="Partnership",
            strand=strand,
            call_id="COS-CLUSTPARTNERS-2020",
            members=[model.Member(org_id, country) for org_id, country in members],
            unknown_org_ids=unknown or [],
            start_on=date(2021, 1, 1),
            duration_months=24,
            rules=PARTNERSHIPS_2020,
        )
    )


def test_r14_three_partners_in_eligible_countries_form_a_partnership() -> None:
    (event,) = form("ESCP-4i", ("a", "DE"), ("b", "DE"), ("c", "FR"))
    assert type(event).__name__ == "PartnershipFormed"


def test_r14_fewer_than_three_partners_is_refused() -> None:
    with pytest.raises(RuleViolationError) as refused:
        form("ESCP-4i", ("a", "DE"), ("b", "FR"))
    assert messages(refused) == ["R14: a partnership needs at least 3 partner organisations"]


def test_r14_escp_s3_partners_come_from_three_countries() -> None:
    with pytest.raises(RuleViolationError) as refused:
        form("ESCP-S3", ("a", "DE"), ("b", "DE"), ("c", "FR"))
    assert messages(refused) == [
        "R14: ESCP-S3 partners must come from at least 3 different countries (got 2)"
    ]


def test_r14_partners_outside_the_eu_and_programme_countries_are_refused() -> None:
    with pytest.raises(RuleViolationError) as refused:
        form("ESCP-4x", ("a", "DE"), ("b", "FR"), ("c", "US"), unknown=["ghost"])
    assert messages(refused) == [
        "R14: partner ghost is not a registered cluster organisation",
        "R14: partner c is established in US, not an EU member state or programme country",
    ]


def test_r14_all_27_member_states_are_eligible() -> None:
    from collaboration.domain.policy import EU_MEMBER_STATES

    assert len(EU_MEMBER_STATES) == 27
    assert {"HU", "DE", "HR", "CY"} <= EU_MEMBER_STATES
