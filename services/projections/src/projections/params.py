"""Bounds of every public read's parameters (documented in the service's README).

Everything here is public and unauthenticated, so each query and path parameter is
bounded before it reaches PostgreSQL: a value outside is a 422 problem, never a 500 or a
query that runs for minutes. These types can move to the shared input types in
``clr_events`` once there are some.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from clr_events.months import add_months
from clr_events.service.commands import Id

__all__ = [
    "MAX_DAY",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "MAX_POSITION",
    "MAX_SERIES_MONTHS",
    "MAX_TEXT",
    "MIN_DAY",
    "Blank",
    "Country",
    "Day",
    "Id",
    "Limit",
    "Offset",
    "Position",
    "Role",
    "Text",
    "earliest_start",
    "http_url",
    "like_pattern",
]

MIN_DAY = date(1990, 1, 1)
MAX_DAY = date(2100, 12, 31)
"""Days asked for (``on``, ``from``, ``to``) lie in these years."""
MAX_POSITION = 2**63 - 1
"""Feed cursors are PostgreSQL ``bigint`` positions."""
MAX_LIMIT = 1000
"""Rows per page of the list and the feed."""
MAX_OFFSET = 100_000
"""Rows skipped at most by a page of the list."""
MAX_SERIES_MONTHS = 600
"""Points (months) of a count series at most: 50 years."""
MAX_TEXT = 100
"""Characters of a search text at most."""


def _printable(value: str) -> str:
    """``value`` without control characters (PostgreSQL text cannot hold U+0000).

    Raises:
        ValueError: a control character or a lone surrogate is in it.
    """
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ValueError("control characters are not allowed")
    return value


def _absent_if_blank(value: object) -> object:
    return None if value == "" else value


Blank = BeforeValidator(_absent_if_blank)
"""On an optional parameter: empty is absent (a form's "All ..." option sends ``""``)."""
Text = Annotated[
    str,
    StringConstraints(max_length=MAX_TEXT),
    AfterValidator(_printable),
    Field(json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f-\x9f]*$"}),
]
"""A search text: printable, at most ``MAX_TEXT`` characters."""
Day = Annotated[
    date,
    Field(
        ge=MIN_DAY,
        le=MAX_DAY,
        description=f"A day from {MIN_DAY} to {MAX_DAY}.",
        # JSON Schema bounds no date: the pattern tells clients (and fuzzers) the years
        json_schema_extra={"pattern": r"^(199\d|20\d\d|2100)-\d\d-\d\d$"},
    ),
]
Position = Annotated[int, Field(ge=0, le=MAX_POSITION)]
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


_HTTP_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f-\x9f]+", re.IGNORECASE)


def http_url(value: object) -> bool:
    """Whether ``value`` is an absolute http(s) URL, safe as a link's ``href``.

    Stored websites are shown as they came; only these become links (never
    ``javascript:``, ``data:`` or anything a browser would read as another scheme).
    """
    return isinstance(value, str) and _HTTP_URL.fullmatch(value) is not None
