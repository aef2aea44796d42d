"""The CloudEvents 1.0 envelope every public event travels in.

Attributes: ``id`` (event id), ``source`` (``/<service>``), ``type``
(``<service>.<EventName>.v<major>``), ``subject`` (aggregate id, also the Kafka key),
``time``, ``datacontenttype`` and ``dataschema``; extensions ``streamversion`` and
``globalposition`` (the producing store's stream version and global position),
``prevposition`` (the global position of the event published before this one on the same
topic, 0 for the first: private events leave holes in the positions a topic carries, and
this chain lets a subscriber prove it has every public event, across partitions), and
``correlationid`` / ``causationid``. Extension names are lowercase alphanumerics, as the
spec requires.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TYPE_PATTERN = re.compile(
    r"^(?P<context>[a-z][a-z_]*)\.(?P<name>[A-Z][A-Za-z0-9]*)\.v(?P<major>[1-9][0-9]*)$"
)
SCHEMA_URI_PREFIX = "urn:cluster-label-registry:schema:"


def schema_uri(type_: str) -> str:
    """The ``dataschema`` of a contract type (schemas/jsonschema/<context>/<Name>.v<N>.json)."""
    return SCHEMA_URI_PREFIX + type_


class Envelope(BaseModel):
    """One public event in CloudEvents 1.0 form."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(pattern=TYPE_PATTERN.pattern)
    subject: str = Field(min_length=1)
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: dict[str, Any]
    streamversion: int = Field(ge=1)
    globalposition: int = Field(ge=1)
    prevposition: int | None = Field(default=None, ge=0)
    correlationid: str | None = None
    causationid: str | None = None
