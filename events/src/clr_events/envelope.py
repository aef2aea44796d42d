"""The CloudEvents 1.0 envelope every public event travels in.

Attributes: ``id`` (event id), ``source`` (``/<service>``), ``type``
(``<service>.<EventName>.v<major>``), ``subject`` (aggregate id, also the Kafka key),
``time``, ``datacontenttype`` and ``dataschema``; extensions ``streamversion`` and
``globalposition`` (the producing store's stream version and global position),
``prevposition`` (the global position of the event published before this one on the same
topic, 0 for the first: private events leave holes in the positions a topic carries, and
this chain lets a subscriber prove it has every public event, across partitions),
``publicversion`` (1, 2, 3, ... per subject over the events published on the topic: no
gaps, where ``streamversion`` also counts the private events never published),
``correlationid`` / ``causationid``, and ``traceparent`` / ``tracestate`` (the
CloudEvents distributed tracing extension: the W3C trace context of the event's
creation, carried unchanged; ``clr_events.observability.tracing``). Extension names are
lowercase alphanumerics, as the spec requires.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema
from pydantic_core import core_schema

TYPE_PATTERN = re.compile(
    r"^(?P<context>[a-z][a-z_]*)\.(?P<name>[A-Z][A-Za-z0-9]*)\.v(?P<major>[1-9][0-9]*)$"
)
SCHEMA_URI_PREFIX = "urn:cluster-label-registry:schema:"


def schema_uri(type_: str) -> str:
    """The name of a contract type's JSON Schema, its ``$id``
    (schemas/jsonschema/<context>/<Name>.v<N>.json); the ``dataschema`` of events
    published before their schemas were served."""
    return SCHEMA_URI_PREFIX + type_


def schema_url(type_: str, base: str) -> str:
    """Where a contract type's JSON Schema is served: the ``dataschema`` the relays stamp,
    ``<base>/<context>/<Name>.v<N>.json`` (``base``: ``CLR_SCHEMA_BASE_URL``)."""
    match = TYPE_PATTERN.match(type_)
    if match is None:
        raise ValueError(f"not a contract type: {type_!r}")
    context, name, major = match.group("context", "name", "major")
    return f"{base.rstrip('/')}/{context}/{name}.v{major}.json"


_AS_IT_IS = GetPydanticSchema(lambda _type, _handler: core_schema.any_schema())
"""Taken and written as it is: ``data`` is not copied on validation (a replay decodes
millions); the codecs check it is a JSON object, and code that builds an envelope is
type-checked. (``SkipValidation`` would also serialize it through a Python function.)"""


def _header(name: str) -> Any:
    """The field's binary-mode Kafka header, its alias (``codec.from_kafka`` validates by it)."""
    return Field(validation_alias=f"ce_{name}")


class Envelope(BaseModel):
    """One public event in CloudEvents 1.0 form.

    Each attribute's alias is its Kafka header in binary mode (``ce_<name>``,
    ``content-type``): the Kafka codec validates the headers as they come, by alias; every
    other reader validates by name.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    specversion: Literal["1.0"] = Field("1.0", validation_alias="ce_specversion")
    id: Annotated[str, _header("id"), Field(min_length=1)]
    source: Annotated[str, _header("source"), Field(min_length=1)]
    type: Annotated[str, _header("type"), Field(pattern=TYPE_PATTERN.pattern)]
    subject: Annotated[str, _header("subject"), Field(min_length=1)]
    time: Annotated[datetime, _header("time")]
    datacontenttype: Literal["application/json"] = Field(
        "application/json", validation_alias="content-type"
    )
    dataschema: Annotated[str | None, _header("dataschema")] = None
    streamversion: Annotated[int, _header("streamversion"), Field(ge=1)]
    globalposition: Annotated[int, _header("globalposition"), Field(ge=1)]
    prevposition: Annotated[int | None, _header("prevposition"), Field(ge=0)] = None
    publicversion: Annotated[int | None, _header("publicversion"), Field(ge=1)] = None
    correlationid: Annotated[str | None, _header("correlationid")] = None
    causationid: Annotated[str | None, _header("causationid")] = None
    traceparent: Annotated[str | None, _header("traceparent")] = None
    tracestate: Annotated[str | None, _header("tracestate")] = None
    data: Annotated[dict[str, Any], _AS_IT_IS] = Field(validation_alias="data")
