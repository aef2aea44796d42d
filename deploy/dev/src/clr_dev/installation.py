"""An isolated installation on a shared PostgreSQL and Kafka: its own database and its own
topics and consumer groups (``CLR_INSTANCE``), with the ACLs of its principals. The
end-to-end tests and the read-side benchmark each run the system on one, and remove it
afterwards.

Kafka principals: the local stack (deploy/local/stack.sh) keeps a password per principal
(admin, each service, subscriber) in the file ``CLR_KAFKA_PASSWORDS_FILE`` names, one
``name=password`` a line; each service is started as its own principal from it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from clr_events.kafka.acls import AclBinding, delete_acls, ensure_acls, load_acls
from clr_events.kafka.topics import TopicSpec, ensure_topics, load_specs
from clr_events.settings import ConnectionSettings

TOPICS = Path(__file__).resolve().parents[3] / "kafka" / "topics.toml"
"""deploy/kafka/topics.toml: the declared topics."""


def topic_specs(settings: ConnectionSettings) -> list[TopicSpec]:
    """The declared topics, named for the installation."""
    return load_specs(TOPICS, settings.instance)


def acl_bindings(settings: ConnectionSettings) -> list[AclBinding]:
    """The declared ACLs, for the installation's topics and groups."""
    return load_acls(TOPICS, settings.instance)


def kafka_passwords(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The local stack's Kafka principals and passwords (empty without a passwords file)."""
    path = env.get("CLR_KAFKA_PASSWORDS_FILE")
    if not path:
        return {}
    lines = Path(path).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def principal_env(name: str, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The settings that make a process Kafka principal ``name`` (none without passwords).

    Raises:
        KeyError: the passwords file has no password for ``name``.
    """
    passwords = kafka_passwords(env)
    if not passwords:
        return {}
    return {"CLR_KAFKA_USERNAME": name, "CLR_KAFKA_PASSWORD": passwords[name]}


def as_principal(settings: ConnectionSettings, name: str) -> ConnectionSettings:
    """``settings`` as Kafka principal ``name`` of the local stack.

    Raises:
        KeyError: the passwords file has no password for ``name``.
    """
    return settings.as_principal(name, kafka_passwords()[name])


async def install(base: ConnectionSettings, prefix: str) -> ConnectionSettings:
    """A fresh installation named ``<prefix>_<random>``: its database and its topics."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(
        update={
            "database_url": urlunsplit(urlsplit(base.database_url)._replace(path=f"/{name}")),
            "instance": name.replace("_", ""),
        }
    )
    conn = await asyncpg.connect(base.database_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    await ensure_topics(base, topic_specs(settings))
    await ensure_acls(base, acl_bindings(settings))
    return settings


async def uninstall(base: ConnectionSettings, settings: ConnectionSettings) -> None:
    """Drop an installation's database and delete its topics and ACLs."""
    conn = await asyncpg.connect(base.database_url)
    try:
        name = urlsplit(settings.database_url).path.lstrip("/")
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(**base.kafka_options())
    await admin.start()
    try:
        await admin.delete_topics([spec.name for spec in topic_specs(settings)])
    finally:
        await admin.close()
    await delete_acls(base, acl_bindings(settings))


def service_env(settings: ConnectionSettings, secret: str) -> dict[str, str]:
    """The environment of the services of an installation (for ``supervisor.start``, which
    adds each service's own Kafka principal)."""
    return {
        "CLR_DATABASE_URL": settings.database_url,
        "CLR_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CLR_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "CLR_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "CLR_JWT_SECRET": secret,
        "CLR_LOG_LEVEL": "WARNING",
        "CLR_INSTANCE": settings.instance,
    }
