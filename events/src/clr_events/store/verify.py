"""Re-hashing a range of stored events: one checker that every adapter feeds its rows to."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from clr_events.store.base import VerificationRangeError, VerificationReport
from clr_events.store.hashing import chain, content_digest


class RawRow(NamedTuple):
    """A stored event exactly as stored: data and metadata as their JSON text."""

    position: int
    stream_id: str
    version: int
    event_id: UUID
    type: str
    schema_version: int
    data_json: str
    metadata_json: str
    recorded_at: datetime
    hash: bytes


def check_range(first: int, last: int | None, end: int) -> int:
    """The last position of a verification of ``first..last`` over a store whose stored
    positions end at ``end`` (the head, or a row stored beyond it).

    Raises:
        VerificationRangeError: ``first`` after ``last``, or the range past the end.
    """
    if last is None:
        if first > max(end, 1):
            raise VerificationRangeError(f"position {first} is past the end ({end})")
        return end
    if first > last:
        raise VerificationRangeError(f"first ({first}) is after last ({last})")
    if last > end:
        raise VerificationRangeError(f"position {last} is past the end ({end})")
    return last


class ChainVerifier:
    """Checks rows fed in position order: contiguity and each event's hash.

    Each row is checked against the *stored* hash of the row before it, so a report names
    exactly the positions that were altered rather than everything after the first one.
    """

    def __init__(self, first_position: int, previous_hash: bytes) -> None:
        self._first = first_position
        self._expected = first_position
        self._previous_hash = previous_hash
        self._checked = 0
        self._problems: list[str] = []

    def feed(self, row: RawRow) -> None:
        """Check one row."""
        if row.position != self._expected:
            self._problems.append(
                f"positions {self._expected}..{row.position - 1} are missing"
                if row.position > self._expected
                else f"position {row.position} is out of order (expected {self._expected})"
            )
        digest = content_digest(
            row.stream_id,
            row.event_id,
            row.type,
            row.schema_version,
            row.data_json,
            row.metadata_json,
            row.recorded_at,
        )
        if chain(self._previous_hash, row.position, row.version, digest) != row.hash:
            self._problems.append(
                f"position {row.position}: hash mismatch "
                f"(stream {row.stream_id!r} version {row.version} altered, or its predecessor)"
            )
        self._previous_hash = row.hash
        self._expected = row.position + 1
        self._checked += 1

    def finish(self, last_position: int, head: tuple[int, bytes] | None) -> VerificationReport:
        """Close the range; with ``head`` (position, hash) also check nothing was cut off
        and nothing is stored beyond the head."""
        if self._expected <= last_position:
            self._problems.append(f"positions {self._expected}..{last_position} are missing")
        if head is not None and head[0] == last_position and head[1] != self._previous_hash:
            self._problems.append(f"the head hash does not match the event at {last_position}")
        if head is not None and last_position > head[0]:
            self._problems.append(
                f"positions {head[0] + 1}..{last_position} are stored beyond the head"
                f" (at {head[0]}): inserted without moving the head"
            )
        return VerificationReport(self._first, last_position, self._checked, tuple(self._problems))
