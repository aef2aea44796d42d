"""Errors raised by the shared event library."""

from __future__ import annotations


class EventsError(Exception):
    """Base of every error this library raises."""


class ConcurrencyError(EventsError):
    """An append expected a stream version that is no longer current (HTTP 409)."""

    def __init__(self, stream_id: str, expected: int | None, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the append expected {expected}"
        )


class UnknownEventTypeError(EventsError):
    """A type string names no registered contract (or a version with no upcaster path)."""


class EnvelopeError(EventsError):
    """A message or document is not a valid CloudEvents envelope of this project."""
