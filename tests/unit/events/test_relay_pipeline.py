"""The relay sends the next batch while the previous one's acks are outstanding, and still
checkpoints in order, each batch only once it and every batch before it are acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer

from clr_events.outbox.relay import Relay, publish_as_stored
from clr_events.store.base import NewEvent
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

    async def load(self) -> tuple[int, int | None]:
        return self.saved[-1] if self.saved else (0, 0)

    async def save(self, position: int, published: int) -> None:
        self.saved.append((position, published))


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
