"""The compacted ``label_decisions.current`` topic: each organisation's labels as they stand.

The label read model marks an organisation in ``current_outbox`` in the same transaction
as the decision that changed it; this loop publishes the snapshot (key: organisation id,
value: ``label_decisions.CurrentLabels.v1``) and clears the mark only if no newer decision
came meanwhile. Publishing twice is harmless on a compacted topic; a crash before the
clear publishes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date

import orjson
from aiokafka import AIOKafkaProducer

from clr_events.contracts.label_decisions import CurrentLabels
from clr_events.outage import Outage, backoff
from clr_events.pg import Pool
from clr_events.registry import registry
from projections import queries
from projections.settings import ProjectionSettings

log = logging.getLogger(__name__)

TOPIC = "label_decisions.current"
TYPE = registry.type_of(CurrentLabels)
RETRY_FIRST = 0.5
"""Seconds before the first retry after a failed round (doubling, with jitter)."""
RETRY_MAX = 30.0
"""The longest pause between retries."""


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class CurrentPublisher:
    """Publishes due snapshots until stopped."""

    def __init__(self, pool: Pool, producer: AIOKafkaProducer, settings: ProjectionSettings):
        self._pool = pool
        self._producer = producer
        self._settings = settings
        self.published = 0
        self.failing: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Publish, then wait a little, until ``stop``; a lost PostgreSQL or Kafka is
        retried with backoff and jitter (``failing`` says why meanwhile)."""
        outage = Outage("snapshot publisher", log)
        delay = RETRY_FIRST
        while not stop.is_set():
            try:
                published = await self.publish_due()
            except Exception as error:  # the database or the broker is away
                self.failing = repr(error)
                pause, delay = backoff(delay, maximum=RETRY_MAX)
                outage.failed(error, retry_in=pause)
                await _wait(stop, pause)
                continue
            self.failing, delay = None, RETRY_FIRST
            outage.ended()
            if published == 0:
                await _wait(stop, self._settings.current_publish_interval_seconds)

    async def publish_due(self, limit: int = 500) -> int:
        """Publish up to ``limit`` due snapshots; returns how many."""
        due = await self._pool.fetch(
            "SELECT org_id, position FROM projections.labels_current_outbox"
            " ORDER BY position LIMIT $1",
            limit,
        )
        if not due:
            return 0
        async with self._pool.acquire() as conn:
            snapshots = await queries.current_labels(
                conn, [r["org_id"] for r in due], date.today(), self._settings
            )
        sends = []
        for snapshot in snapshots:
            value = CurrentLabels.model_validate(snapshot).model_dump(mode="json")
            sends.append(
                await self._producer.send(
                    self._settings.topic(TOPIC),
                    orjson.dumps(value),
                    key=snapshot["org_id"].encode(),
                    headers=[("content-type", b"application/json"), ("type", TYPE.encode())],
                )
            )
        await asyncio.gather(*sends)
        await self._pool.execute(
            "DELETE FROM projections.labels_current_outbox o USING unnest($1::text[],"
            " $2::bigint[]) AS d(org_id, position)"
            " WHERE o.org_id = d.org_id AND o.position = d.position",
            [r["org_id"] for r in due],
            [r["position"] for r in due],
        )
        self.published += len(snapshots)
        return len(due)
