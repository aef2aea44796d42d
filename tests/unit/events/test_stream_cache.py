"""The stream cache keeps the streams loaded last, at most its bytes of stored JSON."""

from __future__ import annotations

import uuid

from clr_events.application.uow import CachedStream, StreamCache

CODEC = object()


def entry(size: int) -> CachedStream:
    return CachedStream(("an event",), uuid.uuid4(), size)


def test_the_streams_loaded_least_recently_go_first_when_the_bytes_exceed_the_bound() -> None:
    cache = StreamCache(500)
    a, b = entry(200), entry(200)
    cache.put(CODEC, "a", a)
    cache.put(CODEC, "b", b)
    assert cache.get(CODEC, "a") is a  # "a" is now the most recent
    cache.put(CODEC, "c", entry(200))  # 600 bytes: "b" goes
    assert cache.get(CODEC, "b") is None
    assert cache.get(CODEC, "a") is a and cache.get(CODEC, "c") is not None
    cache.put(CODEC, "a", entry(300))  # replaced, not added: 500 bytes
    assert cache.get(CODEC, "c") is not None


def test_a_stream_larger_than_the_bound_is_forgotten_and_a_cache_of_none_keeps_nothing() -> None:
    cache = StreamCache(250)
    cache.put(CODEC, "long", entry(200))
    cache.put(CODEC, "long", entry(300))  # it grew past the bound: its old entry goes too
    assert cache.get(CODEC, "long") is None
    cache.put(CODEC, "other", entry(250))
    assert cache.get(CODEC, "other") is not None  # nothing of "long" is counted any more
    off = StreamCache(0)
    off.put(CODEC, "a", entry(1))
    assert off.get(CODEC, "a") is None


def test_each_codec_has_its_own_view_of_a_stream() -> None:
    cache = StreamCache(1000)
    cache.put(CODEC, "a", entry(1))
    assert cache.get(object(), "a") is None
