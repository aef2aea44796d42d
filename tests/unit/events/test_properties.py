"""Properties of the shared arithmetic and round trips, over generated inputs.

Month arithmetic (``clr_events.months``): moving by whole months shifts the month index
exactly, clamps the day to a shorter month's end and to nothing else, is monotonic, and
undoes itself up to that clamp. The envelope codec: binary Kafka mode and structured JSON
both give back the envelope that went in, for any valid attributes and any JSON data,
text beyond ASCII included. The hash chain: an untouched store verifies, and a change to
any field of any stored event makes verification fail at that event.
"""

from __future__ import annotations

import asyncio
import calendar
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clr_events.codec import from_kafka, from_structured, to_kafka, to_structured
from clr_events.envelope import Envelope
from clr_events.months import add_months, end_of_month
from clr_events.store.base import NewEvent
from clr_events.store.memory import InMemoryEventStore

PROPERTIES = settings(max_examples=100, deadline=None, derandomize=True)

# ------------------------------------------------------------------ month arithmetic
DAYS = st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31))
MONTHS = st.integers(min_value=-600, max_value=600)


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


@PROPERTIES
@given(DAYS, MONTHS)
def test_adding_months_moves_the_month_exactly_and_clamps_only_the_day(
    day: date, months: int
) -> None:
    moved = add_months(day, months)
    assert month_index(moved) == month_index(day) + months
    last = calendar.monthrange(moved.year, moved.month)[1]
    assert moved.day == min(day.day, last)


@PROPERTIES
@given(DAYS, MONTHS)
def test_moving_back_gives_the_day_again_up_to_the_clamp(day: date, months: int) -> None:
    there = add_months(day, months)
    back = add_months(there, -months)
    assert back == day.replace(day=min(day.day, there.day))
    if day.day <= 28:
        assert back == day


@PROPERTIES
@given(DAYS, DAYS, MONTHS)
def test_adding_months_keeps_the_order_of_days(first: date, second: date, months: int) -> None:
    early, late = sorted((first, second))
    assert add_months(early, months) <= add_months(late, months)


@PROPERTIES
@given(DAYS, MONTHS, MONTHS)
def test_more_months_is_later(day: date, one: int, other: int) -> None:
    fewer, more = sorted((one, other))
    if fewer < more:
        assert add_months(day, fewer) < add_months(day, more)


@PROPERTIES
@given(DAYS, MONTHS, MONTHS)
def test_months_add_up_from_a_day_every_month_has(day: date, one: int, other: int) -> None:
    first = day.replace(day=min(day.day, 28))
    assert add_months(add_months(first, one), other) == add_months(first, one + other)


@PROPERTIES
@given(DAYS, MONTHS)
def test_the_end_of_a_month_is_its_last_day(day: date, months: int) -> None:
    end = end_of_month(add_months(day, months))
    assert end.day == calendar.monthrange(end.year, end.month)[1]
    assert (end + timedelta(days=1)).day == 1
    assert end_of_month(end) == end
    assert end_of_month(day) >= day


@PROPERTIES
@given(st.dates(), st.integers(min_value=-(10**6), max_value=10**6))
def test_a_move_beyond_the_calendar_is_a_value_error(day: date, months: int) -> None:
    try:
        moved = add_months(day, months)
    except ValueError:  # what the services turn into a 422, never anything else
        assert not 1 <= (month_index(day) + months) // 12 <= 9999
    else:
        assert month_index(moved) == month_index(day) + months


# ------------------------------------------------------------------- envelope codec
TEXT = st.text(min_size=1, max_size=40)
"""Any Unicode text, non-ASCII included; surrogates are not text a UTF-8 header can hold."""
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2999, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]),
)
ATTRIBUTES = st.fixed_dictionaries(
    dict(
        id=TEXT,
        source=TEXT.map(lambda s: "/" + s),
        type=st.from_regex(r"\A[a-z][a-z_]{0,12}\.[A-Z][A-Za-z0-9]{0,12}\.v[1-9][0-9]{0,2}\Z"),
        subject=TEXT,
        time=TIMES,
        dataschema=st.none() | TEXT,
        streamversion=st.integers(min_value=1, max_value=2**62),
        globalposition=st.integers(min_value=1, max_value=2**62),
        prevposition=st.none() | st.integers(min_value=0, max_value=2**62),
        correlationid=st.none() | TEXT,
        causationid=st.none() | TEXT,
        data=st.dictionaries(st.text(max_size=10), JSON, max_size=6),
    )
)
ENVELOPES = ATTRIBUTES.map(lambda fields: Envelope(**fields))


