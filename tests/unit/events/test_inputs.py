"""The bounded input types every request model and query parameter uses."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from clr_events.service import inputs
from clr_events.service.inputs import (
    Code,
    Count,
    Day,
    Fte,
    Happened,
    Many,
    Measure,
    Name,
    Offset,
    Percent,
    Position,
    Text,
    Url,
)


def valid(kind: Any, value: Any) -> Any:
    return TypeAdapter(kind).validate_python(value)


def refusal(kind: Any, value: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(kind).validate_python(value)
    return str(raised.value)


def from_json(kind: Any, raw: str) -> Any:
    return TypeAdapter(kind).validate_json(raw)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\t", "\n", "\r", "\x1f", "\x7f", "\x85", "\x9f"])
def test_a_name_or_code_holds_no_control_character(char: str) -> None:
    assert f"U+{ord(char):04X}" in refusal(Name, f"Cluster{char}name")
    assert "control character" in refusal(Code, f"a{char}")
    assert "control character" in refusal(Url, f"https://example.eu/{char}")


def test_free_text_may_span_lines_but_holds_no_other_control_character() -> None:
    assert valid(Text, "first line\n\tsecond line\r\n") == "first line\n\tsecond line\r\n"
    assert "U+0000" in refusal(Text, "a reason\x00")
    assert "U+001B" in refusal(Text, "a reason \x1b[31m")


def test_a_lone_surrogate_is_refused_however_it_arrives() -> None:
    assert "valid string" in refusal(Name, "Cluster \ud800")
    with pytest.raises(ValidationError):
        from_json(Name, '"Cluster \\udc00"')


def test_text_outside_the_control_ranges_passes_unchanged() -> None:
    name = "Pôle Végépolys Valley \u2013 Ελλάδα 集群 🚀 \xa0"
    assert valid(Name, name) == name


def test_every_string_is_bounded_and_names_are_not_blank() -> None:
    assert valid(Name, "x" * inputs.NAME_MAX) == "x" * inputs.NAME_MAX
    assert "at most 300 characters" in refusal(Name, "x" * 100_000)
    assert "at most 64 characters" in refusal(Code, "c" * 65)
    assert "at most 2000 characters" in refusal(Text, "t" * 2001)
    assert "at most 2048 characters" in refusal(Url, "https://example.eu/" + "p" * 2048)
    assert "blank" in refusal(Name, "   ")
    assert "blank" in refusal(Text, " \n ")
    assert "at least 1 character" in refusal(Code, "")


@pytest.mark.parametrize("url", ["https://example.eu", "http://cluster.example.eu/path?q=1"])
def test_http_and_https_urls_pass(url: str) -> None:
    assert valid(Url, url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://example.eu/file",
        "file:///etc/passwd",
        "data:text/html,hi",
        "example.eu",
        "https://",
        "https://exa mple.eu",
        "http://[::1",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    refusal(Url, url)


@pytest.mark.parametrize("raw", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_numbers_are_finite(raw: str) -> None:
    for kind in (Fte, Percent, Measure):
        with pytest.raises(ValidationError):
            from_json(kind, raw)


def test_numbers_have_sane_bounds() -> None:
    assert valid(Fte, 2.5) == 2.5
    assert "less than or equal to 10000" in refusal(Fte, 10_000.5)
    assert "greater than or equal to 0" in refusal(Fte, -1)
    assert valid(Count, 1_000_000) == 1_000_000
    assert "less than or equal to 1000000" in refusal(Count, 1_000_001)
    assert "less than or equal to 100" in refusal(Percent, 100.1)
    assert valid(Measure, -3.5) == -3.5


def test_integers_beyond_64_bits_are_refused_not_crashed_on() -> None:
    with pytest.raises(ValidationError):
        from_json(Count, "1e30")
    with pytest.raises(ValidationError):
        from_json(Count, "1000000000000000000000000000000")
    assert "less than or equal to 9223372036854775807" in refusal(Position, 99999999999999999999)
    assert valid(Position, 2**63 - 1) == 2**63 - 1
    assert "greater than or equal to 1" in refusal(Position, 0)
    assert "greater than or equal to 0" in refusal(Offset, -1)


def test_days_lie_in_the_documented_range() -> None:
    assert valid(Day, inputs.EARLIEST_DAY) == date(1990, 1, 1)
    assert valid(Day, inputs.LATEST_DAY) == date(2100, 12, 31)
    assert "greater than or equal to 1990-01-01" in refusal(Day, "1989-12-31")
    assert "less than or equal to 2100-12-31" in refusal(Day, "9999-12-31")


def test_a_fact_cannot_have_happened_after_today_in_utc() -> None:
    today = inputs.today_utc()
    assert valid(Happened, today) == today
    assert valid(Happened, "2019-01-10") == date(2019, 1, 10)
    tomorrow = today + timedelta(days=1)
    message = refusal(Happened, tomorrow)
    assert f"{tomorrow.isoformat()} is after today ({today.isoformat()}, UTC)" in message
    assert "less than or equal to 2100-12-31" in refusal(Happened, "9999-12-31")


def test_lists_are_bounded() -> None:
    assert len(valid(Many[Name], ["a"] * inputs.ITEMS_MAX)) == 1000
    assert "at most 1000 items" in refusal(Many[Name], ["a"] * 1001)
    assert "U+0000" in refusal(Many[Name], ["a", "b\x00"])


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (Name, "Cluster name"),
        (Name, "   "),
        (Name, "a\x00b"),
        (Name, "two\nlines"),
        (Name, "C1 \x85"),
        (Code, "ESCP-4i"),
        (Code, "a\tb"),
        (Text, "first\r\n\tsecond"),
        (Text, " \n "),
        (Text, "bell\x07"),
        (Url, "https://example.eu/a?b=c"),
        (Url, "ftp://example.eu"),
        (Url, "https://exa mple.eu"),
    ],
)
def test_the_published_pattern_agrees_with_the_validation(kind: Any, value: str) -> None:
    pattern = TypeAdapter(kind).json_schema()["pattern"]
    try:
        TypeAdapter(kind).validate_python(value)
        accepted = True
    except ValidationError:
        accepted = False
    assert bool(re.match(pattern, value)) == accepted
