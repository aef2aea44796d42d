"""The one way this project produces to Kafka."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from clr_events.settings import ConnectionSettings


def new_producer(settings: ConnectionSettings) -> AIOKafkaProducer:
    """An idempotent producer: acks from all replicas, no duplicates from its own retries."""
    return AIOKafkaProducer(
        **settings.kafka_options(),
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
    )
