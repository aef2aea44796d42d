"""The outbox relay: tails a service's event store by position and publishes to Kafka.

The event store is the outbox. The relay reads committed events in position order (which
never skips one, see ``store.postgres``), translates each to its public contract (or to
nothing, for private events), publishes with an idempotent producer keyed by aggregate id,
and then records the last position read and the last position published. Each envelope
carries the position of the event published before it on the topic (``prevposition``), so
subscribers can check the chain is whole. After a crash it resumes from the recorded
position: events published but not yet recorded go out again, and their event id makes
the repeat harmless. It wakes on new commits (LISTEN/NOTIFY); the store decides.

    python -m clr_events.outbox.relay --schema assessments --topic assessments.events \\
        --translator assessments.adapters.translation:to_public
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import random
import signal
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from opentelemetry.trace import Span

from clr_events.codec import KafkaRecord, to_kafka
from clr_events.envelope import Envelope, schema_uri
from clr_events.kafka.producer import new_producer
from clr_events.observability import tracing
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from clr_events.store.base import EventStore, StoredEvent
from clr_events.store.postgres import PostgresEventStore

log = logging.getLogger(__name__)

WAIT_RETRY_FIRST = 0.5
"""Seconds before the first retry of a wait for new events that failed (doubling)."""
WAIT_RETRY_MAX = 30.0
"""The longest pause between retries of a failing wait."""

_PARTITIONER = DefaultPartitioner()
"""The producer's own partitioner (``new_producer`` keeps aiokafka's default)."""

Translator = Callable[[StoredEvent], Envelope | None]


_VALIDATE_ENVELOPE = Envelope.__pydantic_validator__.validate_python


def envelope_for(stored: StoredEvent, *, source: str, type_: str, data: dict[str, Any]) -> Envelope:
    """The public envelope of a stored event: ids, order and causality carried over.

    Validated as ``Envelope(...)`` validates, by the model's validator directly (the
    model's ``__init__`` is a Python call around it, a third of the time here).
    """
    metadata = stored.metadata
    envelope: Envelope = _VALIDATE_ENVELOPE(
        {
            "id": str(stored.event_id),
            "source": source,
            "type": type_,
            "subject": stored.stream_id,
            "time": stored.recorded_at,
            "dataschema": schema_uri(type_),
            "data": data,
            "streamversion": stored.version,
            "globalposition": stored.position,
            "correlationid": metadata.get("correlation_id"),
            "causationid": metadata.get("causation_id"),
            "traceparent": metadata.get("traceparent"),
            "tracestate": metadata.get("tracestate"),
        },
        by_name=True,
    )
    return envelope


def publish_as_stored(source: str) -> Callable[[StoredEvent], Envelope]:
    """A translator for stores whose stored type strings are already public contracts."""

    def translate(stored: StoredEvent) -> Envelope:
        return envelope_for(stored, source=source, type_=stored.type, data=stored.data)

    return translate


class RelayCheckpoint(Protocol):
    """Where a relay records the last position read and the last published."""

    async def load(self) -> tuple[int, int | None]:
        """The last position read and the last published (None if unknown)."""
        ...

    async def save(self, position: int, published: int) -> None:
        """Record the last position read and the last published."""
        ...


class PostgresRelayCheckpoint:
    """Per relay, in the store's schema: the last position read and the last published."""

    def __init__(self, pool: Pool, schema: str, name: str) -> None:
        self._pool = pool
        self._table = f"{schema}.relay_checkpoint"
        self._name = name

    async def migrate(self) -> None:
        """Create the table (idempotent)."""
        await self._pool.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table}"
            " (relay text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL)"
        )
        await self._pool.execute(
            f"ALTER TABLE {self._table} ADD COLUMN IF NOT EXISTS published bigint"
        )

    async def load(self) -> tuple[int, int | None]:
        """The last position read and the last published (0, 0 if none; None if unknown)."""
        row = await self._pool.fetchrow(
            f"SELECT position, published FROM {self._table} WHERE relay = $1", self._name
        )
        if row is None:
            return 0, 0
        return int(row["position"]), row["published"]

    async def save(self, position: int, published: int) -> None:
        """Record the last position read and the last published."""
        await self._pool.execute(
            f"INSERT INTO {self._table} VALUES ($1, $2, now(), $3)"
            " ON CONFLICT (relay) DO UPDATE SET position = excluded.position,"
            " updated_at = excluded.updated_at, published = excluded.published",
            self._name,
            position,
            published,
        )


