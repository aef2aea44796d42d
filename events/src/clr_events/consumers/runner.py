"""The consumer runner: effectively-once processing of Kafka messages into PostgreSQL.

In one PostgreSQL transaction, never apart: a message's effects, its event id in the
group's inbox (so a republished duplicate is recognised by ``(source, id)``), and the
group's checkpoint for that partition. Only after that commit are the Kafka offsets
committed (every partition's in one request, at most once a second), and only as a hint:
on assignment the runner seeks to its own checkpoint, so a crash between the two commits
repeats nothing.

What one fetch brought from a partition goes through in transactions of up to
``max_batch`` messages (the checkpoint once, at the last offset; one commit instead of one
per message). A batch that fails in any way is rolled back whole and its messages go
through again one by one, each in its own transaction, where the retries and the dead
letters below apply: a bad message costs its batch a second pass, never a good message.
A handler that appends to an event store runs with ``max_batch=1``, so the store's head
lock is held for one round trip, not across a batch.

Errors are classified once, by ``errors.is_transient`` (shared with the projections):

- transient (connection lost, deadlock, serialization failure, timeouts, or a
  ``TransientError`` raised by the handler): retried with bounded exponential backoff; when
  the retries are spent the runner stops (and a restart resumes from the checkpoint), so
  no good message is dead-lettered because a database was away;
- anything else (not a CloudEvent, unknown type, invalid data, a value PostgreSQL refuses,
  a domain refusal): the message goes to ``<group>.dlq`` with the error in ``dlq_*``
  headers (``dlq.send_dead_letter``: acknowledged before its offset is checkpointed, so
  at-least-once into the DLQ), its offset is checkpointed, and the runner carries on with
  the next message. ``python -m clr_events.consumers.dlq replay`` redelivers them after a
  fix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from clr_events.codec import from_kafka
from clr_events.consumers.dlq import DeadLetter, Redeliver, dead_letter_headers, send_dead_letter
from clr_events.consumers.errors import TransientError, is_transient
from clr_events.envelope import Envelope
from clr_events.kafka.producer import new_producer
from clr_events.migrations import events_migrations, migrate
from clr_events.observability import tracing
from clr_events.observability.logs import bind_correlation
from clr_events.outage import Outage, backoff
from clr_events.pg import Connection, Pool
from clr_events.settings import ConnectionSettings

log = logging.getLogger(__name__)

Handler = Callable[[Connection, Envelope], Awaitable[None]]


OFFSET_COMMIT_SECONDS = 1.0
"""How often a runner commits its Kafka offsets (a hint for tools and lag metrics)."""

__all__ = [
    "CheckpointStore",
    "ConsumerRunner",
    "Handler",
    "TransientError",
    "dead_letter_headers",
    "redeliverer",
]


class CheckpointStore:
    """Per consumer group: the last processed offset per partition, and the inbox."""

    def __init__(self, schema: str = "public") -> None:
        self._schema = schema

    async def migrate(self, conn: Connection) -> None:
        """Apply the tables' pending migrations (``clr_events/migrations/consumer``)."""
        await migrate(conn, self._schema, "consumer", events_migrations("consumer"))

    async def load(self, conn: Connection, group: str, topic: str, partition: int) -> int | None:
        """The last processed offset of a partition, or None."""
        offset = await conn.fetchval(
            f'SELECT "offset" FROM {self._schema}.consumer_checkpoints'
            " WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
            group,
            topic,
            partition,
        )
        return None if offset is None else int(offset)

    async def save(
        self, conn: Connection, group: str, topic: str, partition: int, offset: int
    ) -> None:
        """Record a processed offset (inside the caller's transaction)."""
        await conn.execute(
            f"INSERT INTO {self._schema}.consumer_checkpoints VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (consumer_group, topic, partition)"
            ' DO UPDATE SET "offset" = excluded."offset"',
            group,
            topic,
            partition,
            offset,
        )

    async def first_delivery(self, conn: Connection, group: str, envelope: Envelope) -> bool:
        """Enter the event in the inbox; False when it was processed before."""
        return (await self.first_deliveries(conn, group, [envelope]))[0]

    async def first_deliveries(
        self, conn: Connection, group: str, envelopes: list[Envelope]
    ) -> list[bool]:
        """Enter the events in the inbox in one statement; per event, False when it was
        processed before (or comes again within ``envelopes``)."""
        entered = await conn.fetch(
            f"INSERT INTO {self._schema}.consumer_inbox (consumer_group, source, event_id)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[])"
            " ON CONFLICT DO NOTHING RETURNING source, event_id",
            group,
            [e.source for e in envelopes],
            [e.id for e in envelopes],
        )
        new = {(r["source"], r["event_id"]) for r in entered}
        firsts = []
        for envelope in envelopes:
            key = (envelope.source, envelope.id)
            firsts.append(key in new)
            new.discard(key)  # the same event again in this batch is a repeat
        return firsts


