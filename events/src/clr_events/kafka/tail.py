"""What a relay already sent to a topic: the global position and event id of its last
record on each partition.

A relay killed after the broker acknowledged a batch but before the checkpoint recorded it
would send that batch again on restart; the event id makes the repeat harmless to a
consumer that dedupes, but a subscriber counting records per event id sees it twice. So a
relay, before it resumes, reads the last record *of its source* (``ce_source``) on each
partition of its topic: it sends in position order, and the idempotent producer keeps that
order per partition, so every event at or below that position was sent to that partition,
and everything above it was not.

Records of another source (the ACLs let only the service write its topic, but an operator
or a test may put a record there) are passed over, however many: were they taken for the
relay's own, one with a high ``ce_globalposition`` would make the relay leave out events
it never sent, and one without a position would stop it resuming at all. The search reads
back from the end in widening windows, so the usual case (the last record is the relay's)
reads one record per partition.

The event id lets the relay check that the record is the store's event at that position
(``outbox.relay``): a store restored from an older backup is behind its topic, and its new
events take positions the topic already has with other events.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from clr_events.settings import ConnectionSettings

POSITION_HEADER = "ce_globalposition"
SOURCE_HEADER = "ce_source"
ID_HEADER = "ce_id"
READ_TIMEOUT = 30.0
"""Seconds to find the last records (a broker that does not answer fails the resume)."""
FIRST_WINDOW = 1
"""Records read back from a partition's end at first; each further window is 16 times
as long."""


async def last_positions(
    settings: ConnectionSettings, topic: str, partitions: list[int], source: bytes
) -> dict[int, tuple[int, str]]:
    """The ``ce_globalposition`` and ``ce_id`` of the last record from ``source`` on each of
    ``topic``'s ``partitions`` (partitions without one left out).

    Raises:
        TimeoutError: the records did not arrive in ``READ_TIMEOUT`` seconds.
    """
    consumer = AIOKafkaConsumer(
        **settings.kafka_options(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        found: dict[int, tuple[int, str]] = {}
        async with asyncio.timeout(READ_TIMEOUT):
            for tp in tps:
                sent = await _last_of(consumer, tp, begins[tp], ends[tp], source)
                if sent is not None:
                    found[tp.partition] = sent
        return found
    finally:
        await consumer.stop()


async def _last_of(
    consumer: AIOKafkaConsumer, tp: TopicPartition, begin: int, end: int, source: bytes
) -> tuple[int, str] | None:
    """The position and event id of the last record from ``source`` in ``tp`` below
    ``end``."""
    window = FIRST_WINDOW
    consumer.assign([tp])
    while end > begin:
        start = max(begin, end - window)
        consumer.seek(tp, start)
        last: tuple[int, str] | None = None
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                sent = _sent(record.headers, source)
                if sent is not None and record.offset < end:
                    last = sent
        if last is not None:
            return last
        end, window = start, window * 16
    return None


def _sent(headers: object, source: bytes) -> tuple[int, str] | None:
    """The record's position and event id if ``source`` sent it, else None."""
    found = dict(headers or ())  # type: ignore[call-overload]
    position, event_id = found.get(POSITION_HEADER), found.get(ID_HEADER)
    if found.get(SOURCE_HEADER) != source or not position or not event_id:
        return None  # the relay sends every record with all three
    try:
        return int(position), bytes(event_id).decode()
    except ValueError:  # UnicodeDecodeError included
        return None