class Relay:
    """Publishes a store's events to one topic, in position order, at least once.

    Pipelined: while one batch's sends wait for their acknowledgements, the next batch is
    read, translated and sent. Checkpoints still follow in order, each only once every
    send of its batch and of the batches before it is acknowledged (``acks=all``); at most
    two batches are in flight. ``position`` and ``published`` are what is checkpointed.
    """

    def __init__(
        self,
        store: EventStore,
        checkpoint: RelayCheckpoint,
        producer: AIOKafkaProducer,
        topic: str,
        translate: Translator,
        *,
        batch_size: int = 1000,
        idle_wait: float = 5.0,
    ) -> None:
        self._store = store
        self._checkpoint = checkpoint
        self._producer = producer
        self._topic = topic
        self._translate = translate
        self._batch_size = batch_size
        self._idle_wait = idle_wait
        self.position = 0
        self.published = 0

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Publish until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        self.position, published = await self._checkpoint.load()
        self.published = (
            published if published is not None else await self._last_published(self.position)
        )
        log.info("relay to %s resumes after position %d", self._topic, self.position)
        failing: BaseException | None = None
        delay = WAIT_RETRY_FIRST
        while not stop.is_set():
            if await self.publish_available(stop):
                continue
            stopping = asyncio.ensure_future(stop.wait())
            waiting = asyncio.ensure_future(self._store.wait_beyond(self.position, self._idle_wait))
            try:
                await asyncio.wait((stopping, waiting), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                waiting.cancel()
            error = waiting.exception() if waiting.done() and not waiting.cancelled() else None
            if error is None:
                if failing is not None:
                    log.info("relay to %s: waiting for new events works again", self._topic)
                failing, delay = None, WAIT_RETRY_FIRST
                continue
            # the wait failed at once (say, LISTEN on a connection PostgreSQL dropped): never
            # loop straight back to the store; back off with jitter, warn once per outage
            if failing is None:
                log.warning(
                    "relay to %s: waiting for new events failed (%r); retrying with backoff",
                    self._topic,
                    error,
                )
            failing = error
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, WAIT_RETRY_MAX)

    async def _last_published(self, upto: int) -> int:
        """A checkpoint from before ``published`` was recorded: find it in the store once."""
        last, after = 0, 0
        while after < upto:
            events = await self._store.read_all(after, min(self._batch_size, upto - after))
            if not events:
                break
            for stored in events:
                if self._translate(stored) is not None:
                    last = stored.position
            after = events[-1].position
        return last

    async def publish_batch(self) -> int:
        """Publish the next batch of committed events and checkpoint it; returns how many
        were read (0: nothing new)."""
        events = await self._store.read_all(self.position, self._batch_size)
        if not events:
            return 0
        acks, published = await self._send(events, self.published)
        await self._confirm(acks, events[-1].position, published)
        return len(events)

    async def publish_available(self, stop: asyncio.Event | None = None) -> int:
        """Publish every committed event, batch after batch, the next batch read and sent
        while the previous one's acknowledgements are awaited; returns how many were read.

        Returns when a read finds nothing new (or ``stop`` is set) and every batch sent is
        acknowledged and checkpointed. If a send fails, the batches not yet checkpointed
        go out again from the checkpoint (with the same event ids) on the next run.
        """
        after, published, read = self.position, self.published, 0
        confirming: asyncio.Future[None] | None = None
        try:
            while stop is None or not stop.is_set():
                events = await self._store.read_all(after, self._batch_size)
                if not events:
                    break
                acks, published = await self._send(events, published)
                after = events[-1].position
                read += len(events)
                if confirming is not None:
                    await confirming  # checkpoints in order; at most two batches in flight
                confirming = asyncio.ensure_future(self._confirm(acks, after, published))
            if confirming is not None:
                await confirming
        finally:
            if confirming is not None and not confirming.done():
                confirming.cancel()
                await asyncio.gather(confirming, return_exceptions=True)
        return read

    async def _send(
        self, events: list[StoredEvent], published: int
    ) -> tuple[list[asyncio.Future[Any]], int]:
        """Hand a batch to the producer: the acknowledgements to await, and the position of
        the last event published (the next envelope's ``prevposition``). With tracing on,
        a producer span per traced event, ended when the batch is acknowledged."""
        records = []
        traced: list[Envelope] = []
        for stored in events:
            envelope = self._translate(stored)
            if envelope is not None:
                records.append(to_kafka(envelope, prevposition=published))
                published = envelope.globalposition
                if tracing.sampled_header(envelope.traceparent):
                    traced.append(envelope)
        spans = [self._span(envelope) for envelope in traced] if tracing.enabled() else []
        acks = await self._send_batches(records)
        if spans:
            acks.append(asyncio.ensure_future(_end_when_sent(spans, list(acks))))
        return acks, published

    def _span(self, envelope: Envelope) -> Span:
        """A producer span for an event, a child of its creation context."""
        return tracing.TRACER.start_span(
            f"publish {self._topic}",
            context=tracing.context_of(envelope.traceparent, envelope.tracestate),
            kind=tracing.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": self._topic,
                "messaging.message.id": envelope.id,
                "cloudevents.event_type": envelope.type,
                "clr.globalposition": envelope.globalposition,
            },
        )

    async def _send_batches(self, records: list[KafkaRecord]) -> list[asyncio.Future[Any]]:
        """Fill one producer batch per partition and hand each over when it is full.

        What ``send`` does per record (wait for metadata, hash the key, find the partition's
        open batch, append) done once per batch: the same partitions (the producer's
        default partitioner on the key), the same batches (at most one queued per
        partition, in order, sequenced by the idempotent producer when sent), so the same
        order per key; one acknowledgement per batch.
        """
        producer, topic = self._producer, self._topic
        partitions = list(await producer.partitions_for(topic))
        partition_of: dict[bytes, int] = {}
        open_batches: dict[int, BatchBuilder] = {}
        acks = []
        for record in records:
            partition = partition_of.get(record.key)
            if partition is None:
                partition = partition_of[record.key] = _PARTITIONER(record.key, partitions, None)
            batch = open_batches.get(partition)
            if batch is None:
                batch = open_batches[partition] = producer.create_batch()
            if (
                batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                is None
            ):
                acks.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[partition] = producer.create_batch()
                # an empty batch takes any one record (the broker judges its size)
                batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
        for partition, batch in open_batches.items():
            acks.append(await producer.send_batch(batch, topic, partition=partition))
        return acks

    async def _confirm(
        self, acks: list[asyncio.Future[Any]], position: int, published: int
    ) -> None:
        """Checkpoint ``position`` once every send of its batch is acknowledged."""
        await asyncio.gather(*acks)
        await self._checkpoint.save(position, published)
        self.position, self.published = position, published


