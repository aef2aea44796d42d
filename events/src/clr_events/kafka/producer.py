"""The one way this project produces to Kafka."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer


def new_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    """An idempotent producer: acks from all replicas, no duplicates from its own retries."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
    )
