"""Bounded input types: every request body field and query or path parameter uses one.

Whatever a client sends is checked here, at the edge, before any command runs: a value
outside its bounds is a 422 problem (``RequestValidationError``, see ``problems``), never
a 500, and nothing that PostgreSQL, orjson or Kafka cannot carry is ever stored.

The limits, all in this module:

- Text: no control characters (U+0000-U+001F, U+007F-U+009F); only free text (``Text``)
  may hold tab, line feed and carriage return. (Lone surrogates, which UTF-8 cannot
  encode, pydantic refuses in every ``str`` already.) Lengths count characters:
  ``Name`` (names, titles, places, sectors: 1 to 300, not blank), ``Code`` (short codes
  and versions: 1 to 64), ``Text`` (reasons: 1 to 2000, not blank), ``Url`` (``http`` or
  ``https`` with a host, up to 2048).
- Numbers: finite (no NaN or Infinity), between stated bounds: ``Fte`` 0 to 10,000,
  ``Count`` 0 to 1,000,000, ``Percent`` 0 to 100, ``Measure`` -1,000,000 to 1,000,000,
  ``Months`` 1 to 1200, ``Position`` and ``Offset`` within a PostgreSQL ``bigint``.
- Lists: at most 1000 items (``Many``).
- Dates: ``Day`` lies in [``EARLIEST_DAY``, ``LATEST_DAY``] (1990-01-01 to 2100-12-31);
  ``Happened`` is a ``Day`` not after today (UTC): the day of a fact that has happened
  (an assessment conducted, an approval, a validation, a signature, a join, a meeting,
  an enrolment, a completion, a certification, a withdrawal). ``RecordedAt`` (a read's
  transaction time) is a day, meaning its end in UTC, or a timestamp, in the same years.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PlainValidator, StringConstraints, WithJsonSchema

NAME_MAX = 300
"""Characters of a name, title, place, sector, region or party."""
CODE_MAX = 64
"""Characters of a short code: a kind, strand, call, rating, criteria version."""
TEXT_MAX = 2000
"""Characters of free text (a reason)."""
URL_MAX = 2048
"""Characters of a URL."""
ITEMS_MAX = 1000
"""Items of any list in a request."""
COUNT_MAX = 1_000_000
"""A count: members, meetings, cases, documents, days."""
FTE_MAX = 10_000.0
"""Full-time equivalents of an organisation's management."""
MEASURE_MAX = 1_000_000.0
"""Magnitude of an indicator's score or threshold."""
MONTHS_MAX = 1200
"""A duration in months (a century)."""
BIGINT_MAX = 2**63 - 1
"""The largest PostgreSQL ``bigint``: store positions and offsets."""
EARLIEST_DAY = date(1990, 1, 1)
"""No day before this is accepted."""
LATEST_DAY = date(2100, 12, 31)
"""No day after this is accepted (month arithmetic on it stays far from year 9999)."""

_MULTI_LINE = frozenset("\t\n\r")
_CONTROLS = r"\u0000-\u001f\u007f-\u009f"
_TEXT_CONTROLS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
ONE_LINE_PATTERN = rf"^[^{_CONTROLS}]*$"
"""What ``single_line`` accepts, as a JSON Schema (ECMA-262) pattern for the OpenAPI."""
NAME_PATTERN = rf"^[^{_CONTROLS}]*[^\s{_CONTROLS}][^{_CONTROLS}]*$"
"""What a ``Name`` accepts: one line, not blank."""
TEXT_PATTERN = rf"^[^{_TEXT_CONTROLS}]*[^\s{_TEXT_CONTROLS}][^{_TEXT_CONTROLS}]*$"
"""What a ``Text`` accepts: tab, line feed and carriage return among its lines, not blank."""
URL_PATTERN = r"^[hH][tT][tT][pP][sS]?://[^\s/?#]+\S*$"
"""What a ``Url`` looks like: http or https, a host, no white space."""

T = TypeVar("T")


def today_utc() -> date:
    """Today's date in UTC: the last day a fact may have happened on."""
    return datetime.now(UTC).date()


def _no_controls(value: str, allowed: frozenset[str]) -> str:
    for char in value:
        code = ord(char)
        if (code < 0x20 or 0x7F <= code <= 0x9F) and char not in allowed:
            raise ValueError(f"control character U+{code:04X} is not allowed")
    return value


def single_line(value: str) -> str:
    """``value`` if it holds no control character.

    Raises:
        ValueError: it does.
    """
    return _no_controls(value, frozenset())


def multi_line(value: str) -> str:
    """``value`` if its only control characters are tab, line feed and carriage return.

    Raises:
        ValueError: it holds another control character.
    """
    return _no_controls(value, _MULTI_LINE)


