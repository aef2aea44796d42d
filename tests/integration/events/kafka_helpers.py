"""Small helpers to put envelopes on a topic and read a topic back (whole or filtered),
as the environment's Kafka principal (the local stack's admin)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from clr_events.codec import to_kafka
from clr_events.envelope import Envelope
from clr_events.settings import ConnectionSettings


def make_envelope(subject: str = "org-1", version: int = 1, **data: Any) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source="/tests",
        type="tests.Happened.v1",
        subject=subject,
        time=datetime.now(UTC),
        data=dict(data),
        streamversion=version,
        globalposition=version,
    )


async def produce(bootstrap: str, topic: str, items: list[Envelope | bytes]) -> None:
    """Send envelopes (binary mode) or raw bytes (poison), in order, and wait for acks."""
    options = ConnectionSettings(kafka_bootstrap_servers=bootstrap).kafka_options()
    producer = AIOKafkaProducer(**options, enable_idempotence=True)
    await producer.start()
    try:
        for item in items:
            if isinstance(item, Envelope):
                record = to_kafka(item)
                await producer.send_and_wait(
                    topic, record.value, key=record.key, headers=record.headers
                )
            else:
                await producer.send_and_wait(topic, item, key=b"poison")
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 30.0,
    keep: Callable[[ConsumerRecord[bytes, bytes]], bool] = lambda _: True,
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of a topic from the start that ``keep`` accepts (all, by default), once
    at least ``expected`` have arrived (or what there is at the timeout)."""
    options = ConnectionSettings(kafka_bootstrap_servers=bootstrap).kafka_options()
    consumer = AIOKafkaConsumer(
        topic, **options, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += [record for record in batch if keep(record)]
    finally:
        await consumer.stop()
    return records
