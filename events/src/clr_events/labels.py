"""R10, in one place: a label's status on a day, from the dates its events carry.

A label is withdrawn from ``withdrawn_on`` on; otherwise valid up to ``valid_until``; then
in its renewal window up to ``renewal_deadline`` (the last day an assessment still renews
it, which the decision that set ``valid_until`` carries: label decisions know the policy,
nobody else needs to); then expired. No validity yet: none.

``label_status`` is the rule; ``status_sql`` is the same rule as a SQL expression, for a
read model that filters and counts by status in PostgreSQL (tests check the two agree).
Pure: standard library only.
"""

from __future__ import annotations

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
