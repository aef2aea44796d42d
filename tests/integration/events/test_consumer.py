"""The consumer runner on a real broker and database: effectively once, dead letters."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from clr_events.consumers import runner as runner_module
from clr_events.consumers.dlq import ReplayTarget, replay
from clr_events.consumers.runner import ConsumerRunner, Handler, TransientError, redeliverer
from clr_events.envelope import Envelope
from clr_events.kafka.topics import TopicSpec, ensure_topics
from clr_events.pg import Connection, Pool
from clr_events.settings import ConnectionSettings
from tests.conftest import TopicFactory
from tests.integration.events.kafka_helpers import make_envelope, produce, read_topic


class CrashError(Exception):
    """The process dies here."""


class CrashBeforeOffsetCommit(ConsumerRunner):
    """Dies after its database commits and before its first Kafka offset commit."""

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        raise CrashError


@pytest.fixture
async def effects(pool: Pool, schema: str) -> AsyncIterator[str]:
    table = f"{schema}.effects"
    await pool.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    await pool.execute(f"CREATE TABLE {table} (event_id text NOT NULL, n integer)")
    yield table


def recording_handler(table: str) -> Handler:
    async def handle(conn: Connection, envelope: Envelope) -> None:
        if envelope.data.get("refuse"):
            raise ValueError("a domain rule refuses this event")
        await conn.execute(
            f"INSERT INTO {table} VALUES ($1, $2)", envelope.id, envelope.data.get("n")
        )

    return handle


async def run_until(
    runner: ConsumerRunner, done: Callable[[], Awaitable[bool]], timeout: float = 30
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await done():
            if task.done():
                task.result()  # surface the runner's error
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def counter(pool: Pool, table: str, at_least: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return int(await pool.fetchval(f"SELECT count(*) FROM {table}")) >= at_least

    return check


def runner_of(
    pool: Pool,
    schema: str,
    kafka_bootstrap: str,
    topic: str,
    handler: Handler,
    group: str | None = None,
    runner: type[ConsumerRunner] = ConsumerRunner,
    *,
    max_batch: int = 100,
    backoff_initial: float = 0.1,
) -> ConsumerRunner:
    """A runner of ``group`` (a new one if None) on ``topic`` into ``handler``."""
    return runner(
        pool,
        group=group or f"g{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=handler,
        kafka=ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
        schema=schema,
        max_batch=max_batch,
        backoff_initial=backoff_initial,
    )


async def test_a_crash_between_database_commit_and_offset_commit_repeats_no_effect(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("consumer")
    group = f"g{uuid.uuid4().hex[:8]}"
    await produce(kafka_bootstrap, topic, [make_envelope(n=n) for n in range(10)])
    handler = recording_handler(effects)
    crashing = runner_of(
        pool, schema, kafka_bootstrap, topic, handler, group, runner=CrashBeforeOffsetCommit
    )
    with pytest.raises(CrashError):
        await crashing.run()
    assert crashing.processed >= 1  # its effects are committed, Kafka's offset is not

    await produce(kafka_bootstrap, topic, [make_envelope(n=10)])
    again = runner_of(pool, schema, kafka_bootstrap, topic, handler, group)
    await run_until(again, counter(pool, effects, 11))
    await asyncio.sleep(0.5)  # room for a wrong second delivery to show up
    rows = await pool.fetch(f"SELECT n, count(*) AS c FROM {effects} GROUP BY n ORDER BY n")
    assert [(r["n"], r["c"]) for r in rows] == [(n, 1) for n in range(11)]


async def test_a_republished_event_takes_effect_once(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("consumer")
    repeated = make_envelope(n=1)
    await produce(
        kafka_bootstrap, topic, [repeated, make_envelope(n=2), repeated, make_envelope(n=3)]
    )
    runner = runner_of(pool, schema, kafka_bootstrap, topic, recording_handler(effects))
    await run_until(runner, counter(pool, effects, 3))
    await asyncio.sleep(0.5)
    assert sorted(r["n"] for r in await pool.fetch(f"SELECT n FROM {effects}")) == [1, 2, 3]
    assert runner.processed == 4


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_next_one_is_processed(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("consumer")
    group = f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap), [TopicSpec(f"{group}.dlq")]
    )
    refused = make_envelope(refuse=True)
    await produce(
        kafka_bootstrap,
        topic,
        [
            make_envelope(n=1),
            b"this is not a CloudEvent",
            make_envelope(n=2),
            refused,
            make_envelope(n=3),
        ],
    )
    runner = runner_of(
        pool, schema, kafka_bootstrap, topic, recording_handler(effects), group=group
    )
    await run_until(runner, counter(pool, effects, 3))
    assert sorted(r["n"] for r in await pool.fetch(f"SELECT n FROM {effects}")) == [1, 2, 3]
    assert runner.dead_lettered == 2

    letters = await read_topic(kafka_bootstrap, f"{group}.dlq", expected=2)
    headers = [dict(letter.headers) for letter in letters]
    assert [h["dlq_error_type"] for h in headers] == [b"EnvelopeError", b"ValueError"]
    assert letters[0].value == b"this is not a CloudEvent"
    assert headers[1]["ce_id"] == refused.id.encode()
    assert headers[1]["dlq_offset"] == b"3"
    assert b"domain rule" in headers[1]["dlq_error"]


async def test_messages_fetched_together_commit_together_and_a_bad_one_costs_a_second_pass(
    pool: Pool, schema: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("consumer")
    group = f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap), [TopicSpec(f"{group}.dlq")]
    )
    table = f"{schema}.transactions"
    await pool.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    await pool.execute(f"CREATE TABLE {table} (n integer, xid bigint)")

    async def handle(conn: Connection, envelope: Envelope) -> None:
        if envelope.data.get("refuse"):
            raise ValueError("a domain rule refuses this event")
        await conn.execute(
            f"INSERT INTO {table} VALUES ($1, txid_current())", envelope.data.get("n")
        )

    good = [make_envelope(n=n) for n in range(20)]
    await produce(kafka_bootstrap, topic, [*good[:10], make_envelope(refuse=True), *good[10:]])
    runner = runner_of(pool, schema, kafka_bootstrap, topic, handle, group=group, max_batch=8)
    await run_until(runner, counter(pool, table, 20))
    await asyncio.sleep(0.5)
    rows = await pool.fetch(f"SELECT n, xid FROM {table} ORDER BY n")
    assert [r["n"] for r in rows] == list(range(20))  # each once: a failed batch left nothing
    assert runner.dead_lettered == 1
    transactions = {r["xid"] for r in rows}
    # at most 8 to a transaction; the batch with the refusal in it went one by one
    assert len(transactions) < 20
    assert max(sum(r["xid"] == x for r in rows) for x in transactions) <= 8


async def test_a_transient_failure_is_retried_and_takes_effect_once(
    pool: Pool,
    schema: str,
    effects: str,
    kafka_bootstrap: str,
    new_topic: TopicFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "clr_events.consumers.runner")
    topic = await new_topic("consumer")
    failures = {"left": 4}
    record = recording_handler(effects)

    async def flaky(conn: Connection, envelope: Envelope) -> None:
        await record(conn, envelope)  # written, then rolled back by the failure
        if failures["left"]:
            failures["left"] -= 1
            raise TransientError("the database is briefly away")

    await produce(kafka_bootstrap, topic, [make_envelope(n=1)])
    runner = runner_of(pool, schema, kafka_bootstrap, topic, flaky, backoff_initial=0.01)
    await run_until(runner, counter(pool, effects, 1))
    assert failures["left"] == 0 and runner.dead_lettered == 0
    assert [r["n"] for r in await pool.fetch(f"SELECT n FROM {effects}")] == [1]
    # one warning for the outage, one line when it ended; not one per retry
    logged = [r.getMessage() for r in caplog.records if r.name == "clr_events.consumers.runner"]
    assert len(logged) == 2, logged
    assert "the database is briefly away" in logged[0]
    assert "recovered" in logged[1] and "4 failed attempts" in logged[1]


async def test_values_postgresql_refuses_are_dead_lettered_and_the_next_one_applied(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("consumer")
    group = f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap), [TopicSpec(f"{group}.dlq")]
    )
    poison = [
        make_envelope(n=2**40),  # too large for the integer column
        make_envelope(n="seven"),  # a string where a number belongs
    ]
    await produce(
        kafka_bootstrap, topic, [poison[0], make_envelope(n=1), poison[1], make_envelope(n=2)]
    )
    runner = runner_of(
        pool, schema, kafka_bootstrap, topic, recording_handler(effects), group=group
    )
    await run_until(runner, counter(pool, effects, 2))
    assert sorted(r["n"] for r in await pool.fetch(f"SELECT n FROM {effects}")) == [1, 2]

    letters = await read_topic(kafka_bootstrap, f"{group}.dlq", expected=2)
    headers = [dict(letter.headers) for letter in letters]
    assert [h["ce_id"] for h in headers] == [e.id.encode() for e in poison]
    assert [h["dlq_error_type"] for h in headers] == [b"DataError", b"DataError"]
    assert [h["dlq_offset"] for h in headers] == [b"0", b"2"]
    assert {h["dlq_topic"] for h in headers} == {topic.encode()}
    assert {h["dlq_group"] for h in headers} == {group.encode()}


async def test_a_dead_letter_replayed_after_the_fix_takes_effect_once(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    # given a record the handler refused, on the group's dead-letter topic
    topic = await new_topic("consumer")
    group = f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap), [TopicSpec(f"{group}.dlq")]
    )
    refused = make_envelope(n=7, refuse=True)
    await produce(kafka_bootstrap, topic, [refused, make_envelope(n=1)])
    runner = runner_of(pool, schema, kafka_bootstrap, topic, recording_handler(effects), group)
    await run_until(runner, counter(pool, effects, 1))
    assert runner.dead_lettered == 1

    # when the handler is fixed, and a dry run lists it without applying it
    fixed = recording_handler_accepting_all(effects)
    target = ReplayTarget(group, schema, redeliverer(fixed, group, schema))
    said: list[str] = []
    dry = await replay(
        pool,
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
        target,
        dry_run=True,
        report=said.append,
    )
    assert dry.replayed == [0] and not dry.failed and "would replay" in said[0]
    assert await pool.fetchval(f"SELECT count(*) FROM {effects}") == 1

    # then the replay applies it, and a second replay finds nothing left to do
    first = await replay(
        pool,
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
        target,
        report=said.append,
    )
    second = await replay(
        pool,
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
        target,
        report=said.append,
    )
    assert (first.replayed, second.replayed, second.already) == ([0], [], [0])
    rows = await pool.fetch(f"SELECT event_id, n FROM {effects} ORDER BY n")
    assert [(r["event_id"], r["n"]) for r in rows] == [(rows[0]["event_id"], 1), (refused.id, 7)]

    # and a runner of the group started again (its checkpoint past the record) repeats nothing
    await produce(kafka_bootstrap, topic, [make_envelope(n=8)])
    again = runner_of(pool, schema, kafka_bootstrap, topic, fixed, group)
    await run_until(again, counter(pool, effects, 3))
    assert sorted(r["n"] for r in await pool.fetch(f"SELECT n FROM {effects}")) == [1, 7, 8]


async def test_a_dead_letter_still_refused_on_replay_is_left_for_a_later_run(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("consumer")
    group = f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap), [TopicSpec(f"{group}.dlq")]
    )
    await produce(kafka_bootstrap, topic, [make_envelope(n=7, refuse=True), b"not an event"])
    handler = recording_handler(effects)
    runner = runner_of(pool, schema, kafka_bootstrap, topic, handler, group=group)

    async def both_dead() -> bool:
        return runner.dead_lettered == 2

    await run_until(runner, both_dead)
    target = ReplayTarget(group, schema, redeliverer(handler, group, schema))
    result = await replay(
        pool,
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
        target,
        report=lambda _: None,
    )
    assert result.replayed == [] and sorted(result.failed) == [0, 1]
    assert "ValueError" in result.failed[0] and "EnvelopeError" in result.failed[1]
    again = await replay(
        pool,
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
        target,
        report=lambda _: None,
    )
    assert sorted(again.failed) == [0, 1] and again.already == []
    assert await pool.fetchval(f"SELECT count(*) FROM {effects}") == 0


def recording_handler_accepting_all(table: str) -> Handler:
    """The handler after the fix: it records what it refused before."""

    async def handle(conn: Connection, envelope: Envelope) -> None:
        await conn.execute(
            f"INSERT INTO {table} VALUES ($1, $2)", envelope.id, envelope.data.get("n")
        )

    return handle


async def test_a_dead_letter_too_large_for_the_dlq_goes_without_its_value_and_replays(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    # given a refused record so large that its dlq_* headers push it past the size limit
    topic = await new_topic("consumer")
    group = f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap), [TopicSpec(f"{group}.dlq")]
    )
    # about 1,048,500 bytes with its headers: under the producer's 1 MiB, and over it with
    # the dlq_* headers (some 150 bytes)
    large = make_envelope(n=9, refuse=True, pad="x" * 1_048_150)
    await produce(kafka_bootstrap, topic, [large, make_envelope(n=1)])
    runner = runner_of(pool, schema, kafka_bootstrap, topic, recording_handler(effects), group)
    await run_until(runner, counter(pool, effects, 1))

    # then its dead letter says where it was, without the value
    (letter,) = await read_topic(kafka_bootstrap, f"{group}.dlq", expected=1)
    headers = dict(letter.headers)
    assert letter.value is None and headers["dlq_value"] == b"omitted"
    assert (headers["dlq_topic"], headers["dlq_offset"]) == (topic.encode(), b"0")

    # and the replay after the fix reads the original from its topic
    fixed = recording_handler_accepting_all(effects)
    target = ReplayTarget(group, schema, redeliverer(fixed, group, schema))
    result = await replay(
        pool,
        ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
        target,
        report=lambda _: None,
    )
    assert result.replayed == [0]
    assert sorted(r["n"] for r in await pool.fetch(f"SELECT n FROM {effects}")) == [1, 9]


class CountingCommits(ConsumerRunner):
    """Records each Kafka offset commit."""

    commits: list[dict[TopicPartition, int]]

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        await super()._commit_offsets(offsets)


async def test_kafka_offsets_go_at_most_once_a_second_for_every_partition_and_at_the_end(
    pool: Pool, schema: str, effects: str, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    # given 120 events over 3 partitions, arriving in 6 bursts over about a second
    topic = await new_topic("consumer", partitions=3)
    group = f"g{uuid.uuid4().hex[:8]}"
    runner = runner_of(
        pool, schema, kafka_bootstrap, topic, recording_handler(effects), group, CountingCommits
    )
    assert isinstance(runner, CountingCommits)
    runner.commits = []

    async def bursts() -> None:
        for burst in range(6):
            await produce(
                kafka_bootstrap,
                topic,
                [make_envelope(subject=f"org-{n}", n=burst * 20 + n) for n in range(20)],
            )
            await asyncio.sleep(0.2)

    started = asyncio.get_running_loop().time()
    sending = asyncio.create_task(bursts())
    await run_until(runner, counter(pool, effects, 120))
    await sending
    elapsed = asyncio.get_running_loop().time() - started
    # then the runner committed Kafka offsets about once a second, not once per fetch and
    # partition, each commit naming every partition it had moved on, and once at the end
    assert len(runner.commits) <= elapsed + 2, runner.commits
    kafka = ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap)
    consumer = AIOKafkaConsumer(**kafka.kafka_options(), group_id=group)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(partitions)
        assert {tp: await consumer.committed(tp) for tp in partitions} == ends
    finally:
        await consumer.stop()


async def test_a_member_that_gives_partitions_up_with_offsets_pending_runs_on(
    pool: Pool,
    schema: str,
    effects: str,
    kafka_bootstrap: str,
    new_topic: TopicFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a member that has processed events on every partition of a 3-partition topic,
    # their Kafka offsets still pending (here until it stops)
    monkeypatch.setattr(runner_module, "OFFSET_COMMIT_SECONDS", 3600.0)
    topic = await new_topic("consumer", partitions=3)
    group = f"g{uuid.uuid4().hex[:8]}"
    handler = recording_handler(effects)
    first = runner_of(pool, schema, kafka_bootstrap, topic, handler, group)
    stop = asyncio.Event()
    running = [asyncio.create_task(first.run(stop))]

    async def events(start: int, count: int) -> None:
        await produce(
            kafka_bootstrap,
            topic,
            [make_envelope(subject=f"org-{n}", n=n) for n in range(start, start + count)],
        )

    async def seen(at_least: int, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await counter(pool, effects, at_least)():
            for task in running:
                if task.done():
                    task.result()  # a member's error fails the test here
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.05)

    try:
        await events(0, 30)
        await seen(30)
        await events(30, 30)
        await seen(60)
        # when a second member joins and takes some of its partitions over
        second = runner_of(pool, schema, kafka_bootstrap, topic, handler, group)
        running.append(asyncio.create_task(second.run(stop)))
        deadline = asyncio.get_running_loop().time() + 30
        while not (second._consumer and second._consumer.assignment()):
            assert asyncio.get_running_loop().time() < deadline, "no rebalance"
            await asyncio.sleep(0.05)
        for burst in range(6):
            await events(60 + burst * 10, 10)
            await asyncio.sleep(0.3)
        # then both run on, every event takes effect once, and both stop cleanly (the
        # first commits its pending offsets without those of partitions it gave up)
        await seen(120)
        assert not any(task.done() for task in running)
        assert first._consumer is not None and len(first._consumer.assignment()) < 3
    finally:
        stop.set()
        await asyncio.gather(*running)
    rows = await pool.fetch(f"SELECT n, count(*) AS c FROM {effects} GROUP BY n ORDER BY n")
    assert [(r["n"], r["c"]) for r in rows] == [(n, 1) for n in range(120)]
