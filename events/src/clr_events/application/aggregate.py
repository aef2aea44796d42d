"""The one shape of an aggregate, its stream id, and a service's versioned policies.

An aggregate is the state one stream's events fold into: it knows its stream, the version
it was loaded at, and applies an event (``Aggregate``); each also has a ``replay`` class
method from its stored events (a label record takes its key too: its stream is known
before its first event, and it starts at version 0), and its decisions (methods or pure
functions of the domain) return new events or raise ``RuleViolationError`` built with
``clr_events.rules.Violations``. Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NewType, Protocol, TypeVar

StreamId = NewType("StreamId", str)
"""A stream's id: made by one function per aggregate (``stream_id(kind, id)``), never by hand."""

Ev = TypeVar("Ev", contravariant=True)
P = TypeVar("P")


def stream_id(kind: str, *parts: str) -> StreamId:
    """The id of an aggregate's stream: its kind and its id parts, colon-separated (no
    kind: the parts alone, as label records' streams ``org:level`` were stored first)."""
    return StreamId(":".join((kind, *parts)) if kind else ":".join(parts))


class Aggregate(Protocol[Ev]):
    """What every aggregate offers: its stream, its version, and how it folds events."""

    @property
    def stream(self) -> StreamId:
        """The stream the aggregate's events are stored in."""
        ...

    @property
    def version(self) -> int:
        """How many events it has applied (0: none, a new stream)."""
        ...

    def apply(self, event: Ev) -> None:
        """Fold one event into the state."""
        ...


class Policies(Mapping[str, P]):
    """A service's policies by version, one chosen by a setting (``CLR_..._VERSION``)."""

    def __init__(self, what: str, by_version: Mapping[str, P], default: str) -> None:
        if default not in by_version:
            raise ValueError(f"the default {what} {default!r} is not among {list(by_version)}")
        self.what = what
        self.by_version = dict(by_version)
        self.default = default

    def __getitem__(self, version: str) -> P:
        return self.by_version[version]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_version)

    def __len__(self) -> int:
        return len(self.by_version)

    def choose(self, version: str | None = None) -> P:
        """The policy of ``version`` (default: the latest in force).

        Raises:
            ValueError: no such version, naming the known ones.
        """
        chosen = version or self.default
        try:
            return self.by_version[chosen]
        except KeyError as unknown:
            known = ", ".join(self.by_version)
            raise ValueError(f"unknown {self.what} {chosen!r}; known: {known}") from unknown
