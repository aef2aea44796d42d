"""Event store port and adapters."""

from clr_events.store.base import (
    ANY,
    AppendResult,
    EventStore,
    ExpectedVersion,
    NewEvent,
    StoredEvent,
    VerificationRangeError,
    VerificationReport,
)

__all__ = [
    "ANY",
    "AppendResult",
    "EventStore",
    "ExpectedVersion",
    "NewEvent",
    "StoredEvent",
    "VerificationRangeError",
    "VerificationReport",
]
