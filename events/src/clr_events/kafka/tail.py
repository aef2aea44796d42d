"""What is already on a topic: the global position of the last record on each partition.

A relay killed after the broker acknowledged a batch but before the checkpoint recorded it
would send that batch again on restart; the event id makes the repeat harmless to a
consumer that dedupes, but a subscriber counting records per event id sees it twice. So a
relay, before it resumes, reads the last record of each partition of its topic: the relay
alone writes the topic, sends in position order, and the idempotent producer keeps that
order per partition, so every event at or below a partition's last position was sent to
that partition, and everything above it was not.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from clr_events.settings import ConnectionSettings

POSITION_HEADER = "ce_globalposition"
READ_TIMEOUT = 30.0
"""Seconds to wait for the last records (a broker that does not answer fails the resume)."""


async def last_positions(
    settings: ConnectionSettings, topic: str, partitions: list[int]
) -> dict[int, int]:
    """The ``ce_globalposition`` of the last record on each of ``topic``'s ``partitions``
    (partitions without records left out).

    Raises:
        TimeoutError: the last records did not arrive in ``READ_TIMEOUT`` seconds.
    """
    consumer = AIOKafkaConsumer(
        **settings.kafka_options(), enable_auto_commit=False, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        wanted = {tp: end - 1 for tp, end in ends.items() if end > 0}
        if not wanted:
            return {}
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset)
        return await asyncio.wait_for(_read_last(consumer, wanted), READ_TIMEOUT)
    finally:
        await consumer.stop()


async def _read_last(
    consumer: AIOKafkaConsumer, wanted: dict[TopicPartition, int]
) -> dict[int, int]:
    found: dict[int, int] = {}
    while len(found) < len(wanted):
        batches = await consumer.getmany(timeout_ms=1000)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= wanted[tp]:
                    found[tp.partition] = _position(record.headers)
    return found


def _position(headers: object) -> int:
    for name, value in headers or ():  # type: ignore[attr-defined]
        if name == POSITION_HEADER:
            return int(value)
    raise ValueError(f"a record without {POSITION_HEADER}")
