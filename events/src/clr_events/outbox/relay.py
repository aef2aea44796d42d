"""The outbox relay: tails a service's event store by position and publishes to Kafka.

The event store is the outbox. The relay reads committed events in position order (which
never skips one, see ``store.postgres``), translates each to its public contract (or to
nothing, for private events), publishes with an idempotent producer keyed by aggregate id,
and then records the last position read and the last position published. Each envelope
carries the position of the event published before it on the topic (``prevposition``), so
subscribers can check the chain is whole, and its number among the events published with
its subject (``publicversion``: 1, 2, 3, ... without gaps, where the store's stream version
also counts private events). The count per subject is recorded with the checkpoint, in one
transaction, so it is a function of the store alone: after a crash the relay resumes from
the recorded position, and before its first send reads its own last record on each
partition of its topic (``kafka.tail``), leaving out the events a relay killed between the
broker's acknowledgement and the checkpoint already sent there; the others go out with the
same event id, ``prevposition`` and ``publicversion``. It wakes on new commits
(LISTEN/NOTIFY; the store decides) and lingers a moment, so a steady stream goes a few
events at a time.

    python -m clr_events.outbox.relay --schema assessments --topic assessments.events \\
        --translator assessments.adapters.translation:to_public
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from opentelemetry.trace import Span

from clr_events.codec import KafkaRecord, to_kafka
from clr_events.envelope import Envelope, schema_uri, schema_url
from clr_events.kafka.producer import new_producer
from clr_events.kafka.tail import last_positions
from clr_events.migrations import events_migrations, migrate
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

VERSIONS_CACHED = 100_000
"""Subjects whose public version a relay keeps in memory (beyond: read again from the
checkpoint's table)."""

_PARTITIONER = DefaultPartitioner()
"""The producer's own partitioner (``new_producer`` keeps aiokafka's default)."""

Translator = Callable[[StoredEvent], Envelope | None]
Tail = Callable[[list[int], bytes], Awaitable[dict[int, tuple[int, str]]]]
"""The position and event id of the last record of a source (``ce_source``) on each of the
topic's partitions (``kafka.tail``)."""


class TopicAheadError(RuntimeError):
    """The topic holds an event of this relay's source at a position where the store has
    another event, or none: the store was restored from an older backup (or the topic
    belongs to another store). Publishing would give the store's new events positions
    subscribers have seen with other events, and leaving them out would lose them; the
    relay publishes nothing (the runtime retries it with backoff, and it fails the same
    way) until the topics agree with the store again (``deploy/runbooks``: restore,
    kafka-lost)."""


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

    async def save(
        self, position: int, published: int, versions: Mapping[str, int] | None = None
    ) -> None:
        """Record the last position read, the last published and, in the same
        transaction, the public version each subject in ``versions`` has reached."""
        ...

    async def versions(self, subjects: Iterable[str]) -> dict[str, int]:
        """The recorded public version of each of ``subjects`` (absent: none published)."""
        ...

    async def counted(self) -> bool:
        """Whether this relay has recorded any public version (not: a checkpoint from
        before they were recorded, counted again from the store once)."""
        ...


class PostgresRelayCheckpoint:
    """Per relay, in the store's schema: the last position read and the last published,
    and the public version each subject has reached (``relay_subjects``)."""

    def __init__(self, pool: Pool, schema: str, name: str) -> None:
        self._pool = pool
        self._schema = schema
        self._table = f"{schema}.relay_checkpoint"
        self._subjects = f"{schema}.relay_subjects"
        self._name = name

    async def migrate(self) -> None:
        """Apply the tables' pending migrations (``clr_events/migrations/relay``)."""
        await migrate(self._pool, self._schema, "relay", events_migrations("relay"))

    async def load(self) -> tuple[int, int | None]:
        """The last position read and the last published (0, 0 if none; None if unknown)."""
        row = await self._pool.fetchrow(
            f"SELECT position, published FROM {self._table} WHERE relay = $1", self._name
        )
        if row is None:
            return 0, 0
        return int(row["position"]), row["published"]

    async def save(
        self, position: int, published: int, versions: Mapping[str, int] | None = None
    ) -> None:
        """Record the last position read, the last published and the subjects' public
        versions, in one statement (one round trip, one transaction)."""
        versions = versions or {}
        await self._pool.execute(
            f"WITH subjects AS (INSERT INTO {self._subjects} SELECT $1, * FROM"
            " unnest($4::text[], $5::bigint[]) ON CONFLICT (subject, relay)"
            " DO UPDATE SET version = excluded.version)"
            f" INSERT INTO {self._table} VALUES ($1, $2, now(), $3)"
            " ON CONFLICT (relay) DO UPDATE SET position = excluded.position,"
            " updated_at = excluded.updated_at, published = excluded.published",
            self._name,
            position,
            published,
            list(versions),
            list(versions.values()),
        )

    async def versions(self, subjects: Iterable[str]) -> dict[str, int]:
        """The recorded public versions of ``subjects`` (absent: none published)."""
        rows = await self._pool.fetch(
            f"SELECT subject, version FROM {self._subjects}"
            " WHERE relay = $1 AND subject = ANY($2::text[])",
            self._name,
            list(subjects),
        )
        return {r["subject"]: int(r["version"]) for r in rows}

    async def counted(self) -> bool:
        """Whether this relay has recorded any public version."""
        found: bool = await self._pool.fetchval(
            f"SELECT EXISTS (SELECT FROM {self._subjects} WHERE relay = $1)", self._name
        )
        return found


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
        tail: Tail | None = None,
        linger: float = 0.0,
        schema_base: str | None = None,
    ) -> None:
        self._store = store
        self._checkpoint = checkpoint
        self._producer = producer
        self._topic = topic
        self._translate = translate
        self._batch_size = batch_size
        self._idle_wait = idle_wait
        self._linger = linger
        self._tail = tail
        self._tail_pending = False
        self._on_topic: dict[int, int] = {}
        """Per partition, the last position a relay before this one already sent there."""
        self.position = 0
        self.published = 0
        self._versions: dict[str, int] = {}
        """Public versions as checkpointed (a cache of the checkpoint's table)."""
        self._schema_base = schema_base
        self._schemas: dict[str, str] = {}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Publish until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        await self.resume()
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
                woken = waiting.done() and not waiting.cancelled() and waiting.result()
                if self._linger and woken and not stop.is_set():
                    await asyncio.sleep(self._linger)  # let the commits right behind it in
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

    async def resume(self) -> None:
        """Take up from the checkpoint. What is already on the topic above it (sent by a
        relay killed between the broker's acknowledgement and the checkpoint) is read
        before the first send."""
        self.position, published = await self._checkpoint.load()
        self._versions = {}
        if published is None or (published > 0 and not await self._checkpoint.counted()):
            # a checkpoint from before these were recorded: count them in the store once
            published, versions = await self._recount(self.position)
            await self._checkpoint.save(self.position, published, versions)
        self.published = published
        self._tail_pending = self._tail is not None

    async def _recount(self, upto: int) -> tuple[int, dict[str, int]]:
        """The last position published up to ``upto`` and each subject's public version
        there, from the store (for a checkpoint from before they were recorded)."""
        last, after, versions = 0, 0, dict[str, int]()
        while after < upto:
            events = await self._store.read_all(after, min(self._batch_size, upto - after))
            if not events:
                break
            for stored in events:
                envelope = self._translate(stored)
                if envelope is not None:
                    last = stored.position
                    versions[envelope.subject] = versions.get(envelope.subject, 0) + 1
            after = events[-1].position
        return last, versions

    async def publish_available(self, stop: asyncio.Event | None = None) -> int:
        """Publish every committed event, batch after batch, the next batch read and sent
        while the previous one's acknowledgements are awaited; returns how many were read.

        Returns when a read finds nothing new (or ``stop`` is set) and every batch sent is
        acknowledged and checkpointed. If a send fails, the batches not yet checkpointed
        go out again from the checkpoint (with the same event ids) on the next run.
        """
        after, published, read = self.position, self.published, 0
        pending: dict[str, int] = {}  # public versions sent, not all checkpointed yet
        confirming: asyncio.Future[None] | None = None
        try:
            while stop is None or not stop.is_set():
                events = await self._store.read_all(after, self._batch_size)
                if not events:
                    break
                acks, published, versions = await self._send(events, published, pending)
                after = events[-1].position
                read += len(events)
                if confirming is not None:
                    await confirming  # checkpoints in order; at most two batches in flight
                confirming = asyncio.ensure_future(self._confirm(acks, after, published, versions))
                if self._linger and len(events) < self._batch_size and not _set(stop):
                    # a steady stream: let the commits behind this batch in, so the next
                    # read, checkpoint and Kafka request carry several events, not one
                    await asyncio.sleep(self._linger)
            if confirming is not None:
                await confirming
        finally:
            if confirming is not None and not confirming.done():
                confirming.cancel()
                await asyncio.gather(confirming, return_exceptions=True)
        return read

    async def _send(
        self, events: list[StoredEvent], published: int, pending: dict[str, int]
    ) -> tuple[list[asyncio.Future[Any]], int, dict[str, int]]:
        """Hand a batch to the producer: the acknowledgements to await, the position of the
        last event published (the next envelope's ``prevposition``), and the public
        version each subject of the batch reached (also noted in ``pending``, the versions
        sent but not yet checkpointed). With tracing on, a producer span per traced event,
        ended when the batch is acknowledged."""
        envelopes = [e for e in map(self._translate, events) if e is not None]
        await self._load_versions({e.subject for e in envelopes}, pending)
        records, versions = [], {}
        traced: list[Envelope] = []
        for envelope in envelopes:
            subject = envelope.subject
            version = versions[subject] = pending[subject] = (
                pending.get(subject) or self._versions[subject]
            ) + 1
            records.append(
                (
                    envelope.globalposition,
                    to_kafka(
                        envelope,
                        prevposition=published,
                        publicversion=version,
                        dataschema=self._dataschema(envelope),
                    ),
                )
            )
            published = envelope.globalposition
            if tracing.sampled_header(envelope.traceparent):
                traced.append(envelope)
        spans = [self._span(envelope) for envelope in traced] if tracing.enabled() else []
        acks = await self._send_batches(records)
        if spans:
            acks.append(asyncio.ensure_future(_end_when_sent(spans, list(acks))))
        return acks, published, versions

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

    def _dataschema(self, envelope: Envelope) -> str | None:
        """Where the event's schema is served (with ``schema_base``), else its own."""
        if self._schema_base is None:
            return envelope.dataschema
        url = self._schemas.get(envelope.type)
        if url is None:
            url = self._schemas[envelope.type] = schema_url(envelope.type, self._schema_base)
        return url

    async def _load_versions(self, subjects: set[str], pending: dict[str, int]) -> None:
        """Bring the checkpointed public version of each subject neither sent nor cached
        into the cache (0: none published yet)."""
        missing = [s for s in subjects if s not in pending and s not in self._versions]
        if not missing:
            return
        if len(self._versions) + len(missing) > VERSIONS_CACHED:
            self._versions.clear()
            missing = [s for s in subjects if s not in pending]
        recorded = await self._checkpoint.versions(missing)
        for subject in missing:
            self._versions[subject] = recorded.get(subject, 0)

    async def _check_store_has(self, last: dict[int, tuple[int, str]]) -> None:
        """Every partition's last record of this relay's source is the store's event at
        its position (same event id).

        Raises:
            TopicAheadError: it is not.
        """
        for partition, (position, event_id) in sorted(last.items()):
            found = await self._store.read_all(position - 1, 1)
            stored = found[0] if found and found[0].position == position else None
            if stored is None or str(stored.event_id) != event_id:
                raise TopicAheadError(
                    f"{self._topic} partition {partition} has event {event_id} at position"
                    f" {position}, where the store has "
                    + ("none" if stored is None else f"event {stored.event_id}")
                    + ": the store is behind its topic (restored from an older backup?);"
                    " nothing is published until the topics agree with the store again"
                    " (deploy/runbooks/restore.md)"
                )

    async def _send_batches(
        self, records: list[tuple[int, KafkaRecord]]
    ) -> list[asyncio.Future[Any]]:
        """Fill one producer batch per partition and hand each over when it is full.

        What ``send`` does per record (wait for metadata, hash the key, find the partition's
        open batch, append) done once per batch: the same partitions (the producer's
        default partitioner on the key), the same batches (at most one queued per
        partition, in order, sequenced by the idempotent producer when sent), so the same
        order per key; one acknowledgement per batch. A record that a relay before this one
        already sent to its partition (``_on_topic``) is left out: it is there once.
        """
        producer, topic = self._producer, self._topic
        partitions = list(await producer.partitions_for(topic))
        if self._tail is not None and self._tail_pending and records:
            last = await self._tail(sorted(partitions), _source(records[0][1]))
            await self._check_store_has(last)
            self._on_topic = {p: at for p, (at, _) in last.items() if at > self.position}
            self._tail_pending = False
        partition_of: dict[bytes, int] = {}
        open_batches: dict[int, BatchBuilder] = {}
        acks = []
        on_topic = self._on_topic
        for position, record in records:
            partition = partition_of.get(record.key)
            if partition is None:
                partition = partition_of[record.key] = _PARTITIONER(record.key, partitions, None)
            if on_topic and position <= on_topic.get(partition, 0):
                continue
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
        if on_topic and records and records[-1][0] >= max(on_topic.values()):
            self._on_topic = {}  # past everything sent before: nothing more to leave out
        return acks

    async def _confirm(
        self,
        acks: list[asyncio.Future[Any]],
        position: int,
        published: int,
        versions: dict[str, int],
    ) -> None:
        """Checkpoint ``position`` (with the public versions its batch reached) once every
        send of its batch is acknowledged."""
        await asyncio.gather(*acks)
        await self._checkpoint.save(position, published, versions)
        self.position, self.published = position, published
        self._versions.update(versions)


def _source(record: KafkaRecord) -> bytes:
    """The ``ce_source`` of a record this relay sends (every one has the same)."""
    return dict(record.headers).get("ce_source", b"")


async def _end_when_sent(spans: list[Span], acks: list[asyncio.Future[Any]]) -> None:
    """End the spans of a batch's events when the broker acknowledged the batch."""
    try:
        await asyncio.gather(*acks)
    finally:
        for span in spans:
            span.end()


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
        relay = Relay(
            store,
            checkpoint,
            producer,
            topic,
            _load_translator(translator, source),
            tail=functools.partial(last_positions, settings, topic),
            schema_base=settings.schema_base_url,
        )
        await relay.run(stop)
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


def _set(event: asyncio.Event | None) -> bool:
    return event is not None and event.is_set()


if __name__ == "__main__":
    main()
