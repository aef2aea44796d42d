"""Label decisions: given events, when a command, then events or a refusal (R1, R3-R5, R8,
R10, R15)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from clr_events.months import add_months
from clr_events.rules import RuleViolationError
from label_decisions.domain.events import (
    LabelAwarded,
    LabelEvent,
    LabelExpired,
    LabelRecordCorrected,
    LabelRefused,
    LabelRenewed,
    LabelWithdrawn,
    Refusal,
)
from label_decisions.domain.label_record import ApprovedAssessment, LabelRecord, Outcome, Status
from label_decisions.domain.policy import (
    POLICIES,
    POLICY_2026_1,
    POLICY_2026_2,
    DecisionPolicy,
    Level,
    LevelRules,
    MonthEnd,
    first_valid_until,
)

ORG = "org-1"
PASSING = {
    Level.BRONZE: Outcome(indicator_count=36),
    Level.SILVER: Outcome(improvement_areas_validated=(True, True, True), baseline_met=True),
    Level.GOLD: Outcome(
        indicator_count=31, indicators_passed=31, score_pct=84.5, evidence_documents=12
    ),
}


def assessment(
    assessed_on: date,
    level: Level = Level.BRONZE,
    approved_on: date | None = None,
    aid: str = "a-1",
) -> ApprovedAssessment:
    return ApprovedAssessment(
        aid, ORG, level, assessed_on, approved_on or assessed_on, ("expert-1",), PASSING[level]
    )


def given(*events: LabelEvent, level: Level = Level.BRONZE) -> LabelRecord:
    return LabelRecord.replay(ORG, level, list(events))


def when_decided(
    record: LabelRecord,
    what: ApprovedAssessment,
    *,
    eligible: bool = True,
    policy: DecisionPolicy = POLICY_2026_1,
) -> LabelEvent:
    (event,) = record.decide(what, eligible=eligible, policy=policy, decided_by="board")
    record.apply(event)
    return event


def awarded(assessed_on: date, valid_until: date, aid: str = "a-0") -> LabelAwarded:
    return LabelAwarded(
        org_id=ORG,
        level="bronze",
        assessment_id=aid,
        assessed_on=assessed_on,
        awarded_on=assessed_on,
        valid_until=valid_until,
        expert_ids=("expert-1",),
        policy_version="2026.1",
        decided_by="board",
    )


# ------------------------------------------------------------------------- R3
def test_r3_a_first_bronze_is_valid_two_years_from_the_interview_month() -> None:
    event = when_decided(given(), assessment(date(2024, 3, 14), approved_on=date(2024, 4, 20)))
    assert isinstance(event, LabelAwarded)
    assert event.valid_until == date(2026, 3, 31)  # counted from March, not from the 14th
    assert event.awarded_on == date(2024, 4, 20)
    assert event.policy_version == "2026.1"
    assert event.expert_ids == ("expert-1",) and event.decided_by == "board"


def test_r3_the_day_convention_is_a_setting() -> None:
    earlier = replace(POLICY_2026_1, version="test-prev", month_end=MonthEnd.PREVIOUS_MONTH)
    assert first_valid_until(earlier, Level.BRONZE, date(2024, 3, 14)) == date(2026, 2, 28)
    assert first_valid_until(POLICY_2026_1, Level.SILVER, date(2023, 12, 1)) == date(2025, 12, 31)


# ------------------------------------------------------------------------- R4
def test_r4_a_renewal_inside_the_window_extends_three_years_without_a_gap() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    event = when_decided(record, assessment(date(2025, 4, 2), aid="a-2"))  # expired 10 months ago
    assert isinstance(event, LabelRenewed)
    assert (event.previous_valid_until, event.valid_until) == (date(2024, 5, 31), date(2027, 5, 31))


def test_r4_a_renewal_on_the_last_day_of_the_window_still_counts() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    assert isinstance(when_decided(record, assessment(date(2025, 5, 31), aid="a-2")), LabelRenewed)


def test_r4_after_the_window_a_benchmarking_is_a_new_first_award() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    event = when_decided(record, assessment(date(2025, 6, 1), aid="a-2"))
    assert isinstance(event, LabelAwarded)
    assert event.valid_until == date(2027, 6, 30)


def test_r4_an_assessment_older_than_the_current_validity_is_refused() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    with pytest.raises(RuleViolationError, match="R4: the assessment of 2022-04-20 precedes"):
        record.decide(
            assessment(date(2022, 4, 20), aid="old"),
            eligible=True,
            policy=POLICY_2026_1,
            decided_by="board",
        )


def test_r4_renewals_chain_from_the_previous_validity_not_from_the_interview() -> None:
    record = given(awarded(date(2019, 1, 15), date(2021, 1, 31)))
    first = when_decided(record, assessment(date(2020, 11, 3), aid="a-2"))
    second = when_decided(record, assessment(date(2024, 1, 20), aid="a-3"))
    assert isinstance(first, LabelRenewed) and isinstance(second, LabelRenewed)
    assert (first.valid_until, second.valid_until) == (date(2024, 1, 31), date(2027, 1, 31))


# ------------------------------------------------------------------- R5 / R8
def test_r5_a_silver_renewal_without_a_confirmed_extension_runs_from_its_assessment() -> None:
    record = given(
        awarded(date(2022, 9, 1), date(2024, 9, 30)).model_copy(update={"level": "silver"}),
        level=Level.SILVER,
    )
    event = when_decided(record, assessment(date(2024, 8, 12), Level.SILVER, aid="s-2"))
    assert isinstance(event, LabelRenewed)
    assert event.valid_until == date(2026, 8, 31)


def test_r5_r8_the_renewal_extension_is_a_setting_per_level() -> None:
    confirmed = replace(
        POLICY_2026_1,
        version="test-silver-36",
        levels={**POLICY_2026_1.levels, Level.SILVER: LevelRules(24, 12, 36)},
    )
    record = given(
        awarded(date(2022, 9, 1), date(2024, 9, 30)).model_copy(update={"level": "silver"}),
        level=Level.SILVER,
    )
    event = when_decided(
        record, assessment(date(2024, 8, 12), Level.SILVER, aid="s-2"), policy=confirmed
    )
    assert isinstance(event, LabelRenewed)
    assert event.valid_until == date(2027, 9, 30)
    assert event.policy_version == "test-silver-36"


def test_r8_a_gold_label_is_valid_two_years() -> None:
    event = when_decided(given(level=Level.GOLD), assessment(date(2021, 12, 7), Level.GOLD))
    assert isinstance(event, LabelAwarded) and event.valid_until == date(2023, 12, 31)


# ------------------------------------------------------------------------- R1
def test_r1_no_label_without_eligibility_since_15_november_2019() -> None:
    with pytest.raises(RuleViolationError) as refused:
        given().decide(
            assessment(date(2019, 11, 15)), eligible=False, policy=POLICY_2026_1, decided_by="board"
        )
    assert [v.rule for v in refused.value.violations] == ["R1"]
    assert "eligibility criteria" in str(refused.value)


def test_r1_does_not_apply_to_assessments_before_the_criteria() -> None:
    event = when_decided(given(), assessment(date(2019, 11, 14)), eligible=False)
    assert isinstance(event, LabelAwarded)


def test_every_violated_rule_is_named_at_once() -> None:
    wrong = ApprovedAssessment(
        "a-9", "org-2", Level.BRONZE, date(2024, 1, 10), date(2024, 1, 9), ()
    )
    with pytest.raises(RuleViolationError) as refused:
        given().decide(wrong, eligible=False, policy=POLICY_2026_1, decided_by="board")
    assert [v.rule for v in refused.value.violations] == ["R10", "R1", "R2", "R7"]


# ------------------------------------------------------------------------ R10
def test_r10_status_is_derived_from_dates() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    assert given().status(date(2024, 1, 1), POLICY_2026_1) is Status.NONE
    assert record.status(date(2024, 5, 31), POLICY_2026_1) is Status.VALID
    assert record.status(date(2024, 6, 1), POLICY_2026_1) is Status.IN_RENEWAL_WINDOW
    assert record.status(date(2025, 5, 31), POLICY_2026_1) is Status.IN_RENEWAL_WINDOW
    assert record.status(date(2025, 6, 1), POLICY_2026_1) is Status.EXPIRED


def test_the_same_assessment_is_decided_once() -> None:
    record = given()
    when_decided(record, assessment(date(2024, 3, 1)))
    assert (
        record.decide(
            assessment(date(2024, 3, 1)), eligible=True, policy=POLICY_2026_1, decided_by="board"
        )
        == []
    )


# ------------------------------------------------------------------ expiry
def test_expiry_is_recorded_once_the_day_after_valid_until() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    assert record.expire(date(2024, 5, 31)) == []
    (event,) = record.expire(date(2024, 6, 1))
    assert isinstance(event, LabelExpired) and event.expired_on == date(2024, 6, 1)
    record.apply(event)
    assert record.expire(date(2024, 7, 1)) == []  # idempotent under restarts of the clock


def test_a_renewal_after_expiry_can_expire_again_later() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    record.apply(record.expire(date(2024, 6, 1))[0])
    when_decided(record, assessment(date(2024, 9, 1), aid="a-2"))
    assert record.status(date(2024, 9, 2), POLICY_2026_1) is Status.VALID
    (expired,) = record.expire(date(2027, 6, 1))
    assert isinstance(expired, LabelExpired) and expired.valid_until == date(2027, 5, 31)


# ---------------------------------------------------------- withdrawal, R15
def test_a_withdrawal_needs_a_current_label_and_a_reason() -> None:
    with pytest.raises(RuleViolationError, match="R10: there is no current label"):
        given().withdraw(reason="misconduct", by="board", on=date(2024, 1, 1))
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    with pytest.raises(RuleViolationError, match="R15: a withdrawal needs a reason"):
        record.withdraw(reason="  ", by="board", on=date(2023, 1, 1))
    (event,) = record.withdraw(reason="ceased operations", by="board", on=date(2023, 1, 1))
    assert isinstance(event, LabelWithdrawn)
    record.apply(event)
    assert record.status(date(2023, 1, 1), POLICY_2026_1) is Status.WITHDRAWN
    assert record.status(date(2022, 12, 31), POLICY_2026_1) is Status.VALID  # as of before
    assert record.expire(date(2025, 1, 1)) == []


def test_after_a_withdrawal_a_new_assessment_is_a_first_award() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    record.apply(record.withdraw(reason="ceased", by="board", on=date(2023, 1, 1))[0])
    event = when_decided(record, assessment(date(2023, 6, 1), aid="a-2"))
    assert isinstance(event, LabelAwarded) and event.valid_until == date(2025, 6, 30)


def test_r15_a_correction_is_a_compensating_event_with_a_reason() -> None:
    record = given(awarded(date(2022, 5, 10), date(2024, 5, 31)))
    with pytest.raises(RuleViolationError, match="R15: the correction changes nothing"):
        record.correct(
            valid_until=date(2024, 5, 31), reason="typo", by="registry-admin", policy=POLICY_2026_1
        )
    (event,) = record.correct(
        valid_until=date(2024, 5, 10), reason="day-exact date", by="admin", policy=POLICY_2026_1
    )
    assert isinstance(event, LabelRecordCorrected)
    assert (event.previous_valid_until, event.valid_until) == (date(2024, 5, 31), date(2024, 5, 10))
    assert event.renewal_deadline == date(2025, 5, 10)  # the window moves with the validity
    record.apply(event)
    assert record.version == 2 and record.valid_until == date(2024, 5, 10)
    assert record.status(date(2025, 5, 10), POLICY_2026_1) is Status.IN_RENEWAL_WINDOW
    assert record.status(date(2025, 5, 11), POLICY_2026_1) is Status.EXPIRED


def test_r10_a_decision_carries_the_renewal_deadline_and_the_status_follows_it() -> None:
    record = given()
    awarded_now = when_decided(record, assessment(date(2024, 3, 14)))
    assert isinstance(awarded_now, LabelAwarded)
    assert (awarded_now.valid_until, awarded_now.renewal_deadline) == (
        date(2026, 3, 31),
        date(2027, 3, 31),
    )
    renewed = when_decided(record, assessment(date(2026, 1, 10), aid="a-2"))
    assert isinstance(renewed, LabelRenewed)
    assert renewed.renewal_deadline is not None
    assert renewed.renewal_deadline == add_months(renewed.valid_until, 12)
    # the status reads the carried deadline, whatever window the policy asked later has
    no_window = replace(
        POLICY_2026_1,
        levels={
            level: replace(rules, renewal_window_months=None)
            for level, rules in POLICY_2026_1.levels.items()
        },
    )
    day_in_window = add_months(renewed.valid_until, 6)
    assert record.status(day_in_window, no_window) is Status.IN_RENEWAL_WINDOW


def test_month_arithmetic_clamps_to_shorter_months() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)
    assert add_months(date(2024, 5, 15), -5) == date(2023, 12, 15)


# ---------------------------------------------------------------- R2, R6, R7 outcomes
@pytest.mark.parametrize(
    ("level", "outcome", "messages"),
    [
        (
            Level.BRONZE,
            Outcome(indicator_count=35),
            ["R2: a Bronze benchmarking rates 36 indicators, this one 35"],
        ),
        (
            Level.SILVER,
            Outcome(improvement_areas_validated=(True, False, True), baseline_met=False),
            [
                "R6: Silver needs all 3 improvement areas validated; 2 of 3 were",
                "R6: Silver needs every baseline minimum requirement met",
            ],
        ),
        (
            Level.GOLD,
            Outcome(indicator_count=31, indicators_passed=30, score_pct=79.9, evidence_documents=0),
            [
                "R7: Gold needs all 31 indicators at or above their threshold; 30 of 31 passed",
                "R7: Gold needs a total score of at least 80 %, this one is 79.9",
                "R7: Gold needs documentary evidence",
            ],
        ),
    ],
)
def test_an_approved_assessment_whose_results_fall_short_earns_no_label(
    level: Level, outcome: Outcome, messages: list[str]
) -> None:
    # given no label, when a short assessment is decided, then every shortfall is named
    failing = ApprovedAssessment(
        "a-5", ORG, level, date(2024, 3, 5), date(2024, 4, 2), ("e-1", "e-2"), outcome
    )
    with pytest.raises(RuleViolationError) as refused:
        given(level=level).decide(failing, eligible=True, policy=POLICY_2026_1, decided_by="b")
    assert [f"{v.rule}: {v.message}" for v in refused.value.violations] == messages


def test_a_refusal_is_recorded_once_and_the_assessment_is_never_decided_again() -> None:
    failing = ApprovedAssessment(
        "a-6", ORG, Level.BRONZE, date(2024, 3, 5), date(2024, 4, 2), ("e-1",), Outcome()
    )
    record = given()
    with pytest.raises(RuleViolationError) as refused:
        record.decide(failing, eligible=True, policy=POLICY_2026_1, decided_by="b")
    events = record.refuse(failing, refused.value.violations, policy=POLICY_2026_1, decided_by="b")
    assert [type(e).__name__ for e in events] == ["LabelRefused"]
    again = given(*events)
    assert (
        again.refuse(failing, refused.value.violations, policy=POLICY_2026_1, decided_by="b") == []
    )
    assert again.decide(failing, eligible=True, policy=POLICY_2026_1, decided_by="b") == []
    assert again.valid_until is None


# ------------------------------------------- policy 2026.2: R7 days, earliest renewal
def gold_assessment(assessed_on: date, days: int, aid: str) -> ApprovedAssessment:
    outcome = replace(PASSING[Level.GOLD], on_site_days=days)
    return ApprovedAssessment(
        aid, ORG, Level.GOLD, assessed_on, assessed_on, ("e-1", "e-2"), outcome
    )


def gold_refused(assessed_on: date, aid: str) -> LabelRefused:
    return LabelRefused(
        org_id=ORG,
        level="gold",
        assessment_id=aid,
        assessed_on=assessed_on,
        refused_on=assessed_on,
        violations=(Refusal(rule="R7", message="score 79 %"),),
        expert_ids=("e-1", "e-2"),
        policy_version="2026.2",
        decided_by="board",
    )


def test_r7_a_first_gold_needs_two_days_on_site_even_after_a_refused_gold() -> None:
    # given an earlier Gold assessment that the board's decision refused (no label)
    record = given(gold_refused(date(2024, 3, 5), "g-1"), level=Level.GOLD)
    # when a one-day Gold assessment a year later is decided, then it is a first award: 2 days
    with pytest.raises(RuleViolationError) as refused:
        record.decide(
            gold_assessment(date(2025, 3, 5), 1, "g-2"),
            eligible=True,
            policy=POLICY_2026_2,
            decided_by="board",
        )
    assert [f"{v.rule}: {v.message}" for v in refused.value.violations] == [
        "R7: a first Gold award needs 2 day(s) on site; this assessment had 1"
    ]
    event = when_decided(record, gold_assessment(date(2025, 3, 5), 2, "g-3"), policy=POLICY_2026_2)
    assert isinstance(event, LabelAwarded)


def test_r7_a_gold_renewal_within_a_year_of_expiry_needs_one_day_on_site() -> None:
    record = given(level=Level.GOLD)
    when_decided(record, gold_assessment(date(2022, 3, 5), 2, "g-1"), policy=POLICY_2026_2)
    assert record.valid_until == date(2024, 3, 31)
    # ten months after expiry: inside the renewal window, one day is enough
    event = when_decided(record, gold_assessment(date(2025, 1, 20), 1, "g-2"), policy=POLICY_2026_2)
    assert isinstance(event, LabelRenewed) and event.policy_version == "2026.2"


def test_r7_a_gold_assessment_without_its_days_on_site_is_refused() -> None:
    with pytest.raises(RuleViolationError, match="R7: a first Gold award needs 2 day"):
        given(level=Level.GOLD).decide(
            gold_assessment(date(2025, 3, 5), 0, "g-1"),
            eligible=True,
            policy=POLICY_2026_2,
            decided_by="board",
        )


def test_r4_a_renewal_is_assessed_at_most_six_months_before_the_validity_ends() -> None:
    record = given(awarded(date(2025, 6, 10), date(2027, 6, 30)))
    with pytest.raises(RuleViolationError) as refused:
        record.decide(
            assessment(date(2026, 12, 29), aid="a-2"),
            eligible=True,
            policy=POLICY_2026_2,
            decided_by="board",
        )
    assert [f"{v.rule}: {v.message}" for v in refused.value.violations] == [
        "R4: a renewal is assessed on or after 2026-12-30 (6 months before the label's"
        " validity ends on 2027-06-30); this one was assessed 2026-12-29"
    ]
    event = when_decided(record, assessment(date(2026, 12, 30), aid="a-3"), policy=POLICY_2026_2)
    assert isinstance(event, LabelRenewed) and event.valid_until == date(2030, 6, 30)


def test_r4_renewals_cannot_be_stacked_far_ahead_of_the_expiry() -> None:
    # four benchmarkings within ten weeks: the first renews, the others come years too early
    record = given(awarded(date(2025, 1, 10), date(2027, 1, 31)))
    days = [date(2026, 9, 1), date(2026, 9, 22), date(2026, 10, 13), date(2026, 11, 3)]
    outcomes: list[str] = []
    for n, day in enumerate(days):
        try:
            event = when_decided(record, assessment(day, aid=f"s-{n}"), policy=POLICY_2026_2)
            outcomes.append(type(event).__name__)
        except RuleViolationError as refused:
            outcomes.append(" ".join(v.rule for v in refused.violations))
    assert outcomes == ["LabelRenewed", "R4", "R4", "R4"]
    assert record.valid_until == date(2030, 1, 31)


def test_policy_2026_1_stays_as_it_decided() -> None:
    # an immutable version: its decisions (no earliest renewal) can still be re-derived
    record = given(awarded(date(2025, 1, 10), date(2027, 1, 31)))
    event = when_decided(record, assessment(date(2025, 3, 1), aid="a-1"))
    assert isinstance(event, LabelRenewed) and event.policy_version == "2026.1"
    assert set(POLICIES) == {"2026.1", "2026.2"}


def test_r10_an_assessment_renews_exactly_when_the_status_shows_the_renewal_window() -> None:
    # a decision recorded a renewal deadline other than today's policy would compute
    recorded = awarded(date(2022, 5, 10), date(2024, 5, 31)).model_copy(
        update={"renewal_deadline": date(2025, 11, 30)}
    )
    record = given(recorded)
    on = date(2025, 8, 1)  # after the policy's 12 months, before the recorded deadline
    assert record.status(on, POLICY_2026_2) is Status.IN_RENEWAL_WINDOW
    event = when_decided(record, assessment(on, aid="a-2"), policy=POLICY_2026_2)
    assert isinstance(event, LabelRenewed)
