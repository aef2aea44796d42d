"""Properties of validity periods counted in months (R3, R4, R5, R8), over any day."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from clr_events.months import end_of_month
from label_decisions.domain.policy import (
    POLICY_2026_1,
    Level,
    MonthEnd,
    first_valid_until,
    renewal_deadline,
    renewed_valid_until,
)

PROPERTIES = settings(max_examples=200, deadline=None, derandomize=True)
DAYS = st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31))
LEVELS = st.sampled_from(list(Level))


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


@PROPERTIES
@given(DAYS, LEVELS)
def test_a_first_award_ends_on_the_last_day_of_the_month_its_months_after(
    assessed_on: date, level: Level
) -> None:
    months = POLICY_2026_1.rules(level).first_validity_months
    until = first_valid_until(POLICY_2026_1, level, assessed_on)
    assert until == end_of_month(until)
    assert month_index(until) == month_index(assessed_on) + months
    earlier = replace(POLICY_2026_1, month_end=MonthEnd.PREVIOUS_MONTH)
    previous = first_valid_until(earlier, level, assessed_on)
    assert previous == end_of_month(previous)
    assert month_index(previous) == month_index(until) - 1


@PROPERTIES
@given(DAYS, DAYS, LEVELS)
def test_a_later_assessment_never_ends_earlier(one: date, other: date, level: Level) -> None:
    early, late = sorted((one, other))
    assert first_valid_until(POLICY_2026_1, level, early) <= first_valid_until(
        POLICY_2026_1, level, late
    )


@PROPERTIES
@given(DAYS, LEVELS)
def test_the_renewal_window_closes_after_the_validity(valid_until: date, level: Level) -> None:
    deadline = renewal_deadline(POLICY_2026_1, level, valid_until)
    window = POLICY_2026_1.rules(level).renewal_window_months
    assert (deadline is None) == (window is None)
    if deadline is not None and window is not None:
        assert deadline > valid_until
        assert month_index(deadline) == month_index(valid_until) + window


@PROPERTIES
@given(DAYS, DAYS, LEVELS)
def test_a_renewal_never_shortens_and_keeps_a_month_end(
    previous: date, assessed_on: date, level: Level
) -> None:
    renewed = renewed_valid_until(POLICY_2026_1, level, previous, assessed_on)
    assert renewed >= previous
    extension = POLICY_2026_1.rules(level).renewal_extension_months
    if extension is not None:  # R4: seamless, from the previous validity
        assert month_index(renewed) == month_index(previous) + extension
        if previous == end_of_month(previous):
            assert renewed == end_of_month(renewed)
    else:
        assert renewed == max(previous, first_valid_until(POLICY_2026_1, level, assessed_on))
