"""Read a whole topic, from its start to its end as it is when asked (no consumer group)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from clr_events.settings import ConnectionSettings


def reader(kafka: ConnectionSettings) -> AIOKafkaConsumer:
    """A group-less reader of committed records (its caller keeps its own marks)."""
    return AIOKafkaConsumer(
        **kafka.kafka_options(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )


async def read_to_end(kafka: ConnectionSettings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` (the installation's name), from the start to the end
    offsets it has when asked; [] if there is no such topic."""
    consumer = reader(kafka)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return []
        await consumer.end_offsets([TopicPartition(topic, 0)])  # loads its metadata
        found = consumer.partitions_for_topic(topic) or {0}
        partitions = [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += [
                    r for r in batch if r.offset < ends[TopicPartition(r.topic, r.partition)]
                ]
        return records
    finally:
        await consumer.stop()
