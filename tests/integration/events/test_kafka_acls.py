"""Kafka authentication and ACLs (deploy/kafka/topics.toml ``[[principal]]``) on a real broker.

An installation of its own (its topics and ACLs, as ``make topics`` and the e2e suite make
them) is used by principals of the local stack: the read-only ``subscriber`` reads the
public topics but not ``assessments.decisions`` (R11) and writes nothing; a service writes
its own topics only and reads what it consumes; label_decisions alone, of the services,
reads ``assessments.decisions``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)

from clr_dev.installation import acl_bindings, as_principal, install, uninstall
from clr_events.kafka.acls import ensure_acls
from clr_events.kafka.producer import new_producer
from clr_events.settings import ConnectionSettings

pytestmark = pytest.mark.skipif(
    not os.environ.get("CLR_KAFKA_PASSWORDS_FILE"),
    reason="needs a broker with SASL and ACLs: the local stack (deploy/local/stack.sh start)",
)

PUBLIC = [
    "collaboration.events",
    "training_certification.events",
    "assessments.events",
    "label_decisions.events",
    "label_decisions.current",
]


@pytest.fixture(scope="module")
async def installation(
    database_url: str, kafka_bootstrap: str
) -> AsyncIterator[ConnectionSettings]:
    """An installation with one record on each topic, written by the admin."""
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_acls")
    producer = AIOKafkaProducer(**base.kafka_options())
    await producer.start()
    try:
        for name in [*PUBLIC, "assessments.decisions"]:
            await producer.send_and_wait(settings.topic(name), b"{}", key=b"org-1")
    finally:
        await producer.stop()
    yield settings
    await uninstall(base, settings)


async def read_one(settings: ConnectionSettings, topic: str, group: str | None = None) -> int:
    """How many records a consumer of ``settings`` gets from the topic (as group member)."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic),
        **settings.kafka_options(),
        group_id=settings.topic(group) if group else None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
        batches = await consumer.getmany(timeout_ms=10_000, max_records=1)
        return sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()


async def write_one(settings: ConnectionSettings, topic: str) -> None:
    """Send one record as ``settings``' principal (a plain producer, not idempotent)."""
    producer = AIOKafkaProducer(**settings.kafka_options(), request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), b"{}", key=b"org-1")
    finally:
        await producer.stop()


@pytest.mark.parametrize("topic", PUBLIC)
async def test_the_subscriber_reads_every_public_topic_in_its_own_group(
    installation: ConnectionSettings, topic: str
) -> None:
    subscriber = as_principal(installation, "subscriber")
    assert await read_one(subscriber, topic, group="subscriber.tests") == 1


async def test_the_subscriber_cannot_read_the_restricted_decisions_topic(
    installation: ConnectionSettings,
) -> None:
    subscriber = as_principal(installation, "subscriber")
    with pytest.raises(TopicAuthorizationFailedError):
        await read_one(subscriber, "assessments.decisions")


@pytest.mark.parametrize(
    "topic", [*PUBLIC, "assessments.decisions", "label_decisions.decisions.dlq"]
)
async def test_the_subscriber_cannot_write_any_topic(
    installation: ConnectionSettings, topic: str
) -> None:
    subscriber = as_principal(installation, "subscriber")
    with pytest.raises(TopicAuthorizationFailedError):
        await write_one(subscriber, topic)


async def test_the_subscriber_cannot_start_an_idempotent_producer(
    installation: ConnectionSettings,
) -> None:
    producer = AIOKafkaProducer(
        **as_principal(installation, "subscriber").kafka_options(), enable_idempotence=True
    )
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            await producer.start()
    finally:
        await producer.stop()


async def test_the_subscriber_cannot_join_a_service_s_consumer_group(
    installation: ConnectionSettings,
) -> None:
    subscriber = as_principal(installation, "subscriber")
    with pytest.raises(GroupAuthorizationFailedError):
        await read_one(subscriber, "label_decisions.events", group="collaboration.labels")


@pytest.mark.parametrize(
    "topic", ["label_decisions.events", "assessments.events", "label_decisions.current"]
)
async def test_a_service_cannot_write_another_service_s_topic(
    installation: ConnectionSettings, topic: str
) -> None:
    collaboration = as_principal(installation, "collaboration")
    with pytest.raises(TopicAuthorizationFailedError):
        await write_one(collaboration, topic)


async def test_a_service_writes_its_own_topic(installation: ConnectionSettings) -> None:
    await write_one(as_principal(installation, "collaboration"), "collaboration.events")


@pytest.mark.parametrize("service", ["collaboration", "projections", "training_certification"])
async def test_no_service_but_its_writer_and_label_decisions_reads_the_restricted_topic(
    installation: ConnectionSettings, service: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await read_one(as_principal(installation, service), "assessments.decisions")


async def test_label_decisions_reads_the_restricted_decisions_topic_in_its_group(
    installation: ConnectionSettings,
) -> None:
    label_decisions = as_principal(installation, "label_decisions")
    assert (
        await read_one(label_decisions, "assessments.decisions", "label_decisions.decisions") == 1
    )


async def test_creating_the_acls_again_changes_nothing(installation: ConnectionSettings) -> None:
    assert await ensure_acls(installation, acl_bindings(installation))  # as the admin
    subscriber = as_principal(installation, "subscriber")
    with pytest.raises(TopicAuthorizationFailedError):
        await read_one(subscriber, "assessments.decisions")


async def test_a_service_may_write_as_soon_as_its_installation_is_made(
    database_url: str, kafka_bootstrap: str
) -> None:
    # the broker applies new ACLs a moment after the controller has them: install waits
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_acls")
    try:
        producer = new_producer(as_principal(settings, "training_certification"))
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic("training_certification.events"), b"{}")
        finally:
            await producer.stop()
    finally:
        await uninstall(base, settings)
