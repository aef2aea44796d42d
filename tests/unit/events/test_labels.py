"""R10's one rule: a label's status on a day from its dates, and from its history."""

from __future__ import annotations

from datetime import date

import pytest

from clr_events.labels import (
    LabelStatus,
    Period,
    awarded,
    corrected,
    label_status,
    period_on,
    renewal_extends,
    renewed,
    status_on,
    withdrawn,
)
from clr_events.settings import RenewalWindows

UNTIL = date(2025, 3, 31)
DEADLINE = date(2026, 3, 31)


def test_a_label_is_valid_to_its_last_day_then_in_its_window_then_expired() -> None:
    assert label_status(date(2025, 3, 31), UNTIL, DEADLINE, None) is LabelStatus.VALID
    assert label_status(date(2025, 4, 1), UNTIL, DEADLINE, None) is LabelStatus.IN_RENEWAL_WINDOW
    assert label_status(DEADLINE, UNTIL, DEADLINE, None) is LabelStatus.IN_RENEWAL_WINDOW
    assert label_status(date(2026, 4, 1), UNTIL, DEADLINE, None) is LabelStatus.EXPIRED


def test_without_a_deadline_there_is_no_window() -> None:
    assert label_status(date(2025, 4, 1), UNTIL, None, None) is LabelStatus.EXPIRED


def test_a_withdrawal_counts_from_its_day_and_no_validity_is_none() -> None:
    withdrawn = date(2024, 6, 1)
    assert label_status(date(2024, 5, 31), UNTIL, DEADLINE, withdrawn) is LabelStatus.VALID
    assert label_status(withdrawn, UNTIL, DEADLINE, withdrawn) is LabelStatus.WITHDRAWN
    assert label_status(date(2030, 1, 1), UNTIL, DEADLINE, withdrawn) is LabelStatus.WITHDRAWN
    assert label_status(date(2024, 1, 1), None, None, None) is LabelStatus.NONE


# ------------------------------------------------------- R10 on a past day, from the history
def test_a_day_before_the_first_award_has_no_label() -> None:
    periods = awarded((), date(2018, 5, 2), date(2020, 3, 31), date(2021, 3, 31))
    assert status_on(periods, date(2005, 1, 1)) is LabelStatus.NONE
    assert status_on(periods, date(2018, 5, 1)) is LabelStatus.NONE
    assert status_on(periods, date(2018, 5, 2)) is LabelStatus.VALID


def test_the_gap_between_a_lapse_and_a_new_award_is_not_valid() -> None:
    first = awarded((), date(2016, 4, 1), date(2018, 3, 31), date(2019, 3, 31))
    periods = awarded(first, date(2020, 6, 1), date(2022, 5, 31), date(2023, 5, 31))
    assert status_on(periods, date(2017, 1, 1)) is LabelStatus.VALID
    assert status_on(periods, date(2018, 6, 1)) is LabelStatus.IN_RENEWAL_WINDOW
    assert status_on(periods, date(2020, 1, 1)) is LabelStatus.EXPIRED
    assert status_on(periods, date(2021, 1, 1)) is LabelStatus.VALID


def test_a_renewal_extends_or_opens_a_period_and_a_withdrawal_ends_it() -> None:
    periods = awarded((), date(2020, 4, 1), date(2022, 3, 31), date(2023, 3, 31))
    extended = renewed(periods, date(2022, 1, 10), date(2025, 3, 31), date(2026, 3, 31))
    assert extended == (Period(date(2020, 4, 1), date(2025, 3, 31), date(2026, 3, 31)),)
    late = renewed(periods, date(2022, 9, 1), date(2025, 3, 31), date(2026, 3, 31))
    assert [p.valid_from for p in late] == [date(2020, 4, 1), date(2022, 9, 1)]
    # in the window before the late renewal, the first period governs
    assert status_on(late, date(2022, 6, 1)) is LabelStatus.IN_RENEWAL_WINDOW
    assert status_on(late, date(2022, 9, 1)) is LabelStatus.VALID
    ended = withdrawn(extended, date(2023, 2, 1))
    assert status_on(ended, date(2023, 1, 31)) is LabelStatus.VALID
    assert status_on(ended, date(2023, 2, 1)) is LabelStatus.WITHDRAWN
    assert not renewal_extends(ended[-1], date(2023, 3, 1))


def test_a_correction_moves_the_latest_period_only() -> None:
    first = awarded((), date(2016, 4, 1), date(2018, 3, 31), date(2019, 3, 31))
    periods = awarded(first, date(2020, 6, 1), date(2022, 5, 31), date(2023, 5, 31))
    moved = corrected(periods, date(2021, 12, 31), date(2022, 12, 31))
    assert moved[0] == periods[0]
    assert status_on(moved, date(2022, 1, 15)) is LabelStatus.IN_RENEWAL_WINDOW
    assert status_on(moved, date(2017, 1, 1)) is LabelStatus.VALID
    assert period_on(moved, date(2016, 3, 31)) is None


def test_a_decision_recorded_without_its_deadline_gets_its_levels_window_in_one_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLR_RENEWAL_WINDOW_MONTHS_GOLD", "6")
    windows = RenewalWindows()
    assert windows.deadline("bronze", UNTIL, None) == date(2026, 3, 31)
    assert windows.deadline("gold", UNTIL, None) == date(2025, 9, 30)
    assert windows.deadline("gold", UNTIL, DEADLINE) == DEADLINE  # as the decision recorded
    legacy = windows.deadline("bronze", UNTIL, None)
    assert label_status(date(2025, 6, 1), UNTIL, legacy, None) is LabelStatus.IN_RENEWAL_WINDOW
