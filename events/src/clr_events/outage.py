"""Quiet outages: one warning when a dependency goes away, one line when it is back.

Background loops (relays, consumers, clock jobs, the projections' agents and snapshot
publisher) retry a lost PostgreSQL or Kafka with :func:`backoff` (exponential, with
jitter, so instances do not retry in step) and report through an :class:`Outage`, which
logs the first failure (with its traceback, once) and the recovery, and only counts the
failures in between.

aiokafka logs every failed connection attempt itself ("Unable connect to node ...",
"Unable to request metadata ..."), hundreds a minute while a broker is away;
:class:`RepeatFilter` on the log handlers lets the first record of each kind through per
outage and counts the rest (:func:`install_log_filter`).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

LOUD_LOGGERS = ("aiokafka", "kafka", "clr_events.service.problems.unavailable", "opentelemetry")
"""Loggers that write a line per failed attempt while a dependency is away: aiokafka's
per connection, ours per request answered 503 because the database is away,
OpenTelemetry's exporters' per batch while the trace collector is away."""


def backoff(delay: float, *, maximum: float) -> tuple[float, float]:
    """Seconds to wait now (``delay`` with jitter, 50-100 %) and the next delay (doubled,
    at most ``maximum``)."""
    return delay * random.uniform(0.5, 1.0), min(delay * 2, maximum)


@dataclass
class Outage:
    """The state of one loop's dependency: up, or away since when, and how often it failed."""

    name: str
    logger: logging.Logger
    since: float | None = None
    failures: int = 0
    last_error: str = ""

    @property
    def away(self) -> bool:
        """Whether the loop is failing now."""
        return self.since is not None

    def failed(self, error: BaseException, *, retry_in: float | None = None) -> None:
        """Count a failure; the first of an outage is logged with its traceback."""
        self.failures += 1
        self.last_error = repr(error)
        if self.since is not None:
            return
        self.since = time.monotonic()
        again = "" if retry_in is None else f"; retrying in {retry_in:.1f} s with backoff"
        self.logger.warning(
            "%s failed: %r%s (further failures are counted, not logged, until it recovers)",
            self.name,
            error,
            again,
            exc_info=error,
        )

    def ended(self) -> None:
        """The loop works again: one line saying how long it was away."""
        if self.since is None:
            return
        self.logger.warning(
            "%s recovered after %.1f s (%d failed attempts; last: %s)",
            self.name,
            time.monotonic() - self.since,
            self.failures,
            self.last_error,
        )
        self.since, self.failures, self.last_error = None, 0, ""


@dataclass
class RepeatFilter(logging.Filter):
    """Lets the first record of each kind (logger and message template) from ``loggers``
    through, then drops repeats until the kind has been quiet for ``quiet_seconds`` (the
    outage is over); ``suppressed`` counts what was dropped, per kind."""

    loggers: tuple[str, ...] = LOUD_LOGGERS
    quiet_seconds: float = 60.0
    min_level: int = logging.WARNING
    suppressed: dict[tuple[str, str], int] = field(default_factory=dict)
    _last: dict[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat within an outage."""
        if record.levelno < self.min_level or not record.name.startswith(self.loggers):
            return True
        kind = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._last.get(kind)
        self._last[kind] = now
        if last is not None and now - last < self.quiet_seconds:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return False
        dropped = self.suppressed.pop(kind, 0)
        if dropped:
            record.msg = f"{record.msg} [{dropped} like it suppressed during the last outage]"
        return True


def install_log_filter(quiet_seconds: float = 60.0) -> RepeatFilter:
    """Put one :class:`RepeatFilter` on every handler of the root logger (call after the
    handlers are configured); returns it."""
    repeat = RepeatFilter(quiet_seconds=quiet_seconds)
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeat)
    return repeat