class _SeekToCheckpoint(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to do: every processed offset is already checkpointed (offsets of these
        partitions not yet committed to Kafka are left out of the next commit)."""
        del revoked

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._runner.seek_to_checkpoints(assigned)


class ConsumerRunner:
    """Runs one consumer group member: handler, checkpoint, dead letters."""

    def __init__(
        self,
        pool: Pool,
        *,
        group: str,
        topics: list[str],
        handler: Handler,
        kafka: ConnectionSettings,
        schema: str = "public",
        max_retries: int = 5,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        max_batch: int = 100,
    ) -> None:
        self.group = group
        self.dlq_topic = f"{group}.dlq"
        self._pool = pool
        self._topics = topics
        self._handler = handler
        self._kafka = kafka
        self._checkpoints = CheckpointStore(schema)
        self._max_retries = max_retries
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_batch = max(1, max_batch)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.processed = 0
        self.dead_lettered = 0
        self.positions: dict[TopicPartition, int] = {}
        """The next offset to process per partition assigned here (for the lag)."""
        self.progressed_at = time.monotonic()
        """When this runner last applied or dead-lettered a message (or started): with lag,
        a growing age is a stalled consumer."""
        self.outage = Outage(f"consumer {group}", log)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; leaves the group cleanly on the way out."""
        stop = stop or asyncio.Event()
        async with self._pool.acquire() as conn:
            await self._checkpoints.migrate(conn)
        self._consumer = AIOKafkaConsumer(
            **self._kafka.kafka_options(),
            **self._kafka.consumer_fetch_options(),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self._producer = new_producer(self._kafka)
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe(self._topics, listener=_SeekToCheckpoint(self))
        uncommitted: dict[TopicPartition, int] = {}
        committed_at = 0.0
        try:
            while not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
                for tp, messages in batches.items():
                    await self.process_all(messages)
                    self.positions[tp] = uncommitted[tp] = messages[-1].offset + 1
                # the Kafka offsets are a hint (the checkpoints say where to go on): every
                # partition's in one request, at most once a second
                if uncommitted and time.monotonic() - committed_at >= OFFSET_COMMIT_SECONDS:
                    await self._commit_offsets(uncommitted)
                    uncommitted, committed_at = {}, time.monotonic()
            if uncommitted:
                await self._commit_offsets(uncommitted)
        finally:
            await self._consumer.stop()
            await self._producer.stop()

    async def seek_to_checkpoints(self, assigned: list[TopicPartition]) -> None:
        """On assignment: continue after our own checkpoint, not Kafka's committed offset."""
        assert self._consumer is not None
        self.positions.clear()
        async with self._pool.acquire() as conn:
            for tp in assigned:
                offset = await self._checkpoints.load(conn, self.group, tp.topic, tp.partition)
                if offset is not None:
                    self._consumer.seek(tp, offset + 1)
                    self.positions[tp] = offset + 1

    def lag(self) -> dict[tuple[str, int], int]:
        """Per partition assigned here and fetched from: messages still to process (the
        end offset the last fetch saw, the last stable one under ``read_committed``, minus
        the next offset to process). A partition fetched from but never processed here is
        at its end."""
        consumer = self._consumer
        if consumer is None:
            return {}
        lags: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is None:
                continue
            lags[(tp.topic, tp.partition)] = max(end - self.positions.get(tp, end), 0)
        return lags

    async def process_all(self, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply one partition's messages in order, ``max_batch`` to a transaction; a batch
        that fails goes through again one message at a time.

        Raises:
            Exception: a transient failure that outlasted the retries.
        """
        for start in range(0, len(messages), self._max_batch):
            batch = messages[start : start + self._max_batch]
            if len(batch) == 1 or not await self._apply_together(batch):
                for message in batch:
                    await self.process(message)

    async def _apply_together(self, batch: list[ConsumerRecord[bytes, bytes]]) -> bool:
        """The batch in one transaction; False (and nothing written) when any of it failed."""
        try:
            envelopes = [from_kafka(m.key, m.value, m.headers) for m in batch]
        except Exception:  # the one-by-one pass dead-letters the message at fault
            return False
        last = batch[-1]
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._checkpoints.save(
                    conn, self.group, last.topic, last.partition, last.offset
                )
                firsts = await self._checkpoints.first_deliveries(conn, self.group, envelopes)
                for message, envelope, first in zip(batch, envelopes, firsts, strict=True):
                    bind_correlation(envelope.correlationid or envelope.id)
                    with self._span(message, envelope):
                        if first:
                            await self._handler(conn, envelope)
        except Exception as error:
            log.debug("a batch of %d failed (%r); one by one", len(batch), error)
            return False
        self.processed += len(batch)
        self.progressed_at = time.monotonic()
        self.outage.ended()
        return True

    def _span(
        self, message: ConsumerRecord[bytes, bytes], envelope: Envelope
    ) -> AbstractContextManager[Any]:
        return tracing.span(
            f"process {message.topic}",
            parent=tracing.context_of(envelope.traceparent, envelope.tracestate),
            kind=tracing.SpanKind.CONSUMER,
            attributes=self._attributes(message, envelope) if tracing.enabled() else None,
        )

    async def process(self, message: ConsumerRecord[bytes, bytes]) -> None:
        """Apply one message effectively once, or dead-letter it.

        Raises:
            Exception: a transient failure that outlasted the retries.
        """
        try:
            envelope = from_kafka(message.key, message.value, message.headers)
        except Exception as error:  # whatever decoding raises, the bytes are at fault
            await self._dead_letter(message, error)
            return
        bind_correlation(envelope.correlationid or envelope.id)
        with self._span(message, envelope):
            await self._process(message, envelope)

    def _attributes(
        self, message: ConsumerRecord[bytes, bytes], envelope: Envelope
    ) -> dict[str, str | int]:
        return {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": message.topic,
            "messaging.destination.partition.id": str(message.partition),
            "messaging.consumer.group.name": self.group,
            "messaging.kafka.offset": message.offset,
            "messaging.message.id": envelope.id,
            "cloudevents.event_type": envelope.type,
        }

    async def _process(self, message: ConsumerRecord[bytes, bytes], envelope: Envelope) -> None:
        delay = self._backoff_initial
        for attempt in range(self._max_retries + 1):
            try:
                await self._apply(message, envelope)
                self.processed += 1
                self.progressed_at = time.monotonic()
                self.outage.ended()
                return
            except Exception as error:
                if not is_transient(error):
                    await self._dead_letter(message, error)
                    return
                if attempt == self._max_retries:
                    raise  # the runner stops; its restart resumes from the checkpoint
                pause, delay = backoff(delay, maximum=self._backoff_max)
                self.outage.failed(error, retry_in=pause)  # logged once per outage
                await asyncio.sleep(pause)

    async def _apply(self, message: ConsumerRecord[bytes, bytes], envelope: Envelope) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # the checkpoint first: a handler that appends to an event store does so last,
            # right before the commit (the store's head lock is then held one round trip)
            await self._checkpoints.save(
                conn, self.group, message.topic, message.partition, message.offset
            )
            if await self._checkpoints.first_delivery(conn, self.group, envelope):
                await self._handler(conn, envelope)

    async def _dead_letter(
        self, message: ConsumerRecord[bytes, bytes], error: BaseException
    ) -> None:
        assert self._producer is not None
        await send_dead_letter(self._producer, self.group, message, error)
        async with self._pool.acquire() as conn, conn.transaction():
            await self._checkpoints.save(
                conn, self.group, message.topic, message.partition, message.offset
            )
        self.dead_lettered += 1
        self.progressed_at = time.monotonic()

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit Kafka offsets: a hint for tools and lag metrics, not the source of truth.
        A partition no longer assigned here (given up in a rebalance since) is left out, and
        a commit that fails (a rebalance under way, say) is only logged: the next one, or
        the checkpoints on assignment, make up for it."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as error:
            log.debug("%s: offsets not committed (a hint only): %r", self.group, error)


def redeliverer(handler: Handler, group: str, schema: str = "public") -> Redeliver:
    """Redeliver a dead letter's original to ``handler`` as the runner would: the event
    enters the group's inbox in the replay's transaction (a repeat, or an event the group
    has processed since, is skipped).

    Raises:
        EnvelopeError: the original is not a CloudEvent (it stays refused).
    """
    inbox = CheckpointStore(schema)

    async def redeliver(conn: Connection, letter: DeadLetter) -> None:
        envelope = from_kafka(letter.key, letter.value, letter.headers)
        if await inbox.first_delivery(conn, group, envelope):
            await handler(conn, envelope)

    return redeliver
