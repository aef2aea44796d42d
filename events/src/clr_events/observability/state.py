"""What a service's runtime reports at scrape time: readiness, store head, relay lag (in
positions and in seconds), relay checkpoint age, consumer lag per partition, the age of a
consumer's last progress, processed and dead-lettered counts (``GET /metrics``, beside the
process's own metrics)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from clr_events.observability.metrics import Families

if TYPE_CHECKING:
    from clr_events.service.runtime import Runtime


async def runtime_families(runtime: Runtime, *, kafka: bool) -> Families:
    """A ``Runtime``'s families, read now; what cannot be read while PostgreSQL is away is
    left out (readiness says why). ``kafka``: the service needs Kafka."""
    families = Families()
    unready = await runtime.unready()
    readiness(families, unready, kafka=kafka)
    for group, runner in runtime.live_consumers.items():
        families.counter(
            "clr_consumer_processed",
            "Messages a consumer group applied in this process.",
            runner.processed,
            group=group,
        )
        families.counter(
            "clr_consumer_dead_letters",
            "Messages a consumer group sent to its dead-letter topic in this process.",
            runner.dead_lettered,
            group=group,
        )
        families.gauge(
            "clr_consumer_progress_age_seconds",
            "Seconds since a consumer group last applied or dead-lettered a message in this"
            " process (it grows at rest; with lag, the consumer is stalled).",
            time.monotonic() - runner.progressed_at,
            group=group,
        )
        for (topic, partition), lag in runner.lag().items():
            families.gauge(
                "clr_consumer_lag_messages",
                "Messages on a partition this process consumes that its group has still"
                " to process (the partition's end offset minus the group's position).",
                lag,
                group=group,
                topic=topic,
                partition=str(partition),
            )
    if "postgresql" in unready:
        return families
    with contextlib.suppress(Exception):  # PostgreSQL went away since: readiness says so
        await _store(runtime, families)
    return families


async def _store(runtime: Runtime, families: Families) -> None:
    head = await runtime.store.head_position()
    families.gauge("clr_store_head_position", "The event store's last committed position.", head)
    if not runtime.live_relays:
        return
    ages = {
        row["relay"]: float(row["age"])
        for row in await runtime.pool.fetch(
            "SELECT relay, extract(epoch FROM now() - updated_at) AS age"
            f" FROM {runtime.name}.relay_checkpoint"
        )
    }
    now = time.time()
    for name, relay in runtime.live_relays.items():
        lag = max(head - relay.position, 0)
        oldest = 0.0
        if lag and (waiting := await runtime.store.read_all(relay.position, 1)):
            oldest = max(now - waiting[0].recorded_at.timestamp(), 0.0)
        families.gauge(
            "clr_relay_lag_events",
            "Store positions committed but not yet relayed (private events included).",
            lag,
            relay=name,
        )
        families.gauge(
            "clr_relay_lag_seconds",
            "Age of the oldest committed event the relay has not yet published (0: none).",
            oldest,
            relay=name,
        )
        if name in ages:
            families.gauge(
                "clr_relay_checkpoint_age_seconds",
                "Seconds since the relay last wrote its checkpoint (it grows at rest; with"
                " lag, the relay is stalled).",
                ages[name],
                relay=name,
            )


def readiness(families: Families, unready: dict[str, str], *, kafka: bool) -> None:
    """``clr_ready``, ``clr_dependency_up`` per dependency and the failing background tasks."""
    families.gauge(
        "clr_ready",
        "1 when the service can do its work (/readyz answers 200), else 0.",
        0.0 if unready else 1.0,
    )
    for dependency in ("postgresql", "kafka") if kafka else ("postgresql",):
        families.gauge(
            "clr_dependency_up",
            "1 when a dependency the service needs answers, else 0.",
            0.0 if dependency in unready else 1.0,
            dependency=dependency,
        )
    failing = len(unready) - sum(1 for name in ("postgresql", "kafka") if name in unready)
    families.gauge(
        "clr_background_tasks_failing",
        "Background tasks (relays, consumers, jobs, agents) failing now.",
        failing,
    )
