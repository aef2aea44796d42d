"""An isolated installation on a shared PostgreSQL and Kafka: its own database and its own
topics and consumer groups (``CLR_INSTANCE``). The end-to-end tests and the read-side
benchmark each run the system on one, and remove it afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from clr_events.kafka.topics import TopicSpec, ensure_topics, load_specs
from clr_events.settings import ConnectionSettings

TOPICS = Path(__file__).resolve().parents[3] / "kafka" / "topics.toml"
"""deploy/kafka/topics.toml: the declared topics."""


def topic_specs(settings: ConnectionSettings) -> list[TopicSpec]:
    """The declared topics, named for the installation."""
    return load_specs(TOPICS, settings.instance)


async def install(base: ConnectionSettings, prefix: str) -> ConnectionSettings:
    """A fresh installation named ``<prefix>_<random>``: its database and its topics."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    settings = ConnectionSettings(
        database_url=urlunsplit(urlsplit(base.database_url)._replace(path=f"/{name}")),
        kafka_bootstrap_servers=base.kafka_bootstrap_servers,
        instance=name.replace("_", ""),
    )
    conn = await asyncpg.connect(base.database_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    await ensure_topics(base.kafka_bootstrap_servers, topic_specs(settings))
    return settings


async def uninstall(base: ConnectionSettings, settings: ConnectionSettings) -> None:
    """Drop an installation's database and delete its topics."""
    conn = await asyncpg.connect(base.database_url)
    try:
        name = urlsplit(settings.database_url).path.lstrip("/")
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=base.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([spec.name for spec in topic_specs(settings)])
    finally:
        await admin.close()


def service_env(settings: ConnectionSettings, secret: str) -> dict[str, str]:
    """The environment of the services of an installation (for ``supervisor.start``)."""
    return {
        "CLR_DATABASE_URL": settings.database_url,
        "CLR_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CLR_JWT_SECRET": secret,
        "CLR_LOG_LEVEL": "WARNING",
        "CLR_INSTANCE": settings.instance,
    }
