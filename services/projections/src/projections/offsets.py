"""Where Kafka is and where the read models are: end offsets, lag, and the group's hint.

Kafka's committed offsets of the ``projections`` group are only a hint. Before the live
agents start, the hint is set from the read models' own checkpoints (the smallest next
offset per partition over the read models that read it), so a read model that is new or
was rebuilt elsewhere is fed from where it really is; a message below another read
model's checkpoint is skipped by that read model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from projections.core import ReadModel, active_schema, checkpoints

log = logging.getLogger(__name__)
T = TypeVar("T")


class Offsets:
    """Asks the broker for partitions (admin client) and end offsets (group-less consumer)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._admin = AIOKafkaAdminClient(**settings.kafka_options())
        self._consumer = AIOKafkaConsumer(**settings.kafka_options(), enable_auto_commit=False)

    async def start(self) -> None:
        """Connect."""
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()
        await self._admin.close()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of the topics (a topic that does not exist has none)."""
        described = await self._admin.describe_topics(list(topics))
        return [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            if topic["error_code"] == 0
            for partition in sorted(topic["partitions"], key=lambda p: p["partition"])
        ]

    async def end_offsets(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """The next offset to be written, per partition."""
        tps = await self.partitions(topics)
        ends = await self._consumer.end_offsets(tps) if tps else {}
        return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}


class Recent(Generic[T]):
    """A read's result, shared by every caller within ``ttl`` seconds of it.

    Lag is read on public requests (``/read-models``, ``/metrics``): each read asks the
    broker for every partition's end offset. Callers that come while a read is running
    wait for it and share it; a failed read is not kept.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._kept: tuple[float, T] | None = None

    async def get(self, read: Callable[[], Awaitable[T]]) -> T:
        """The kept result if recent enough, else ``read()``'s (then kept)."""
        async with self._lock:
            if self._kept is not None and self._clock() - self._kept[0] < self._ttl:
                return self._kept[1]
            value = await read()
            self._kept = (self._clock(), value)
            return value


def remaining(ends: dict[tuple[str, int], int], done: dict[tuple[str, int], int]) -> int:
    """Messages not yet applied: end offsets minus the checkpoint's next offsets."""
    return sum(max(0, end - (done.get(tp, -1) + 1)) for tp, end in ends.items())


def topics_of(model: ReadModel, settings: ConnectionSettings) -> list[str]:
    """The read model's topics in this installation (``CLR_INSTANCE``)."""
    return [settings.topic(name) for name in model.topics]


async def lag(pool: Pool, offsets: Offsets, model: ReadModel, settings: ConnectionSettings) -> int:
    """How many messages the active generation of a read model has still to apply."""
    async with pool.acquire() as conn:
        done = await checkpoints(conn, await active_schema(conn, model, lock=False))
    return remaining(await offsets.end_offsets(topics_of(model, settings)), done)


async def align_group(
    pool: Pool,
    offsets: Offsets,
    settings: ConnectionSettings,
    group: str,
    models: Iterable[ReadModel],
) -> None:
    """Commit the read models' own progress as the group's offsets (see the module doc)."""
    wanted: dict[tuple[str, int], int] = {}
    async with pool.acquire() as conn:
        for model in models:
            done = await checkpoints(conn, await active_schema(conn, model, lock=False))
            for tp in await offsets.partitions(topics_of(model, settings)):
                key = (tp.topic, tp.partition)
                wanted[key] = min(wanted.get(key, 1 << 62), done.get(key, -1) + 1)
    if not wanted:
        return
    consumer = AIOKafkaConsumer(
        **settings.kafka_options(),
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(*key) for key in wanted]
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        changes = {
            tp: wanted[(tp.topic, tp.partition)]
            for tp in tps
            if committed[tp] != wanted[(tp.topic, tp.partition)]
        }
        if changes:
            await consumer.commit(changes)
            log.info("group %s now starts from the read models' checkpoints", group)
    except Exception as error:  # another member is live: its offsets stand
        log.warning("could not align group %s (another member is running?): %r", group, error)
    finally:
        await consumer.stop()