def same_event(decoded: Envelope, original: Envelope) -> None:
    """Equal attribute by attribute; the time as the same instant (it travels in UTC)."""
    assert decoded.time == original.time
    assert decoded.model_dump(exclude={"time"}) == original.model_dump(exclude={"time"})


@PROPERTIES
@given(ENVELOPES)
def test_binary_mode_gives_back_the_envelope(envelope: Envelope) -> None:
    record = to_kafka(envelope)
    assert record.key == envelope.subject.encode()
    same_event(from_kafka(record.key, record.value, record.headers), envelope)


@PROPERTIES
@given(ENVELOPES)
def test_structured_mode_gives_back_the_envelope(envelope: Envelope) -> None:
    same_event(from_structured(to_structured(envelope)), envelope)


@PROPERTIES
@given(ENVELOPES)
def test_both_modes_carry_the_same_event(envelope: Envelope) -> None:
    record = to_kafka(envelope)
    via_kafka = from_kafka(record.key, record.value, record.headers)
    assert to_structured(via_kafka) == to_structured(envelope)


# ----------------------------------------------------------------------- hash chain
STREAMS = st.lists(
    st.tuples(
        st.sampled_from(["org:1", "org:2", "label:ÿ", "person:😀"]),
        st.lists(
            st.builds(
                NewEvent,
                type=st.sampled_from(["Registered", "Changed", "Awarded"]),
                data=st.dictionaries(st.text(max_size=8), JSON, max_size=4),
                metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
                schema_version=st.integers(min_value=1, max_value=3),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=6,
)


def filled(appends: list[tuple[str, list[NewEvent]]]) -> InMemoryEventStore:
    """A store with the appends made, each at whatever version its stream is."""

    async def fill() -> InMemoryEventStore:
        store = InMemoryEventStore()
        for stream_id, events in appends:
            await store.append(stream_id, None, events)
        return store

    return asyncio.run(fill())


def altered(field: str, value: Any) -> Any:
    """A different value of the same kind for one stored field."""
    match value:
        case bool():
            return not value
        case int():
            return value + 1
        case str():
            return value + " "
        case bytes():
            return bytes([value[0] ^ 1]) + value[1:]
        case datetime():
            return value + timedelta(microseconds=1)
        case _:  # the event id
            return type(value)(int=(value.int + 1) % 2**128)


FIELDS = [
    "position",
    "stream_id",
    "version",
    "event_id",
    "type",
    "schema_version",
    "data_json",
    "metadata_json",
    "recorded_at",
    "hash",
]


@PROPERTIES
@given(STREAMS)
def test_an_untouched_chain_verifies(appends: list[tuple[str, list[NewEvent]]]) -> None:
    store = filled(appends)
    report = asyncio.run(store.verify())
    assert report.ok, report.problems
    assert report.checked == len(store.rows) == sum(len(events) for _, events in appends)


@PROPERTIES
@given(STREAMS, st.data())
def test_changing_any_field_of_any_event_fails_verification(
    appends: list[tuple[str, list[NewEvent]]], data: st.DataObject
) -> None:
    store = filled(appends)
    index = data.draw(st.integers(min_value=0, max_value=len(store.rows) - 1), label="event")
    field = data.draw(st.sampled_from(FIELDS), label="field")
    row = store.rows[index]
    store.rows[index] = row._replace(**{field: altered(field, getattr(row, field))})
    report = asyncio.run(store.verify())
    assert not report.ok
    position = row.position
    assert any(str(position) in problem for problem in report.problems), report.problems


def test_the_field_list_is_every_stored_field() -> None:
    rows = filled([("s", [NewEvent("T", {})])]).rows
    assert set(FIELDS) == set(rows[0]._fields)
