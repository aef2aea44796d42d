"""The compacted ``label_decisions.current`` topic: each organisation's labels as they stand.

The label read model marks an organisation in ``current_outbox`` in the same transaction
as the decision that changed it; this loop publishes the snapshot (key: organisation id,
value: ``label_decisions.CurrentLabels.v1``) and clears the mark only if no newer decision
came meanwhile. Publishing twice is harmless on a compacted topic; a crash before the
clear publishes again.

Each record is a CloudEvent in binary mode (``ce_*`` headers, the snapshot as the JSON
value), and carries ``ce_feedposition``: a feed position every event at or below which is
reflected in the snapshots acknowledged on the topic before this record was sent. A round
that read the feed's head, then every organisation due, and published them all, moves it
to that head, and sends its last snapshot once more carrying it (the same event again,
harmless on a compacted topic), so the topic's highest feed position follows the feed's
head. A new subscriber reads the topic to
its end, takes the highest ``ce_feedposition`` and follows the feed (or Kafka) after it,
skipping an organisation's events at or below its snapshot's ``position``.

Every organisation with a label record is published once more when the snapshot's form
changes (``FORMAT``), so the topic never keeps a record of an older form for one whose
labels did not change since.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, date, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from clr_events.codec import format_time
from clr_events.contracts.label_decisions import CurrentLabels
from clr_events.envelope import schema_url
from clr_events.outage import Outage, backoff
from clr_events.pg import Pool
from clr_events.registry import registry
from projections import queries
from projections.core import CONTROL
from projections.settings import ProjectionSettings

log = logging.getLogger(__name__)

TOPIC = "label_decisions.current"
TYPE = registry.type_of(CurrentLabels)
SOURCE = "/projections"
FORMAT = 2
"""The snapshot records' form: 1, a bare value with a ``type`` header; 2, a CloudEvent
with ``ce_feedposition``."""
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
        self.feedposition = 0
        """Every event at or below it is reflected in snapshots already acknowledged."""
        self._format_checked = False

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
        if not self._format_checked:
            await self._republish_older_forms()
        async with self._pool.acquire() as conn:
            head = await queries.feed_head(conn)  # first the head, then what is due
            due = await conn.fetch(
                "SELECT org_id, position FROM projections.labels_current_outbox"
                " ORDER BY position LIMIT $1",
                limit,
            )
        if not due:
            self.feedposition = max(self.feedposition, head)
            return 0
        async with self._pool.acquire() as conn:
            snapshots = await queries.current_labels(
                conn, [r["org_id"] for r in due], date.today(), self._settings
            )
        values = [CurrentLabels.model_validate(s).model_dump(mode="json") for s in snapshots]
        await asyncio.gather(*[await self._send(value, self.feedposition) for value in values])
        await self._pool.execute(
            "DELETE FROM projections.labels_current_outbox o USING unnest($1::text[],"
            " $2::bigint[]) AS d(org_id, position)"
            " WHERE o.org_id = d.org_id AND o.position = d.position",
            [r["org_id"] for r in due],
            [r["position"] for r in due],
        )
        self.published += len(snapshots)
        if len(due) < limit and head > self.feedposition and values:
            # every organisation due at ``head`` is published: the topic says so at once,
            # by the round's last snapshot once more (the same event, a newer position)
            self.feedposition = head
            await (await self._send(values[-1], head))
        return len(due)

    async def _send(self, value: dict[str, Any], feedposition: int) -> asyncio.Future[Any]:
        """Hand one snapshot to the producer; its acknowledgement."""
        sent: asyncio.Future[Any] = await self._producer.send(
            self._settings.topic(TOPIC),
            orjson.dumps(value),
            key=value["org_id"].encode(),
            headers=snapshot_headers(value, feedposition, self._settings.schema_base_url),
        )
        return sent

    async def _republish_older_forms(self) -> None:
        """Mark every organisation with a label record due once, if the topic may hold
        snapshots of an older form (``FORMAT``; ``current_format`` is the control schema's
        migration 0004, applied when the service starts)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f"LOCK TABLE {CONTROL}.current_format")
            published = await conn.fetchval(f"SELECT format FROM {CONTROL}.current_format")
            if published is None or published < FORMAT:
                await conn.execute(
                    "INSERT INTO projections.labels_current_outbox"
                    " SELECT org_id, max(position) FROM projections.labels_labels"
                    " GROUP BY org_id ORDER BY org_id ON CONFLICT (org_id) DO NOTHING"
                )
                await conn.execute(
                    f"INSERT INTO {CONTROL}.current_format (format) VALUES ($1)"
                    " ON CONFLICT (one) DO UPDATE SET format = excluded.format",
                    FORMAT,
                )
        self._format_checked = True


def snapshot_headers(
    value: dict[str, Any], feedposition: int, schema_base: str
) -> list[tuple[str, bytes]]:
    """The binary-mode CloudEvents headers of one snapshot record.

    ``ce_id`` names the organisation, the position and the day the status is as of, so
    the same snapshot published twice is recognisably the same.
    """
    org_id = value["org_id"]
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"current:{org_id}:{value['position']}:{value['as_of']}".encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_type", TYPE.encode()),
        ("ce_subject", org_id.encode()),
        ("ce_time", format_time(datetime.now(UTC)).encode()),
        ("ce_dataschema", schema_url(TYPE, schema_base).encode()),
        ("ce_feedposition", b"%d" % feedposition),
        ("content-type", b"application/json"),
    ]
