"""Envelope codec: Kafka binary mode and structured JSON, both ways, and refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from clr_events.codec import from_kafka, from_structured, to_kafka, to_structured
from clr_events.envelope import Envelope, schema_uri
from clr_events.errors import EnvelopeError

ENVELOPE = Envelope(
    id=str(uuid.uuid4()),
    source="/label_decisions",
    type="label_decisions.LabelAwarded.v1",
    subject="org-42",
    time=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
    dataschema=schema_uri("label_decisions.LabelAwarded.v1"),
    data={"level": "gold", "valid_until": "2028-03-31", "name": "Klaster Ž"},
    streamversion=3,
    globalposition=1017,
    correlationid="c-1",
)


def test_binary_mode_round_trips_with_the_key_as_the_aggregate_id() -> None:
    record = to_kafka(ENVELOPE)
    assert record.key == b"org-42"
    headers = dict(record.headers)
    assert headers["ce_type"] == b"label_decisions.LabelAwarded.v1"
    assert headers["ce_globalposition"] == b"1017"
    assert headers["content-type"] == b"application/json"
    assert "ce_causationid" not in headers
    assert from_kafka(record.key, record.value, record.headers) == ENVELOPE


def test_structured_mode_round_trips() -> None:
    assert from_structured(to_structured(ENVELOPE)) == ENVELOPE


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], b"{}", "missing CloudEvents attributes"),
        ([("ce_specversion", b"1.0")], b"not json", "not JSON"),
    ],
)
def test_a_record_that_is_not_an_envelope_is_refused_with_a_reason(
    headers: list[tuple[str, bytes]], value: bytes, reason: str
) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        from_kafka(b"k", value, headers)


def test_an_invalid_attribute_is_refused() -> None:
    record = to_kafka(ENVELOPE)
    headers = [(k, b"not-a-type" if k == "ce_type" else v) for k, v in record.headers]
    with pytest.raises(EnvelopeError, match="invalid envelope"):
        from_kafka(record.key, record.value, headers)


def test_headers_are_read_by_their_ce_names_only() -> None:
    record = to_kafka(ENVELOPE)
    headers = [("type", b"other.Thing.v1"), ("id", b"spoofed"), ("trace", b"x"), *record.headers]
    decoded = from_kafka(record.key, record.value, headers)
    assert (decoded.type, decoded.id) == (ENVELOPE.type, ENVELOPE.id)


@pytest.mark.parametrize(
    ("header", "value"),
    [("ce_specversion", b"0.3"), ("content-type", b"text/plain")],
)
def test_a_record_of_another_version_or_content_type_is_refused(header: str, value: bytes) -> None:
    record = to_kafka(ENVELOPE)
    headers = [(k, value if k == header else v) for k, v in record.headers]
    with pytest.raises(EnvelopeError, match="invalid envelope"):
        from_kafka(record.key, record.value, headers)


def test_the_time_is_written_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    envelope = ENVELOPE.model_copy(update={"time": datetime(2026, 3, 1, 13, 0, tzinfo=paris)})
    assert orjson.loads(to_structured(envelope))["time"] == "2026-03-01T12:00:00Z"
    assert dict(to_kafka(envelope).headers)["ce_time"] == b"2026-03-01T12:00:00Z"
