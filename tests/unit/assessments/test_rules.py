"""R1, R2, R6, R7, R9, R12 in the assessments domain: given the facts the service learned,
when an assessment is recorded or approved, then events or a refusal naming each rule."""

from __future__ import annotations

from datetime import date

import pytest

from assessments.domain import model
from assessments.domain.events import AssessmentApproved, AssessmentEvent, IndicatorResult
from assessments.domain.policy import RULES_2026_1, Kind
from clr_events.rules import ConflictError, RuleViolationError

RULES = RULES_2026_1
ORG = model.OrgFacts("org-1", "DE", validated_on=date(2023, 5, 1))


def expert(person_id: str, country: str, *roles: str, works_for: str = "") -> model.ExpertFacts:
    cert = model.Certification(date(2012, 1, 1), date(2025, 12, 31))
    return model.ExpertFacts(
        person_id, country, frozenset({works_for} - {""}), dict.fromkeys(roles, cert)
    )


EXPERTS = {
    "at": expert("at", "AT", "benchmarking_expert", "gold_assessor", "silver_auditor"),
    "de": expert("de", "DE", "benchmarking_expert", "gold_assessor"),
    "fr": expert("fr", "FR", "benchmarking_expert"),
    "inside": expert("inside", "DE", "benchmarking_expert", works_for="org-1"),
}


def subject(*expert_ids: str, org: model.OrgFacts | None = ORG) -> model.Subject:
    return model.Subject("org-1", org, expert_ids, EXPERTS)


def bronze(
    on: date = date(2024, 3, 5),
    *,
    who: model.Subject | None = None,
    ratings: list[str] | None = None,
    version: str | None = None,
) -> list[AssessmentEvent]:
    return model.record_bronze(
        assessment_id="a-1",
        subject=who or subject("at"),
        conducted_on=on,
        mode="video",
        ratings=["green"] * 36 if ratings is None else ratings,
        criteria_version=version,
        rules=RULES,
    )


def violations(error: pytest.ExceptionInfo[RuleViolationError]) -> list[str]:
    return [f"{v.rule}: {v.message}" for v in error.value.violations]


def test_r2_r12_a_bronze_interview_records_its_36_ratings_and_the_indicator_set() -> None:
    (event,) = bronze()
    assert event.model_dump()["criteria_version"] == "bronze-2019"
    assert event.model_dump()["rules_version"] == "2026.1"
    (old,) = bronze(date(2014, 6, 1), who=subject("at", org=model.OrgFacts("org-1", "DE", None)))
    assert old.model_dump()["criteria_version"] == "bronze-2012"


def test_r2_an_interview_rates_every_indicator_red_yellow_or_green() -> None:
    with pytest.raises(RuleViolationError) as refused:
        bronze(ratings=["green"] * 34 + ["blue"])
    assert violations(refused) == [
        "R2: 35 indicators rated; bronze-2019 has 36",
        "R2: ratings are red, yellow or green, not ['blue']",
    ]


def test_r1_no_assessment_without_a_validated_profile_since_2019_11_15() -> None:
    unvalidated = model.OrgFacts("org-1", "DE", validated_on=None)
    with pytest.raises(RuleViolationError) as refused:
        bronze(date(2019, 11, 15), who=subject("at", org=unvalidated))
    assert violations(refused) == [
        "R1: organisation 'org-1' has no validated ECCP profile on 2019-11-15"
        " (required since 2019-11-15)"
    ]
    assert bronze(date(2019, 11, 14), who=subject("at", org=unvalidated))


def test_r1_an_unknown_organisation_is_refused() -> None:
    with pytest.raises(RuleViolationError, match="R1: organisation 'org-1' is not known"):
        bronze(who=subject("at", org=None))


def test_r9_an_expert_without_a_valid_certification_or_working_for_the_org_is_refused() -> None:
    with pytest.raises(RuleViolationError) as refused:
        bronze(date(2026, 1, 5), who=subject("inside"))
    assert violations(refused) == [
        "R9: expert 'inside' holds no valid benchmarking_expert certification on 2026-01-05",
        "R9: expert 'inside' works for 'org-1' and cannot assess it",
    ]
    with pytest.raises(RuleViolationError, match="R9: expert 'ghost' is not known"):
        bronze(who=subject("ghost"))


