"""Envelope <-> Kafka record (CloudEvents binary mode) and <-> JSON (structured mode).

Binary mode on Kafka: every attribute is a ``ce_<name>`` header, ``datacontenttype`` is the
``content-type`` header, the value is the JSON data and the key is the subject (the
aggregate id), so one aggregate's events share a partition and stay in order. The
``cloudevents`` SDK decodes both forms (tests/contracts/test_envelope_conformance.py); it is
not used on the hot path, where these few lines are several times faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from clr_events.envelope import Envelope
from clr_events.errors import EnvelopeError

_REQUIRED = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "streamversion",
        "globalposition",
    }
)


_FIELD_OF_HEADER = {
    **{
        f"ce_{name}": name
        for name in Envelope.model_fields
        if name not in ("data", "datacontenttype")
    },
    "content-type": "datacontenttype",
}
"""Kafka header -> envelope field; other headers (and unknown extensions) are ignored."""


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What goes on the wire: key, value and headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _attributes(envelope: Envelope) -> dict[str, str]:
    out = {
        "specversion": envelope.specversion,
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "subject": envelope.subject,
        "time": format_time(envelope.time),
        "streamversion": str(envelope.streamversion),
        "globalposition": str(envelope.globalposition),
    }
    for name in ("dataschema", "correlationid", "causationid"):
        value = getattr(envelope, name)
        if value is not None:
            out[name] = value
    if envelope.prevposition is not None:
        out["prevposition"] = str(envelope.prevposition)
    return out


def to_kafka(envelope: Envelope) -> KafkaRecord:
    """Binary-mode Kafka record of an envelope."""
    headers = [(f"ce_{name}", value.encode()) for name, value in _attributes(envelope).items()]
    headers.append(("content-type", envelope.datacontenttype.encode()))
    return KafkaRecord(envelope.subject.encode(), orjson.dumps(envelope.data), headers)


def from_kafka(key: bytes | None, value: bytes | None, headers: Any) -> Envelope:
    """Decode a binary-mode Kafka record.

    Raises:
        EnvelopeError: a required attribute is missing or invalid, or the value is not JSON.
    """
    fields: dict[str, Any] = {
        field: raw.decode("utf-8", errors="replace")
        for name, raw in headers or ()
        if (field := _FIELD_OF_HEADER.get(name)) is not None and raw is not None
    }
    if "subject" not in fields and key is not None:
        fields["subject"] = key.decode("utf-8", errors="replace")
    try:
        fields["data"] = orjson.loads(value or b"")
    except orjson.JSONDecodeError as error:
        raise EnvelopeError(f"the value is not JSON: {error}") from None
    return _validate(fields)


def to_structured(envelope: Envelope) -> bytes:
    """Structured-mode JSON document (``application/cloudevents+json``)."""
    document: dict[str, Any] = dict(_attributes(envelope))
    document["streamversion"] = envelope.streamversion
    document["globalposition"] = envelope.globalposition
    if envelope.prevposition is not None:
        document["prevposition"] = envelope.prevposition
    document["datacontenttype"] = envelope.datacontenttype
    document["data"] = envelope.data
    return orjson.dumps(document)


def from_structured(document: bytes | str) -> Envelope:
    """Decode a structured-mode JSON document.

    Raises:
        EnvelopeError: the document is not JSON or not a valid envelope.
    """
    try:
        fields = orjson.loads(document)
    except orjson.JSONDecodeError as error:
        raise EnvelopeError(f"not JSON: {error}") from None
    if not isinstance(fields, dict):
        raise EnvelopeError("a structured CloudEvent is a JSON object")
    return _validate(fields)


def _validate(fields: dict[str, Any]) -> Envelope:
    missing = _REQUIRED.difference(fields)
    if missing:
        raise EnvelopeError(f"missing CloudEvents attributes: {', '.join(sorted(missing))}")
    try:
        return Envelope.model_validate(fields)
    except ValidationError as error:
        raise EnvelopeError(f"invalid envelope: {error}") from None
