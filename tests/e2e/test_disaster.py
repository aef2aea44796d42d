"""The Kafka topics are lost: created again empty, the relays republish every store from
position 1, and subscribers see the same event ids, positions and ``prevposition`` chain;
the domain services' consumers read the new topics from the start and their inbox drops
what they had handled (no event store grows, no effect changes); the read models rebuilt
from the new topics have the same rows as before (deploy/runbooks/kafka-lost.md).

Its own installation: its topics are deleted while the session's system runs on.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from clr_dev import supervisor
from clr_dev.installation import install, service_env, topic_specs, uninstall
from clr_events.backup import republish
from clr_events.codec import from_kafka
from clr_events.kafka.producer import new_producer
from clr_events.kafka.topics import ensure_topics
from clr_events.settings import ConnectionSettings
from projections.core import CONTROL, forget_offsets
from projections.offsets import Offsets
from projections.read_models.all import READ_MODELS
from projections.rebuild import rebuild
from tests.e2e import scenario
from tests.e2e.conftest import PORT_BASE, System

PORTS = {name: PORT_BASE + 30 + n for n, name in enumerate(supervisor.SERVICES)}
RELAYED = (
    "collaboration.events",
    "training_certification.events",
    "assessments.events",
    "assessments.decisions",
    "label_decisions.events",
)
"""The topics the relays publish."""
DOMAIN = ("collaboration", "training_certification", "assessments", "label_decisions")
Published = list[tuple[int, str, int | None, int | None]]


async def published(settings: ConnectionSettings, topic: str, at_least: int = 0) -> Published:
    """Every record of ``topic`` as (partition, event id, position, prevposition), in
    partition order; waits up to a minute for ``at_least`` of them."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        offsets = Offsets(settings)
        await offsets.start()
        try:
            tps = await offsets.partitions([topic])
        finally:
            await offsets.stop()
        consumer = AIOKafkaConsumer(**settings.kafka_options(), enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found: Published = []
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for r in records:
                        if r.offset < ends[tp]:
                            e = from_kafka(r.key, r.value, r.headers)
                            found.append((tp.partition, e.id, e.globalposition, e.prevposition))
        finally:
            await consumer.stop()
        if len(found) >= at_least or asyncio.get_running_loop().time() > deadline:
            return sorted(found, key=lambda f: f[0])  # stable: offset order per partition
        await asyncio.sleep(1)


async def read_model_rows(pool: asyncpg.Pool[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model, through the views (but the snapshot outbox's: the live
    publisher drains it, and a rebuild fills it again)."""
    rows = {}
    for name, model in READ_MODELS.items():
        for table in (t for t in model.tables if t != "current_outbox"):
            found = await pool.fetch(f"SELECT * FROM {CONTROL}.{name}_{table}")
            rows[f"{name}.{table}"] = sorted((tuple(r) for r in found), key=repr)
    return rows


async def domain_rows(pool: asyncpg.Pool[Any]) -> dict[str, Any]:
    """What the domain services hold: events per store, their tables, inbox sizes (not the
    transparency log's checkpoints: those are signed on a timer, ``signed_checkpoints``)."""
    rows: dict[str, Any] = {}
    for schema in DOMAIN:
        rows[f"{schema} events"] = await pool.fetchval(f"SELECT count(*) FROM {schema}.event_store")
        tables = await pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
            " AND table_name NOT LIKE 'event_store%' AND table_name NOT LIKE 'tlog_%'"
            " AND table_name NOT IN"
            " ('relay_checkpoint', 'consumer_checkpoints', 'schema_migrations')",
            schema,
        )
        for (table,) in tables:
            found = await pool.fetch(
                f"SELECT * FROM {schema}.{table}"
                if table != "consumer_inbox"
                else f"SELECT consumer_group, source, event_id FROM {schema}.{table}"
            )
            if table == "idempotency_keys":
                found = await pool.fetch(f"SELECT actor, key FROM {schema}.{table}")
            rows[f"{schema}.{table}"] = sorted((tuple(r) for r in found), key=repr)
    return rows


async def signed_checkpoints(pool: asyncpg.Pool[Any]) -> set[tuple[str, Any]]:
    """Every store's signed checkpoints (a store's checkpointer signs its head every few
    seconds whether or not a consumer acted, so a restart may add one)."""
    return {
        (schema, tuple(row))
        for schema in DOMAIN
        for row in await pool.fetch(f"SELECT * FROM {schema}.tlog_checkpoints")
    }


async def consumers_caught_up(pool: asyncpg.Pool[Any], settings: ConnectionSettings) -> bool:
    """Every domain consumer's checkpoint is at the end of its partition of the new topics."""
    consumer = AIOKafkaConsumer(**settings.kafka_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        for schema in DOMAIN:
            if not await pool.fetchval("SELECT to_regclass($1)", f"{schema}.consumer_checkpoints"):
                continue  # a service without consumers
            for row in await pool.fetch(f"SELECT * FROM {schema}.consumer_checkpoints"):
                tp = TopicPartition(row["topic"], row["partition"])
                end = (await consumer.end_offsets([tp]))[tp]
                if row["offset"] + 1 < end:
                    return False
    finally:
        await consumer.stop()
    return True


async def lost_and_created_again(base: ConnectionSettings, settings: ConnectionSettings) -> None:
    """Delete every topic of the installation and create them again, empty."""
    names = [spec.name for spec in topic_specs(settings)]
    admin = AIOKafkaAdminClient(**base.kafka_options())
    await admin.start()
    try:
        await admin.delete_topics(names)
        for _ in range(60):  # deletion is asynchronous
            if not set(names) & set(await admin.list_topics()):
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    for attempt in range(20):
        try:
            await ensure_topics(base, topic_specs(settings))
            return
        except Exception:  # still marked for deletion
            if attempt == 19:
                raise
            await asyncio.sleep(1)


async def test_lost_topics_are_republished_from_the_stores_with_the_same_ids_and_positions(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_disaster")
    secret = secrets.token_hex(32)
    env = service_env(settings, secret)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=6)
    assert pool is not None
    running = await asyncio.to_thread(supervisor.start, tmp_path / "before", ports=PORTS, env=env)
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:

            def system() -> System:
                return System(
                    running.urls, client, kafka_bootstrap, secret, settings.instance, database_url
                )

            async def read_side_caught_up() -> bool:
                found = (await system().get("projections", "/read-models")).json()
                return all(m["lag_messages"] == 0 for m in found["read_models"])

            # given label histories through every service, and the read side caught up
            for country, expert_country in (("SI", "HR"), ("DE", "AT"), ("FR", "ES")):
                org, _ = await scenario.bronze_label(
                    system(), country, expert_country, "2025-05-03", "2025-05-20"
                )
                await scenario.listed(system(), org)
            await system().until(read_side_caught_up, "the read side to catch up")
            await system().until(lambda: consumers_caught_up(pool, settings), "the consumers")
            before = {t: await published(settings, settings.topic(t)) for t in RELAYED}
            assert all(before.values())
            rows_before = await read_model_rows(pool)
            domain_before = await domain_rows(pool)
            signed_before = await signed_checkpoints(pool)
            assert rows_before["labels.labels"] and domain_before["label_decisions.records"]

            # when the topics are lost and created again, and the runbook is followed
            await asyncio.to_thread(running.stop)
            await lost_and_created_again(base, settings)
            assert await republish(settings.database_url)
            assert sum((await forget_offsets(pool, READ_MODELS.values())).values()) > 0
            running = await asyncio.to_thread(
                supervisor.start, tmp_path / "after", ports=PORTS, env=env
            )

            # then subscribers see the same events, ids, positions and chain, in order
            for topic, events in before.items():
                assert await published(settings, settings.topic(topic), len(events)) == events
            # the domain services' consumers drop what they had handled: nothing changes
            await system().until(lambda: consumers_caught_up(pool, settings), "the consumers")
            assert await domain_rows(pool) == domain_before
            assert signed_before <= await signed_checkpoints(pool)  # none lost or re-signed
            # the read models, caught up and then rebuilt from the new topics: the same rows
            await system().until(read_side_caught_up, "the read side to catch up again")
            assert await read_model_rows(pool) == rows_before
            producer = new_producer(settings)
            await producer.start()
            try:
                for model in READ_MODELS.values():
                    await rebuild(pool, producer, settings, model, progress=lambda _: None)
            finally:
                await producer.stop()
            assert await read_model_rows(pool) == rows_before
    finally:
        await asyncio.to_thread(running.stop)
        await pool.close()
        await uninstall(base, settings)
