"""The stream cache keeps the streams loaded last, at most its number of events in all."""

from __future__ import annotations

import uuid

from clr_events.application.uow import StreamCache

CODEC = object()


def test_the_streams_loaded_least_recently_go_first_when_the_events_exceed_the_bound() -> None:
    cache = StreamCache(5)
    first, second = uuid.uuid4(), uuid.uuid4()
    cache.put(CODEC, "a", first, (1, 2))
    cache.put(CODEC, "b", second, (1, 2))
    assert cache.get(CODEC, "a") == (first, (1, 2))  # "a" is now the most recent
    cache.put(CODEC, "c", uuid.uuid4(), (1, 2))  # 6 events: "b" goes
    assert cache.get(CODEC, "b") is None
    assert cache.get(CODEC, "a") is not None and cache.get(CODEC, "c") is not None
    cache.put(CODEC, "a", first, (1, 2, 3))  # replaced, not added: 5 events
    assert cache.get(CODEC, "c") is not None


def test_a_stream_longer_than_the_bound_and_a_cache_of_none_keep_nothing() -> None:
    cache = StreamCache(2)
    cache.put(CODEC, "long", uuid.uuid4(), (1, 2, 3))
    assert cache.get(CODEC, "long") is None
    off = StreamCache(0)
    off.put(CODEC, "a", uuid.uuid4(), (1,))
    assert off.get(CODEC, "a") is None


def test_each_codec_has_its_own_view_of_a_stream() -> None:
    cache = StreamCache(10)
    cache.put(CODEC, "a", uuid.uuid4(), (1,))
    assert cache.get(object(), "a") is None
