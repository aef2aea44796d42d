"""The relay on a real broker: killed mid-stream, restarted, nothing lost, order kept."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import pytest

from clr_events.codec import KafkaRecord, from_kafka
from clr_events.kafka.tail import last_positions
from clr_events.outbox.relay import (
    PostgresRelayCheckpoint,
    Relay,
    TopicAheadError,
    publish_as_stored,
)
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from clr_events.store.base import ANY, NewEvent, StoredEvent
from clr_events.store.postgres import PostgresEventStore
from tests.conftest import TopicFactory
from tests.integration.events.kafka_helpers import new_producer, produce, read_topic
from tests.integration.events.stores import cut_back

STREAMS = 25


async def start_relay(
    database_url: str, kafka: str, schema: str, topic: str
) -> asyncio.subprocess.Process:
    env = {**os.environ, "CLR_DATABASE_URL": database_url, "CLR_KAFKA_BOOTSTRAP_SERVERS": kafka}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clr_events.outbox.relay",
        "--schema",
        schema,
        "--topic",
        topic,
        "--name",
        "test-relay",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def relayed_position(pool: Pool, schema: str) -> int:
    exists = await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.relay_checkpoint")
    if not exists:
        return 0
    return int(
        await pool.fetchval(f"SELECT coalesce(max(position), 0) FROM {schema}.relay_checkpoint")
        or 0
    )


async def wait_until(condition: object, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_relay_killed_mid_stream_loses_nothing_and_keeps_aggregate_order(
    database_url: str, kafka_bootstrap: str, pool: Pool, schema: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("relay", partitions=3)
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()

    async def write(batches: int) -> None:
        for b in range(batches):
            await asyncio.gather(
                *(
                    store.append(f"org-{s}", ANY, [NewEvent("tests.Happened.v1", {"b": b})])
                    for s in range(STREAMS)
                )
            )
            await asyncio.sleep(0.01)  # a steady stream, still flowing when the relay dies

    relay = await start_relay(database_url, kafka_bootstrap, schema, topic)
    writer = asyncio.create_task(write(150))
    await wait_until(lambda: _above(pool, schema, 200))
    relay.send_signal(signal.SIGKILL)  # a crash: no clean shutdown, no last checkpoint
    await relay.wait()
    assert not writer.done(), "the relay must die while events are still being written"
    killed_at = await relayed_position(pool, schema)
    await writer
    await store.close()  # release its writer connection; reads below go through the pool
    head = await store.head_position()
    assert killed_at < head, "the relay must die with events still to publish"

    relay = await start_relay(database_url, kafka_bootstrap, schema, topic)
    try:
        await wait_until(lambda: _at_least(pool, schema, head))
    finally:
        relay.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(relay.wait(), 30) == 0  # clean shutdown on SIGTERM

    records = await read_topic(kafka_bootstrap, topic, expected=head)
    envelopes = [from_kafka(r.key, r.value, r.headers) for r in records]
    first_seen: dict[str, list[int]] = {}
    for envelope in envelopes:
        first_seen.setdefault(envelope.subject, []).append(envelope.streamversion)
        assert envelope.publicversion == len(first_seen[envelope.subject])
    assert len({e.id for e in envelopes}) == len(envelopes) == head  # each once: none repeated
    assert {e.globalposition for e in envelopes} == set(range(1, head + 1))
    # every event names the one published before it: the chain is whole across partitions
    chain = {e.globalposition: e.prevposition for e in envelopes}
    assert chain == {position: position - 1 for position in range(1, head + 1)}
    for subject, versions in first_seen.items():
        assert versions == list(range(1, len(versions) + 1)), subject
    assert all(r.key == e.subject.encode() for r, e in zip(records, envelopes, strict=True))


async def _above(pool: Pool, schema: str, position: int) -> bool:
    return await relayed_position(pool, schema) > position


async def _at_least(pool: Pool, schema: str, position: int) -> bool:
    return await relayed_position(pool, schema) >= position


async def test_the_relay_puts_each_key_on_the_partition_a_plain_send_would(
    kafka_bootstrap: str, pool: Pool, schema: str, new_topic: TopicFactory
) -> None:
    # the relay fills producer batches itself: same partitioner, same partitions
    relayed, sent = await new_topic("relayed", partitions=5), await new_topic("sent", partitions=5)
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    keys = [f"org-{k}" for k in range(40)]
    for key in keys:
        await store.append(key, ANY, [NewEvent("tests.Happened.v1", {"k": key})])
    await PostgresRelayCheckpoint(pool, schema, "partitions").migrate()
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = Relay(
            store,
            PostgresRelayCheckpoint(pool, schema, "partitions"),
            producer,
            relayed,
            publish_as_stored("/tests"),
            batch_size=7,
        )
        assert await relay.publish_available() == len(keys)
        for key in keys:
            await producer.send_and_wait(sent, b"x", key=key.encode())
    finally:
        await producer.stop()
        await store.close()
    by_relay = {r.key: r.partition for r in await read_topic(kafka_bootstrap, relayed, len(keys))}
    by_send = {r.key: r.partition for r in await read_topic(kafka_bootstrap, sent, len(keys))}
    assert by_relay == by_send
    assert len(set(by_send.values())) > 1


async def happened(store: PostgresEventStore, numbers: range) -> None:
    """An event per number, over seven streams (so over several partitions)."""
    for n in numbers:
        await store.append(f"org-{n % 7}", ANY, [NewEvent("tests.Happened.v1", {"n": n})])


async def relay_resumed_below_the_topic(
    kafka_bootstrap: str,
    pool: Pool,
    schema: str,
    topic: str,
    before_each: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """A relay publishes 30 events; its checkpoint is set back to 11 (as a relay killed
    after the broker acknowledged, before the checkpoint, left it), 10 more are stored, and
    another relay resumes: it sends only those 10. ``before_each`` runs before each relay
    starts."""
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    await happened(store, range(30))
    checkpoint = PostgresRelayCheckpoint(pool, schema, "resumed")
    await checkpoint.migrate()
    settings = ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap)
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:

        async def relay() -> Relay:
            if before_each is not None:
                await before_each()
            started = Relay(
                store,
                checkpoint,
                producer,
                topic,
                publish_as_stored("/tests"),
                batch_size=4,
                tail=functools.partial(last_positions, settings, topic),
            )
            await started.resume()
            return started

        assert await (await relay()).publish_available() == 30
        await checkpoint.save(11, 11)  # the last checkpoint the killed relay recorded
        await happened(store, range(30, 40))
        assert await (await relay()).publish_available() == 29
    finally:
        await producer.stop()
        await store.close()


async def test_a_relay_that_resumes_below_what_is_on_the_topic_sends_nothing_twice(
    kafka_bootstrap: str, pool: Pool, schema: str, new_topic: TopicFactory
) -> None:
    # killed after the broker acknowledged, before the checkpoint: the checkpoint lags
    topic = await new_topic("resumed", partitions=3)
    await relay_resumed_below_the_topic(kafka_bootstrap, pool, schema, topic)
    envelopes = [
        from_kafka(r.key, r.value, r.headers)
        for r in await read_topic(kafka_bootstrap, topic, expected=41, timeout=5.0)
    ]
    assert sorted(e.globalposition for e in envelopes) == list(range(1, 41))
    chain = {e.globalposition: e.prevposition for e in envelopes}
    assert chain == {position: position - 1 for position in range(1, 41)}


async def test_records_of_another_source_on_the_topic_neither_stop_nor_shorten_a_relay(
    kafka_bootstrap: str, pool: Pool, schema: str, new_topic: TopicFactory
) -> None:
    # given records the relay never sent on every partition, before and after its own: one
    # from elsewhere with a position far ahead, one that is no CloudEvent at all
    topic = await new_topic("foreign", partitions=3)
    keys = [f"org-{n}".encode() for n in range(7)]
    elsewhere = [("ce_source", b"/elsewhere"), ("ce_globalposition", b"999")]

    async def foreign() -> None:
        records = [
            record
            for key in keys
            for record in (
                KafkaRecord(key, b"{}", elsewhere),
                KafkaRecord(key, b"not a cloud event", []),
            )
        ]
        await produce(kafka_bootstrap, topic, records)

    # when a relay starts on them (it takes none of them for its own), and another resumes
    # below what the first sent, with more of them on top
    await relay_resumed_below_the_topic(kafka_bootstrap, pool, schema, topic, foreign)
    # then every event is on the topic once, nothing left out, nothing sent twice
    records = await read_topic(kafka_bootstrap, topic, expected=40 + 4 * len(keys), timeout=5.0)
    ours = [r for r in records if dict(r.headers).get("ce_source") == b"/tests"]
    positions = sorted(from_kafka(r.key, r.value, r.headers).globalposition for r in ours)
    assert positions == list(range(1, 41))


async def test_a_relay_whose_store_is_behind_its_topic_publishes_nothing_and_says_why(
    kafka_bootstrap: str, pool: Pool, schema: str, new_topic: TopicFactory
) -> None:
    # given 10 events published, then the store restored from a backup taken at position 5
    # (its relay's checkpoint with it), and 3 new events stored at positions 6 to 8
    topic = await new_topic("behind", partitions=3)
    settings = ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap)
    checkpoint = PostgresRelayCheckpoint(pool, schema, "behind")
    producer = new_producer(kafka_bootstrap)
    await producer.start()

    def relay(store: PostgresEventStore) -> Relay:
        tail = functools.partial(last_positions, settings, topic)
        return Relay(store, checkpoint, producer, topic, publish_as_stored("/tests"), tail=tail)

    try:
        store = PostgresEventStore(pool, schema=schema)
        await store.migrate()
        await checkpoint.migrate()
        await happened(store, range(10))
        first = relay(store)
        await first.resume()
        assert await first.publish_available() == 10
        await store.close()
        await cut_back(pool, schema, 5)
        await checkpoint.save(5, 5)
        restored = PostgresEventStore(pool, schema=schema)
        await happened(restored, range(10, 13))
        assert await restored.head_position() == 8

        # when its relay resumes, then it refuses, naming the event the store does not have
        resumed = relay(restored)
        await resumed.resume()
        with pytest.raises(TopicAheadError, match="behind its topic"):
            await resumed.publish_available()
        await restored.close()
    finally:
        await producer.stop()
    # and the topic has the first 10 events only, each once: none of the new ones under a
    # position subscribers saw with another event, none skipped as if sent
    records = await read_topic(kafka_bootstrap, topic, expected=11, timeout=3.0)
    positions = sorted(from_kafka(r.key, r.value, r.headers).globalposition for r in records)
    assert positions == list(range(1, 11))


async def test_a_steady_stream_goes_out_several_events_per_read_and_each_once(
    kafka_bootstrap: str, pool: Pool, schema: str, new_topic: TopicFactory
) -> None:
    # given a relay that lingers 50 ms, and a steady stream of 100 events, a few ms apart
    topic = await new_topic("steady", partitions=3)
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    checkpoint = PostgresRelayCheckpoint(pool, schema, "steady")
    await checkpoint.migrate()
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    relay = Relay(store, checkpoint, producer, topic, publish_as_stored("/tests"), linger=0.05)
    reads: list[int] = []
    read_all = store.read_all

    async def counted(after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        events = await read_all(after_position, limit)
        reads.append(len(events))
        return events

    store.read_all = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        for n in range(100):
            await happened(store, range(n, n + 1))
            await asyncio.sleep(0.001)
        await wait_until(lambda: _at_least(pool, schema, 100), timeout=30)
    finally:
        stop.set()
        await running
        await producer.stop()
        await store.close()
    # then the reads that found events found several each (without the linger inside a
    # stream, the next read followed each send at once and found one or two: 20 to 40
    # reads of 3 events on average), and every event is on the topic once
    found = [n for n in reads if n]
    assert sum(found) == 100 and sum(found) / len(found) >= 5, found
    records = await read_topic(kafka_bootstrap, topic, expected=101, timeout=3.0)
    envelopes = [from_kafka(r.key, r.value, r.headers) for r in records]
    assert sorted(e.globalposition for e in envelopes) == list(range(1, 101))
