"""A stored event keeps its data and metadata as stored text and decodes them once, on use."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from clr_events.store.base import StoredEvent


def _stored(data_json: str, metadata_json: str = '{"actor": "a"}') -> StoredEvent:
    return StoredEvent(
        7, "org-1", 2, uuid4(), "T.v1", 1, data_json, metadata_json, datetime.now(UTC), b"h"
    )


def test_data_and_metadata_are_the_decoded_stored_text() -> None:
    stored = _stored('{"level": "gold", "n": [1, 2]}')

    assert stored.data == {"level": "gold", "n": [1, 2]}
    assert stored.metadata == {"actor": "a"}
    assert stored.data_json == '{"level": "gold", "n": [1, 2]}'


def test_decoded_once_then_the_same_object() -> None:
    stored = _stored('{"level": "gold"}')

    first = stored.data
    first["seen"] = True  # a reader that annotates what it got sees its own dict again

    assert stored.data is first
    assert stored.metadata is stored.metadata
    assert stored.data_json == '{"level": "gold"}'  # the stored text is untouched


def test_nothing_is_decoded_until_asked() -> None:
    stored = _stored("not JSON")  # would fail to decode

    assert stored.position == 7
    assert stored.type == "T.v1"


def test_events_compare_by_their_stored_columns() -> None:
    one = _stored('{"a": 1}')
    same = StoredEvent(*one)

    assert same == one
    assert same.data == one.data
