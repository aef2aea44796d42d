"""Envelope <-> Kafka record (CloudEvents binary mode) and <-> JSON (structured mode).

Binary mode on Kafka: every attribute is a ``ce_<name>`` header, ``datacontenttype`` is the
``content-type`` header, the value is the JSON data and the key is the subject (the
aggregate id), so one aggregate's events share a partition and stay in order. The
``cloudevents`` SDK decodes both forms (tests/contracts/test_envelope_conformance.py); it is
not used on the hot path, where these few lines are several times faster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from clr_events.envelope import Envelope
from clr_events.errors import EnvelopeError

_REQUIRED = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "streamversion", "globalposition"}
)
_REQUIRED_HEADERS = frozenset(f"ce_{name}" for name in _REQUIRED)

_VALIDATOR = Envelope.__pydantic_validator__
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What goes on the wire: key, value and headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``."""
    if moment.utcoffset() != _ZERO:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat() + "Z"


_UNSET: Any = object()
_SPECVERSION = ("ce_specversion", b"1.0")
_CONTENT_TYPE = ("content-type", b"application/json")


def to_kafka(
    envelope: Envelope,
    *,
    prevposition: int | None = _UNSET,
    publicversion: int | None = _UNSET,
    dataschema: str | None = _UNSET,
) -> KafkaRecord:
    """Binary-mode Kafka record of an envelope.

    Headers in a fixed order: the required attributes, then ``dataschema``,
    ``correlationid``, ``causationid``, ``traceparent``, ``tracestate``, ``prevposition``
    and ``publicversion`` where set, then ``content-type``. ``prevposition``,
    ``publicversion`` and ``dataschema`` given here are stamped instead of the envelope's
    own (the relay numbers the events it publishes without copying each envelope).
    """
    e = envelope
    headers = [
        _SPECVERSION,  # the only value the envelope admits
        ("ce_id", e.id.encode()),
        ("ce_source", e.source.encode()),
        ("ce_type", e.type.encode()),
        ("ce_subject", e.subject.encode()),
        ("ce_time", format_time(e.time).encode()),
        ("ce_streamversion", b"%d" % e.streamversion),
        ("ce_globalposition", b"%d" % e.globalposition),
    ]
    if dataschema is _UNSET:
        dataschema = e.dataschema
    if dataschema is not None:
        headers.append(("ce_dataschema", dataschema.encode()))
    if e.correlationid is not None:
        headers.append(("ce_correlationid", e.correlationid.encode()))
    if e.causationid is not None:
        headers.append(("ce_causationid", e.causationid.encode()))
    if e.traceparent is not None:
        headers.append(("ce_traceparent", e.traceparent.encode()))
        if e.tracestate is not None:
            headers.append(("ce_tracestate", e.tracestate.encode()))
    if prevposition is _UNSET:
        prevposition = e.prevposition
    if prevposition is not None:
        headers.append(("ce_prevposition", b"%d" % prevposition))
    if publicversion is _UNSET:
        publicversion = e.publicversion
    if publicversion is not None:
        headers.append(("ce_publicversion", b"%d" % publicversion))
    headers.append(_CONTENT_TYPE)  # the only value the envelope admits
    return KafkaRecord(e.subject.encode(), orjson.dumps(e.data), headers)


def from_kafka(key: bytes | None, value: bytes | None, headers: Any) -> Envelope:
    """Decode a binary-mode Kafka record.

    The headers are validated as they come, by the envelope's aliases (pydantic reads the
    UTF-8 of each): headers that name no attribute are ignored, and so are attribute names
    without the ``ce_`` prefix.

    Raises:
        EnvelopeError: a required attribute is missing or invalid, or the value is not JSON.
    """
    fields: dict[str, Any] = dict(headers or ())
    if "ce_subject" not in fields and key is not None:
        fields["ce_subject"] = key
    try:
        fields["data"] = orjson.loads(value or b"")
    except orjson.JSONDecodeError as error:
        raise EnvelopeError(f"the value is not JSON: {error}") from None
    if type(fields["data"]) is not dict:
        raise EnvelopeError("the value is not a JSON object")
    if missing := _REQUIRED_HEADERS.difference(fields):
        raise _missing(header.removeprefix("ce_") for header in missing)
    # the two constants are checked here: a literal does not take bytes
    if fields.pop("ce_specversion") != b"1.0":
        raise EnvelopeError("invalid envelope: specversion must be 1.0")
    if fields.pop("content-type", b"application/json") != b"application/json":
        raise EnvelopeError("invalid envelope: datacontenttype must be application/json")
    return _validate(fields, by_alias=True)


def to_structured(envelope: Envelope) -> bytes:
    """Structured-mode JSON document (``application/cloudevents+json``): every attribute
    that is set, ``data`` last, the time in UTC as in binary mode (pydantic writes it)."""
    if envelope.time.utcoffset() != _ZERO:
        envelope = envelope.model_copy(update={"time": envelope.time.astimezone(UTC)})
    return envelope.__pydantic_serializer__.to_json(envelope, exclude_none=True)


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
    if missing := _REQUIRED.difference(fields):
        raise _missing(missing)
    if "data" in fields and type(fields["data"]) is not dict:
        raise EnvelopeError("invalid envelope: data is not a JSON object")
    return _validate(fields, by_alias=False)


def _missing(attributes: Iterable[str]) -> EnvelopeError:
    return EnvelopeError(f"missing CloudEvents attributes: {', '.join(sorted(attributes))}")


def _validate(fields: dict[str, Any], *, by_alias: bool) -> Envelope:
    try:
        envelope: Envelope = _VALIDATOR.validate_python(
            fields, by_alias=by_alias, by_name=not by_alias
        )
    except ValidationError as error:
        raise EnvelopeError(f"invalid envelope: {error}") from None
    return envelope
