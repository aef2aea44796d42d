"""Pure pieces of the public read side's bounds: search patterns, link URLs, entity tags."""

from __future__ import annotations

from datetime import date

import pytest

from projections.headers import etag_of, matches
from projections.params import MAX_SERIES_MONTHS, earliest_start, http_url, like_pattern


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("abc", "%abc%"),
        ("100%", "%100\\%%"),
        ("a_b", "%a\\_b%"),
        ("c:\\x", "%c:\\\\x%"),
        ("\\%", "%\\\\\\%%"),
    ],
)
def test_a_search_text_is_taken_literally(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


@pytest.mark.parametrize(
    "url", ["https://cluster.example.eu", "http://x.example/a?b=c#d", "HTTPS://X.EU/"]
)
def test_http_and_https_urls_are_links(url: str) -> None:
    assert http_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:x",
        "//evil.example",
        "/relative",
        "https://",
        "https://a.example/\nb",
        "https://a.example/\x00",
        "www.example.eu",
        "",
        None,
        42,
    ],
)
def test_anything_else_is_not(url: object) -> None:
    assert not http_url(url)


def test_a_series_reaches_back_at_most_its_months() -> None:
    assert earliest_start(date(2026, 3, 31)) == date(2026 - MAX_SERIES_MONTHS // 12, 3, 31)


def test_if_none_match_compares_weakly_and_takes_lists_and_star() -> None:
    tag = etag_of(b"body")
    assert tag.startswith('W/"') and tag != etag_of(b"other")
    assert matches(tag, tag)
    assert matches(tag.removeprefix("W/"), tag)
    assert matches(f'"a", {tag}', tag)
    assert matches("*", tag)
    assert not matches('W/"a"', tag)
    assert not matches(None, tag)
    assert not matches("", tag)