async def _end_when_sent(spans: list[Span], acks: list[asyncio.Future[Any]]) -> None:
    """End the spans of a batch's events when the broker acknowledged the batch."""
    try:
        await asyncio.gather(*acks)
    finally:
        for span in spans:
            span.end()


def _append(batch: BatchBuilder, record: KafkaRecord) -> bool:
    """Add a record to a producer batch; False when the batch is full."""
    added = batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers)
    return added is not None


def _load_translator(spec: str, source: str) -> Translator:
    if spec == "as-stored":
        return publish_as_stored(source)
    module, _, attribute = spec.partition(":")
    translator: Translator = getattr(importlib.import_module(module), attribute)
    return translator


async def serve(schema: str, topic: str, translator: str, name: str, source: str) -> None:
    """Run one relay process until SIGTERM or SIGINT."""
    settings = ConnectionSettings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    store = PostgresEventStore(pool, schema=schema)
    checkpoint = PostgresRelayCheckpoint(pool, schema, name)
    await checkpoint.migrate()
    producer = new_producer(settings)
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Relay(store, checkpoint, producer, topic, _load_translator(translator, source)).run(
            stop
        )
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
        await store.close()
        await pool.close()


def main() -> None:
    """Command line of the relay."""
    parser = argparse.ArgumentParser(description="Publish a service's events to Kafka.")
    parser.add_argument("--schema", required=True, help="schema of the service's event store")
    parser.add_argument("--topic", required=True, help="topic, e.g. assessments.events")
    parser.add_argument(
        "--translator",
        default="as-stored",
        help="module:function mapping a stored event to an Envelope or None (default: as-stored)",
    )
    parser.add_argument("--name", help="relay name for its checkpoint (default: the topic)")
    parser.add_argument("--source", help="CloudEvents source (default: /<schema>)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(
        serve(
            args.schema,
            args.topic,
            args.translator,
            args.name or args.topic,
            args.source or f"/{args.schema}",
        )
    )


if __name__ == "__main__":
    main()
