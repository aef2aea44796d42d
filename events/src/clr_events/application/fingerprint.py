"""A policy's content fingerprint: what a decision records to name the exact rules it used.

A policy is a frozen dataclass of parameters (and, where it has them, its rules' ids and
texts). Its canonical form is JSON: dataclasses as objects of their fields, enums as their
values, days as ISO 8601 text, sets sorted, tuples as arrays, object keys sorted, no
white space, UTF-8; its fingerprint is ``sha256:`` and the hex SHA-256 digest of that text.
A version's fingerprint never changes: a test pins each, so a rule changed without a new
version fails. Pure: standard library only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date
from enum import Enum
from typing import Any


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data (the canonical form's content)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return canonical(value.value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(canonical(k)): canonical(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((canonical(v) for v in value), key=_text)
    if isinstance(value, tuple | list):
        return [canonical(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(policy: Any) -> bytes:
    """The canonical JSON text of a policy, as UTF-8."""
    return _text(canonical(policy)).encode("utf-8")


def fingerprint(policy: Any) -> str:
    """``sha256:<hex>`` of the policy's canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(policy)).hexdigest()
