"""Bounds of every public read's parameters (documented in the service's README).

Everything here is public and unauthenticated, so each query and path parameter is
bounded before it reaches PostgreSQL: a value outside is a 422 problem, never a 500 or a
query that runs for minutes. Days, ids and the character rules are the write side's
(``clr_events.service.inputs``); the bounds of reads are here.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from clr_events.months import add_months
from clr_events.service import inputs
from clr_events.service.commands import Id
from clr_events.service.inputs import Day, RecordedAt

__all__ = [
    "MAX_LIMIT",
    "MAX_OFFSET",
    "MAX_SERIES_MONTHS",
    "MAX_TEXT",
    "Blank",
    "Country",
    "Day",
    "Id",
    "Limit",
    "Offset",
    "Position",
    "RecordedAt",
    "Role",
    "Text",
    "earliest_start",
    "http_url",
    "like_pattern",
]

MAX_LIMIT = 1000
"""Rows per page of the list and the feed."""
MAX_OFFSET = 100_000
"""Rows skipped at most by a page of the list."""
MAX_SERIES_MONTHS = 600
"""Points (months) of a count series at most: 50 years."""
MAX_TEXT = 100
"""Characters of a search text at most."""


def _absent_if_blank(value: object) -> object:
    return None if value == "" else value


Blank = BeforeValidator(_absent_if_blank)
"""On an optional parameter: empty is absent (a form's "All ..." option sends ``""``)."""
Text = Annotated[
    str,
    StringConstraints(max_length=MAX_TEXT),
    AfterValidator(inputs.single_line),
    Field(json_schema_extra={"pattern": inputs.ONE_LINE_PATTERN}),
]
"""A search text: no control characters, at most ``MAX_TEXT`` characters."""
Position = Annotated[int, Field(ge=0, le=inputs.BIGINT_MAX)]
"""A feed cursor: a label_decisions position, 0 before the first."""
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2."""
Role = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
"""An expert role, e.g. ``silver_auditor``."""


def earliest_start(end: date) -> date:
    """The first day a series ending on ``end`` may start on (``MAX_SERIES_MONTHS`` before)."""
    return add_months(end, -MAX_SERIES_MONTHS)


def like_pattern(text: str) -> str:
    """An ``ILIKE ... ESCAPE '\\'`` pattern matching ``text`` anywhere, taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def http_url(value: object) -> bool:
    """Whether ``value`` is an absolute http(s) URL, safe as a link's ``href``.

    Stored websites are shown as they came; only these become links (never
    ``javascript:``, ``data:`` or anything a browser would read as another scheme).
    """
    try:
        return isinstance(value, str) and bool(inputs.http_url(inputs.single_line(value)))
    except ValueError:
        return False