def not_blank(value: str) -> str:
    """``value`` if it holds more than white space.

    Raises:
        ValueError: it is blank.
    """
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def http_url(value: str) -> str:
    """``value`` if it is an absolute ``http`` or ``https`` URL with a host.

    Raises:
        ValueError: another scheme, no host, white space, or not a URL at all.
    """
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as error:
        raise ValueError(f"not a URL: {error}") from error
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("only http and https URLs are accepted")
    if not host or any(char.isspace() for char in value):
        raise ValueError("a URL needs a host and no white space")
    return value


def happened(day: date) -> date:
    """``day`` if it is not after today (UTC).

    Raises:
        ValueError: it lies in the future.
    """
    today = today_utc()
    if day > today:
        raise ValueError(
            f"{day.isoformat()} is after today ({today.isoformat()}, UTC):"
            " only facts that have happened can be recorded"
        )
    return day


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX),
    AfterValidator(single_line),
    AfterValidator(not_blank),
    Field(json_schema_extra={"pattern": NAME_PATTERN}),
]
"""A name, title, place, sector, region or party: one line, 1 to 300 characters."""

Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=CODE_MAX),
    AfterValidator(single_line),
    Field(json_schema_extra={"pattern": ONE_LINE_PATTERN}),
]
"""A short code or version: one line, 1 to 64 characters."""

Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TEXT_MAX),
    AfterValidator(multi_line),
    AfterValidator(not_blank),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),
]
"""Free text (a reason): 1 to 2000 characters, may span lines."""

Url = Annotated[
    str,
    StringConstraints(min_length=1, max_length=URL_MAX),
    AfterValidator(single_line),
    AfterValidator(http_url),
    Field(json_schema_extra={"pattern": URL_PATTERN}),
]
"""An ``http`` or ``https`` URL of up to 2048 characters."""

Fte = Annotated[float, Field(ge=0, le=FTE_MAX, allow_inf_nan=False)]
"""Full-time equivalents: finite, 0 to 10,000."""

Count = Annotated[int, Field(ge=0, le=COUNT_MAX)]
"""A count: 0 to 1,000,000."""

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
"""A percentage: finite, 0 to 100."""

Measure = Annotated[float, Field(ge=-MEASURE_MAX, le=MEASURE_MAX, allow_inf_nan=False)]
"""An indicator's score or threshold: finite, within +-1,000,000."""

Months = Annotated[int, Field(ge=1, le=MONTHS_MAX)]
"""A duration: 1 to 1200 months."""

Position = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
"""A position in an event store: 1 to the largest ``bigint``."""

Offset = Annotated[int, Field(ge=0, le=BIGINT_MAX)]
"""Rows to skip in a listing: 0 to the largest ``bigint``."""

DAY_PATTERN = r"^(199\d|20\d\d|2100)-\d\d-\d\d$"
"""The years a ``Day`` may lie in, for the OpenAPI: JSON Schema bounds no date."""

Day = Annotated[
    date,
    Field(
        ge=EARLIEST_DAY,
        le=LATEST_DAY,
        description=f"A day from {EARLIEST_DAY} to {LATEST_DAY}.",
        json_schema_extra={"pattern": DAY_PATTERN},
    ),
]
"""A day from 1990-01-01 to 2100-12-31."""

Happened = Annotated[Day, AfterValidator(happened)]
"""The day of a fact that has happened: a ``Day`` not after today (UTC)."""

RECORDED_PATTERN = (
    r"^(199\d|20\d\d|2100)-\d\d-\d\d"
    r"([Tt ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?([Zz]|[+-]\d\d:?\d\d)?)?$"
)
"""What ``RecordedAt`` accepts: a day, or an ISO 8601 timestamp (no offset: UTC)."""


def recorded_moment(value: object) -> datetime:
    """A transaction time: a day stands for the end of that day (UTC), a timestamp without
    an offset is UTC; within [``EARLIEST_DAY``, ``LATEST_DAY``].

    Raises:
        ValueError: neither a day nor a timestamp, or out of bounds.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and re.fullmatch(RECORDED_PATTERN, value):
        if len(value) == len("2000-01-01"):
            moment = datetime.combine(date.fromisoformat(value), time.max, UTC)
        else:
            moment = datetime.fromisoformat(value.replace("z", "Z"))
    else:
        raise ValueError("a day (YYYY-MM-DD) or an ISO 8601 timestamp is expected")
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if not EARLIEST_DAY <= moment.astimezone(UTC).date() <= LATEST_DAY:
        raise ValueError(f"a moment from {EARLIEST_DAY} to {LATEST_DAY} is expected")
    return moment


RecordedAt = Annotated[
    datetime,
    PlainValidator(recorded_moment),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": RECORDED_PATTERN,
            "description": "Transaction time: the registry as it was recorded at this moment"
            " (a day: at the end of that day, UTC; a timestamp without an offset: UTC),"
            f" from {EARLIEST_DAY} to {LATEST_DAY}.",
        }
    ),
]
"""As recorded at (transaction time): a day (its end, UTC) or a timestamp, 1990 to 2100."""

Many = Annotated[list[T], Field(max_length=ITEMS_MAX)]
"""A list of at most 1000 items."""

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
"""An identifier in a path or body: what stream ids are made of."""
