"""Prometheus metrics: ``prometheus-client``'s registry, text format, ``# HELP``/``# TYPE``.

Two kinds, rendered together by ``GET /metrics``:

- the process's own, kept by ``prometheus-client`` as they happen: HTTP requests and their
  latency per route template (``middleware.Observe``), event store appends, and the
  process collector's CPU, memory, file descriptors, start time (``process_*``) with the
  Python runtime's (``python_gc_*``, ``python_info``);
- the state a service's runtime reads at scrape time (store head, relay and consumer lag,
  dead letters, readiness): ``Families``, built fresh on each scrape, so a relay or
  consumer that has stopped leaves no stale series behind.

Label values are escaped by ``prometheus-client``. Metric names are in docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

__all__ = [
    "APPEND_SECONDS",
    "CONTENT_TYPE",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "Families",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a command takes a few milliseconds; a page read or an export up to seconds."""

HTTP_REQUESTS = Counter(
    "clr_http_requests",
    "HTTP requests answered, by route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "clr_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template.",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
APPEND_SECONDS = Histogram(
    "clr_event_store_append_duration_seconds",
    "Time an append to an event store took, from the call to its commit (one command, or"
    " a consumer's reaction; group-committed appends each count their own wait).",
    ["store"],
    buckets=LATENCY_BUCKETS,
)


class Families:
    """Gauges, counters and histograms of one scrape, each named once with its help text."""

    def __init__(self) -> None:
        self._families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        self._histograms: list[HistogramMetricFamily] = []

    def gauge(self, name: str, documentation: str, value: float, **labels: str) -> None:
        """A gauge sample (``labels`` in the same order for every sample of ``name``)."""
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = GaugeMetricFamily(
                name, documentation, labels=list(labels)
            )
        family.add_metric(list(labels.values()), value)

    def counter(self, name: str, documentation: str, value: float, **labels: str) -> None:
        """A counter sample; ``name`` without ``_total`` (the format adds it)."""
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = CounterMetricFamily(
                name, documentation, labels=list(labels)
            )
        family.add_metric(list(labels.values()), value)

    def histogram(
        self, name: str, documentation: str, buckets: list[tuple[str, float]], total: float
    ) -> None:
        """A histogram kept by the caller: cumulative ``(le, count)`` buckets ending with
        ``+Inf``, and the sum of the observed values."""
        self._histograms.append(
            HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total)
        )

    def collect(self) -> Iterable[Metric]:
        """The families, as a ``prometheus-client`` collector gives them."""
        return [*self._families.values(), *self._histograms]


def render(families: Families) -> bytes:
    """The process's metrics and ``families``, in Prometheus' text format."""
    return generate_latest(REGISTRY) + generate_latest(families)
