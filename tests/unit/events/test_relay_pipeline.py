"""The relay sends the next batch while the previous one's acks are outstanding, and still
checkpoints in order, each batch only once it and every batch before it are acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer

from clr_events.envelope import Envelope
from clr_events.outbox.relay import Relay, publish_as_stored
from clr_events.store.base import NewEvent, StoredEvent
from clr_events.store.memory import InMemoryEventStore

pytestmark = pytest.mark.unit


class Batch:
    def __init__(self) -> None:
        self.records: list[dict[str, bytes]] = []

    def append(
        self, *, key: bytes, value: bytes, timestamp: None, headers: list[tuple[str, bytes]]
    ) -> object:
        self.records.append(dict(headers))
        return object()


class HeldAcks:
    """A producer (one partition) whose batches the test acknowledges, or fails, one by one."""

    def __init__(self) -> None:
        self.sent: list[dict[str, bytes]] = []
        self.acks: list[asyncio.Future[None]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.sent += batch.records
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]

    def ack(self, *indexes: int) -> None:
        """Acknowledge the batches at these indexes."""
        for index in indexes:
            self.acks[index].set_result(None)


class Checkpoints:
    def __init__(self) -> None:
        self.saved: list[tuple[int, int]] = []
        self.subjects: dict[str, int] | None = None

    async def load(self) -> tuple[int, int | None]:
        return self.saved[-1] if self.saved else (0, 0)

    async def save(
        self, position: int, published: int, versions: Mapping[str, int] | None = None
    ) -> None:
        self.saved.append((position, published))
        if versions:
            self.subjects = {**(self.subjects or {}), **versions}

    async def versions(self, subjects: Iterable[str]) -> dict[str, int]:
        known = self.subjects or {}
        return {s: known[s] for s in subjects if s in known}

    async def counted(self) -> bool:
        return self.subjects is not None


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def relay_over(events: int) -> tuple[Relay, HeldAcks, Checkpoints]:
    store = InMemoryEventStore()
    for i in range(events):
        await store.append(f"org-{i % 2}", None, [NewEvent("t.Happened.v1", {"i": i})])
    producer, checkpoints = HeldAcks(), Checkpoints()
    relay = Relay(
        store,
        checkpoints,
        cast(AIOKafkaProducer, producer),
        "topic",
        publish_as_stored("/test"),
        batch_size=2,
    )
    return relay, producer, checkpoints


async def test_the_next_batch_goes_out_while_the_first_waits_for_its_acks() -> None:
    relay, producer, checkpoints = await relay_over(5)
    publishing = asyncio.create_task(relay.publish_available())
    await settle()

    assert len(producer.sent) == 4  # two batches in flight, not three
    assert checkpoints.saved == []

    producer.ack(1)  # the second batch is acknowledged first
    await settle()
    assert checkpoints.saved == []  # its checkpoint waits for the first batch's

    producer.ack(0)
    await settle()
    assert checkpoints.saved == [(2, 2), (4, 4)]
    assert len(producer.sent) == 5

    producer.ack(2)
    assert await publishing == 5
    assert checkpoints.saved[-1] == (5, 5)
    assert (relay.position, relay.published) == (5, 5)
    chain = [(h["ce_globalposition"], h["ce_prevposition"]) for h in producer.sent]
    assert chain == [(b"1", b"0"), (b"2", b"1"), (b"3", b"2"), (b"4", b"3"), (b"5", b"4")]


async def test_a_failed_ack_leaves_the_checkpoint_and_the_next_run_sends_again() -> None:
    relay, producer, checkpoints = await relay_over(4)
    publishing = asyncio.create_task(relay.publish_available())
    await settle()
    producer.ack(1)
    producer.acks[0].set_exception(RuntimeError("broker away"))

    with pytest.raises(RuntimeError, match="broker away"):
        await publishing
    assert checkpoints.saved == []
    assert (relay.position, relay.published) == (0, 0)

    first_ids = [h["ce_id"] for h in producer.sent]
    again = asyncio.create_task(relay.publish_available())
    while not again.done():
        await settle()
        producer.ack(*(i for i, ack in enumerate(producer.acks) if not ack.done()))
    assert await again == 4
    resent: list[Any] = [h["ce_id"] for h in producer.sent[4:]]
    assert resent == first_ids  # the same event ids: the repeat is recognisable
    assert producer.sent[4]["ce_prevposition"] == b"0"  # the chain restarts from the checkpoint
    assert checkpoints.saved == [(2, 2), (4, 4)]
    # the repeats carry the numbers the first sends did
    first = [h["ce_publicversion"] for h in producer.sent[:4]]
    assert [h["ce_publicversion"] for h in producer.sent[4:]] == first == [b"1", b"1", b"2", b"2"]


def _private_odd(stored: StoredEvent) -> Envelope | None:
    if stored.data["i"] % 3 == 1:
        return None  # a private event: never published
    return publish_as_stored("/test")(stored)


async def test_public_versions_count_published_events_only_and_survive_a_restart() -> None:
    store = InMemoryEventStore()
    for i in range(12):
        await store.append(f"org-{i % 2}", None, [NewEvent("t.Happened.v1", {"i": i})])
    checkpoints = Checkpoints()
    producer = HeldAcks()

    def relay() -> Relay:
        return Relay(
            store,
            checkpoints,
            cast(AIOKafkaProducer, producer),
            "topic",
            _private_odd,
            batch_size=3,
        )

    first = asyncio.create_task(relay().publish_available())
    while not first.done():
        await settle()
        producer.ack(*(i for i, ack in enumerate(producer.acks) if not ack.done()))
    await first
    # a new relay (a restart) from the checkpoint, over more events
    for i in range(12, 18):
        await store.append(f"org-{i % 2}", None, [NewEvent("t.Happened.v1", {"i": i})])
    again = relay()
    running = asyncio.create_task(again.run(stop := asyncio.Event()))
    while again.position < 18:
        await settle()
        producer.ack(*(i for i, ack in enumerate(producer.acks) if not ack.done()))
    stop.set()
    await running
    per_subject: dict[bytes, list[int]] = {}
    for headers in producer.sent:
        per_subject.setdefault(headers["ce_subject"], []).append(int(headers["ce_publicversion"]))
    for subject, versions in per_subject.items():
        assert versions == list(range(1, len(versions) + 1)), subject
    org0 = [int(h["ce_streamversion"]) for h in producer.sent if h["ce_subject"] == b"org-0"]
    assert org0 != list(range(1, len(org0) + 1))  # the store's versions have gaps
    assert sum(len(v) for v in per_subject.values()) == 12  # 18 events, 6 private


class LostListener(InMemoryEventStore):
    """A store whose wait for new events fails at once, as LISTEN on a lost connection."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[Any]:
        self.reads += 1
        return await super().read_all(after_position, limit)

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        raise ConnectionError("the LISTEN connection is gone")


