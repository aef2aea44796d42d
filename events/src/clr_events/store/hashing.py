"""The hash chain over the global order of a store.

Every stored event carries
``hash = SHA-256(previous hash || position || stream version || content digest)``, where the
content digest covers every other stored column, each length-prefixed, in the exact bytes
that are stored. The writer computes the digest; the store adds position and version under
its lock (the version of an append that expects any version is only known there). The
first event chains to 32 zero bytes. Changing any stored byte of any event, removing one,
inserting one or reordering them changes a hash that the verifier recomputes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID

GENESIS_HASH = bytes(32)


def format_time(moment: datetime) -> str:
    """The one text form of a recorded time that enters the digest (UTC, microseconds)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def content_digest(
    stream_id: str,
    event_id: UUID,
    type_: str,
    schema_version: int,
    data_json: str,
    metadata_json: str,
    recorded_at: datetime,
) -> bytes:
    """SHA-256 over the stored columns of one event, length-prefixed so fields cannot shift."""
    return digest_of(
        (
            stream_id,
            str(event_id),
            type_,
            str(schema_version),
            data_json,
            metadata_json,
            format_time(recorded_at),
        )
    )


def digest_of(parts: Iterable[str]) -> bytes:
    """SHA-256 over texts, each as its UTF-8 bytes after their length (8 bytes, big-endian).

    The content digest is this over the seven texts of an event, in this order: stream id,
    event id (lowercase hyphenated UUID), type, schema version (decimal), data JSON,
    metadata JSON, recorded time (``format_time``). docs/canonical-form.md has the bytes.
    """
    digest = hashlib.sha256()
    for part in parts:
        raw = part.encode()
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.digest()


def chain(previous_hash: bytes, position: int, version: int, digest: bytes) -> bytes:
    """The hash of the event at ``position`` (the same formula as the SQL ``event_store_link``)."""
    return hashlib.sha256(
        previous_hash + position.to_bytes(8, "big") + version.to_bytes(8, "big") + digest
    ).digest()
