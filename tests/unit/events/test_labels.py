"""R10's one rule: a label's status on a day from its dates."""

from __future__ import annotations

from datetime import date

from clr_events.labels import LabelStatus, label_status

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
