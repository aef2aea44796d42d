"""R10, in one place: a label's status on a day, from the dates its events carry.

A label is withdrawn from ``withdrawn_on`` on; otherwise valid up to ``valid_until``; then
in its renewal window up to ``renewal_deadline`` (the last day an assessment still renews
it, which the decision that set ``valid_until`` carries: label decisions know the policy,
nobody else needs to); then expired. No validity yet: none.

``label_status`` is the rule; ``status_sql`` is the same rule as a SQL expression, for a
read model that filters and counts by status in PostgreSQL (tests check the two agree).
A day in the past is answered from the record's history: its periods (``Period``, opened,
extended, ended and corrected by its events: ``awarded``, ``renewed``, ``withdrawn``,
``corrected``), of which the one that governs the day gives the status (``status_on``).
Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum


class LabelStatus(StrEnum):
    """R10: what a label is on a day."""

    NONE = "none"
    VALID = "valid"
    IN_RENEWAL_WINDOW = "in_renewal_window"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


def label_status(
    on: date,
    valid_until: date | None,
    renewal_deadline: date | None,
    withdrawn_on: date | None,
) -> LabelStatus:
    """A label's status on ``on`` (``renewal_deadline`` None: no renewal window)."""
    if valid_until is None:
        return LabelStatus.NONE
    if withdrawn_on is not None and withdrawn_on <= on:
        return LabelStatus.WITHDRAWN
    if on <= valid_until:
        return LabelStatus.VALID
    if renewal_deadline is not None and on <= renewal_deadline:
        return LabelStatus.IN_RENEWAL_WINDOW
    return LabelStatus.EXPIRED


def status_sql(on: str, valid_until: str, renewal_deadline: str, withdrawn_on: str) -> str:
    """``label_status`` as a SQL expression over the given SQL expressions (trusted text)."""
    return (
        f"CASE WHEN {valid_until} IS NULL THEN '{LabelStatus.NONE}'"
        f" WHEN {withdrawn_on} IS NOT NULL AND {withdrawn_on} <= {on}"
        f" THEN '{LabelStatus.WITHDRAWN}'"
        f" WHEN {on} <= {valid_until} THEN '{LabelStatus.VALID}'"
        f" WHEN {renewal_deadline} IS NOT NULL AND {on} <= {renewal_deadline}"
        f" THEN '{LabelStatus.IN_RENEWAL_WINDOW}'"
        f" ELSE '{LabelStatus.EXPIRED}' END"
    )


# ----------------------------------------------------------------- history (valid time)
@dataclass(frozen=True)
class Period:
    """One unbroken stretch of a label's validity, as the record's events made it.

    An award opens a period on its day; a renewal on or before ``valid_until`` extends the
    period (no gap), a renewal inside the renewal window opens a new one on its day (the
    label was not valid in between); a withdrawal ends the period; a correction (R15) moves
    the end of the latest one. ``renewal_deadline`` and ``withdrawn_on`` as for
    ``label_status``.
    """

    valid_from: date
    valid_until: date
    renewal_deadline: date | None = None
    withdrawn_on: date | None = None


Periods = tuple[Period, ...]
"""A record's periods in the order its events opened them."""


def renewal_extends(period: Period | None, renewed_on: date) -> bool:
    """Whether a renewal on ``renewed_on`` extends ``period`` rather than opening a new one."""
    return period is not None and period.withdrawn_on is None and renewed_on <= period.valid_until


def awarded(periods: Periods, on: date, valid_until: date, deadline: date | None) -> Periods:
    """``periods`` after an award on ``on``."""
    return (*periods, Period(on, valid_until, deadline))


def renewed(periods: Periods, on: date, valid_until: date, deadline: date | None) -> Periods:
    """``periods`` after a renewal on ``on``."""
    last = periods[-1] if periods else None
    if last is not None and renewal_extends(last, on):
        return (*periods[:-1], replace(last, valid_until=valid_until, renewal_deadline=deadline))
    return (*periods, Period(on, valid_until, deadline))


def withdrawn(periods: Periods, on: date) -> Periods:
    """``periods`` after a withdrawal from ``on`` (the latest period ends)."""
    if not periods:
        return periods
    return (*periods[:-1], replace(periods[-1], withdrawn_on=on))


def corrected(periods: Periods, valid_until: date, deadline: date | None) -> Periods:
    """``periods`` after a correction of the validity (the latest period's end moves)."""
    if not periods:
        return periods
    return (
        *periods[:-1],
        replace(periods[-1], valid_until=valid_until, renewal_deadline=deadline),
    )


def period_on(periods: Periods, on: date) -> Period | None:
    """The period that governs ``on``: the latest to begin on or before it (None: the label
    did not exist yet). A read model picks the same row with ``valid_from <= on`` ordered by
    ``valid_from`` then opening order, both descending."""
    chosen: Period | None = None
    for period in periods:
        if period.valid_from <= on and (chosen is None or period.valid_from >= chosen.valid_from):
            chosen = period
    return chosen


def status_on(periods: Periods, on: date) -> LabelStatus:
    """R10 from the record's history: the status on ``on`` of the period that governs it
    (``none`` before the first award), so a day before an award, or in the gap between a
    lapse and a new award, shows what the label was then, not what it is today."""
    period = period_on(periods, on)
    if period is None:
        return LabelStatus.NONE
    return label_status(on, period.valid_until, period.renewal_deadline, period.withdrawn_on)
