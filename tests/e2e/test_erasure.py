"""Erasure that keeps the proof: after a person's key is destroyed their name is nowhere
in plain text (store tables, every topic read back from Kafka, read models, API
responses) and every hash chain still verifies."""

from __future__ import annotations

import secrets

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e import scenario
from tests.e2e.conftest import System


async def everything_on_kafka(system: System) -> list[bytes]:
    """Key, value and headers of every record on every topic of this installation."""
    admin = AIOKafkaAdminClient(**system.kafka_options())
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(f"{system.instance}.")]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    ]
    assert len(topics) >= 5 and partitions
    consumer = AIOKafkaConsumer(**system.kafka_options(), enable_auto_commit=False)
    await consumer.start()
    found: list[bytes] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    found.append(
                        (record.key or b"")
                        + (record.value or b"")
                        + b"".join(k.encode() + v for k, v in record.headers)
                    )
    finally:
        await consumer.stop()
    return found


async def tables_holding(system: System, text: str) -> list[str]:
    """Every table of the installation's database with a row whose text holds ``text``."""
    conn = await asyncpg.connect(system.database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        holding = []
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            if await conn.fetchval(
                f"SELECT count(*) FROM {name} r WHERE r::text LIKE $1", f"%{text}%"
            ):
                holding.append(name)
        return holding
    finally:
        await conn.close()


async def test_after_erasure_the_name_is_nowhere_and_every_chain_verifies(
    system: System,
) -> None:
    # given an expert whose name the public expert list shows
    name = f"Zoë Erasable {secrets.token_hex(6)}"
    person = await scenario.expert(system, "MT", ["benchmarking_expert"], "2024-01-02", name=name)
    person_page = await system.get("training_certification", f"/people/{person}")
    assert person_page.json()["name"] == name  # opened at the owner's edge

    async def listed(erased: bool) -> list[dict[str, object]] | None:
        response = await system.get("projections", "/api/experts?country=MT")
        rows = [r for r in response.json()["items"] if r["person_id"] == person]
        return rows if rows and rows[0]["erased"] is erased else None

    (row,) = await system.until(lambda: listed(erased=False), "the expert in the public list")
    assert row["name"] == name
    assert name in (await system.get("projections", "/experts?country=MT")).text
    # never in plain text anywhere but the responses that show it (the scans do find the
    # person's id)
    assert '"training_certification"."event_store"' in await tables_holding(system, person)
    assert [r for r in await everything_on_kafka(system) if person.encode() in r]
    assert await tables_holding(system, name) == []
    assert not [r for r in await everything_on_kafka(system) if name.encode() in r]

    # when a registry admin erases the person's personal data
    path = f"/people/{person}/erasure"
    refused = await system.post("training_certification", path, {}, "training_admin")
    assert refused.status_code == 403
    erased = await system.post("training_certification", path, {}, "registry_admin")
    assert erased.status_code == 201, erased.text
    assert erased.json()["events"] == ["PersonalDataErased"]
    again = await system.post("training_certification", path, {}, "registry_admin")
    assert again.status_code == 200 and again.json()["events"] == []

    # then the erasure is an event on the topic, which the read model applies
    (row,) = await system.until(lambda: listed(erased=True), "the erasure in the public list")
    assert row["name"] is None
    (published,) = [
        e
        for e in await system.events(
            "training_certification.events", f"person:{person}", at_least=6
        )
        if e.type == "training_certification.PersonalDataErased.v1"
    ]
    assert published.data["fields"] == ["name"] and published.causationid

    # and the name is in no API response, no table and on no topic
    responses = [
        await system.get("training_certification", f"/people/{person}"),
        await system.get("training_certification", "/experts?country=MT"),
        await system.get("training_certification", f"/names?person_id={person}"),
        await system.get("projections", "/api/experts?country=MT"),
        await system.get("projections", "/experts?country=MT"),
    ]
    assert all(r.status_code == 200 for r in responses)
    assert not [r.url for r in responses if name in r.text]
    assert responses[0].json()["name"] is None and responses[0].json()["erased_on"]
    assert responses[2].json()["items"] == [{"person_id": person, "name": None}]
    assert await tables_holding(system, name) == []
    assert not [r for r in await everything_on_kafka(system) if name.encode() in r]

    # and the sealed name is still in the store, under a key that no longer exists, while
    # the chain that hashed it verifies
    conn = await asyncpg.connect(system.database_url)
    try:
        sealed = await conn.fetchval(
            "SELECT data->>'name' FROM training_certification.event_store"
            " WHERE stream_id = $1 AND type = 'PersonRegistered'",
            f"person:{person}",
        )
        key = await conn.fetchrow(
            "SELECT key, erased_at FROM training_certification.subject_keys WHERE subject = $1",
            f"person:{person}",
        )
    finally:
        await conn.close()
    assert str(sealed).startswith("sealed:v1:")
    assert key is not None and key["key"] is None and key["erased_at"] is not None
    for service in ("training_certification", "label_decisions"):
        verified = await system.get(service, "/verification", "auditor")
        assert verified.status_code == 200, verified.text
        assert verified.json()["ok"] is True, verified.json()