def test_r12_a_named_indicator_set_must_be_the_one_in_force() -> None:
    with pytest.raises(RuleViolationError) as refused:
        bronze(version="bronze-2012")
    assert violations(refused) == [
        "R12: indicator set 'bronze-2012' is not in force on that day; 2024-03-05 uses"
        " 'bronze-2019'"
    ]


def earlier(
    aid: str, kind: Kind, on: date, approved: date | None = None
) -> model.EarlierAssessment:
    return model.EarlierAssessment(aid, "org-1", kind, on, approved)


def silver(first: date, second: date, areas: int = 3) -> list[AssessmentEvent]:
    return model.record_silver(
        assessment_id="s-1",
        subject=subject("at"),
        conducted_on=second,
        mode="on_site",
        first=earlier("b-1", Kind.BRONZE, first),
        second=earlier("b-2", Kind.BRONZE, second),
        improvement_areas=["strategy", "services", "financing", "governance"][:areas],
        areas_validated=[True] * areas,
        baseline_met=True,
        criteria_version=None,
        rules=RULES,
    )


def test_r6_silver_follows_two_benchmarkings_18_to_24_months_apart_with_three_areas() -> None:
    (event,) = silver(date(2023, 6, 1), date(2025, 1, 10))
    assert event.model_dump()["first_benchmarking_on"] == date(2023, 6, 1)
    with pytest.raises(RuleViolationError) as refused:
        silver(date(2023, 6, 1), date(2024, 9, 1), areas=2)
    assert violations(refused) == [
        "R6: exactly 3 different improvement areas, not 2",
        "R6: the second benchmarking (2024-09-01) must fall 18 to 24 months after the"
        " first (2023-06-01)",
    ]


def gold(
    *experts: str,
    days: int = 2,
    indicators: int = 31,
    golds: list[model.EarlierAssessment] | None = None,
) -> list[AssessmentEvent]:
    return model.record_gold(
        assessment_id="g-1",
        subject=subject(*experts),
        conducted_on=date(2025, 6, 3),
        indicators=[IndicatorResult(code=f"G{i}", score=4, threshold=3) for i in range(indicators)],
        score_pct=88.0,
        on_site_days=days,
        evidence_documents=9,
        earlier_golds=golds or [],
        criteria_version=None,
        rules=RULES,
    )


def test_r7_gold_has_one_national_and_one_foreign_expert_on_site_two_days() -> None:
    (event,) = gold("at", "de")
    assert event.model_dump()["indicators_passed"] == 31
    with pytest.raises(RuleViolationError) as refused:
        gold("at", days=1, indicators=30)
    assert violations(refused) == [
        "R7: a Gold assessment has 2 experts, not 1",
        "R7: 30 indicators assessed; gold-2020 has 31",
        "R7: a first Gold assessment takes 2 day(s) on site, not 1",
    ]


def test_r7_both_experts_national_is_refused_and_a_renewal_takes_one_day() -> None:
    EXPERTS["de2"] = expert("de2", "DE", "gold_assessor")
    with pytest.raises(RuleViolationError, match="one expert must be national \\(DE\\)"):
        gold("de", "de2")
    renewal = [earlier("g-0", Kind.GOLD, date(2023, 5, 2), approved=date(2023, 6, 1))]
    (event,) = gold("at", "de", days=1, golds=renewal)
    assert event.model_dump()["renewal"] is True


def test_r9_gold_with_an_expert_not_certified_as_gold_assessor_is_refused() -> None:
    with pytest.raises(RuleViolationError) as refused:
        gold("de", "fr")
    assert violations(refused) == [
        "R9: expert 'fr' holds no valid gold_assessor certification on 2025-06-03"
    ]


def test_an_assessment_is_approved_once_with_what_its_decision_needs() -> None:
    recorded = bronze()
    (approved,) = model.approve(
        model.Assessment.replay(recorded), approved_on=date(2024, 4, 2), approver="ESCA", org=ORG
    )
    assert isinstance(approved, AssessmentApproved)
    assert approved.indicator_count == 36
    assert approved.profile_validated_on == date(2023, 5, 1)
    with pytest.raises(ConflictError, match="already approved"):
        model.approve(
            model.Assessment.replay([*recorded, approved]),
            approved_on=date(2024, 4, 3),
            approver="ESCA",
            org=ORG,
        )
    with pytest.raises(RuleViolationError, match="approval: an approval cannot precede"):
        model.approve(
            model.Assessment.replay(recorded),
            approved_on=date(2024, 3, 1),
            approver="ESCA",
            org=ORG,
        )