async def test_a_failing_wait_backs_off_instead_of_spinning_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, stop = LostListener(), asyncio.Event()
    relay = Relay(
        store,
        Checkpoints(),
        cast(AIOKafkaProducer, HeldAcks()),
        "t",
        publish_as_stored("/test"),
        idle_wait=0.01,
    )
    running = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(1.2)
    stop.set()
    await asyncio.wait_for(running, 5)
    # backoff 0.5 s (with jitter), then 1 s: a handful of reads, not thousands
    assert store.reads <= 5
    warnings = [r for r in caplog.records if "waiting for new events failed" in r.message]
    assert len(warnings) == 1


async def test_a_woken_relay_lingers_and_sends_the_commits_right_behind_the_first_together() -> (
    None
):
    store, producer, stop = InMemoryEventStore(), HeldAcks(), asyncio.Event()
    relay = Relay(
        store,
        Checkpoints(),
        cast(AIOKafkaProducer, producer),
        "topic",
        publish_as_stored("/test"),
        linger=0.5,
    )
    running = asyncio.create_task(relay.run(stop))
    await settle()
    for i in range(3):  # a steady stream: the relay wakes on the first commit
        await store.append(f"org-{i}", None, [NewEvent("t.Happened.v1", {"i": i})])
        await asyncio.sleep(0.01)
    for _ in range(100):
        if producer.acks:
            break
        await asyncio.sleep(0.01)
    producer.ack(0)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert len(producer.sent) == 3 and len(producer.acks) == 1  # one batch, not three


async def test_a_checkpoint_from_before_public_versions_counts_them_in_the_store_once() -> None:
    store = InMemoryEventStore()
    for i in range(6):
        await store.append(f"org-{i % 2}", None, [NewEvent("t.Happened.v1", {"i": i})])
    checkpoints, producer = Checkpoints(), HeldAcks()
    checkpoints.saved.append((4, 4))  # published up to 4, no versions recorded
    relay = Relay(
        store,
        checkpoints,
        cast(AIOKafkaProducer, producer),
        "topic",
        publish_as_stored("/test"),
        batch_size=10,
    )
    running = asyncio.create_task(relay.run(stop := asyncio.Event()))
    while relay.position < 6:
        await settle()
        producer.ack(*(i for i, ack in enumerate(producer.acks) if not ack.done()))
    stop.set()
    await running
    assert [(h["ce_subject"], h["ce_publicversion"]) for h in producer.sent] == [
        (b"org-0", b"3"),
        (b"org-1", b"3"),
    ]
    assert checkpoints.subjects == {"org-0": 3, "org-1": 3}
