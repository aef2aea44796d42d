"""Rebuild a read model from offset zero beside the live one, then swap it in.

1. Create the next generation (empty tables, empty checkpoint) next to the active one.
2. Read every partition of the read model's topics from the beginning with a group-less
   consumer and apply in large batches, each with its checkpoint (the same ``apply_batch``
   as the live agents), printing progress. A reader task fetches and decodes the next
   batch while PostgreSQL applies the previous one. Python's cyclic garbage collector is
   off meanwhile, but for a full collection every ``_COLLECT_EVERY`` batches: a replay
   allocates millions of objects that live for a batch or two (freed by reference
   counting), and collecting them took a third of the rebuild's time.
3. Once at the end offsets, swap in one transaction: lock the active generation's row (the
   live agents wait on it for a moment), check the new generation has applied at least
   everything the live one has, settle it (the batches did not: the label feed's head is
   computed once, not over the rows read ahead at every batch), point the views at it and
   record it as active. If the live
   one is ahead, read on and try again. The old generation is dropped after the swap.

The public page and API keep answering from the views throughout.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from projections.core import (
    CONTROL,
    Decoded,
    ReadModel,
    apply_batch,
    checkpoints,
    create_generation,
    dead_letterer,
    decode_batch,
    ensure_generation,
    generation_schema,
    point_views,
)
from projections.offsets import Offsets, remaining, topics_of

log = logging.getLogger(__name__)

_SLICE = 100
"""Messages decoded between two yields to the event loop."""

_COLLECT_EVERY = 100
"""Batches between two full garbage collections during a rebuild (bounds cyclic garbage)."""


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did."""

    model: str
    generation: int
    messages: int
    applied: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second from the first fetch to the swap."""
        return self.messages / self.seconds if self.seconds else 0.0


async def rebuild(
    pool: Pool,
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    model: ReadModel,
    *,
    batch: int = 5000,
    progress: Callable[[str], None] = print,
) -> RebuildResult:
    """Rebuild ``model`` into a new generation and swap it in; returns the figures."""
    live = await ensure_generation(pool, model)
    async with pool.acquire() as conn, conn.transaction():
        last = await conn.fetchval(
            f"SELECT max(generation) FROM {CONTROL}.rebuilds WHERE name = $1", model.name
        )
        generation = max(live, int(last or 0)) + 1
        schema = await create_generation(conn, model, generation)
        await conn.execute(
            f"INSERT INTO {CONTROL}.rebuilds (name, generation) VALUES ($1, $2)",
            model.name,
            generation,
        )
    progress(f"{model.name}: building generation {generation} beside generation {live}")
    offsets = Offsets(settings.kafka_bootstrap_servers)
    await offsets.start()
    try:
        partitions = await offsets.partitions(topics_of(model, settings))
    finally:
        await offsets.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    dead = dead_letterer(producer, settings, model, Counter())
    decoded: asyncio.Queue[_Chunk] = asyncio.Queue(maxsize=4)
    started = time.perf_counter()
    messages = applied = batches = 0
    gc.disable()  # see the module's docstring
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        reader = asyncio.create_task(_read(consumer, batch, decoded))
        try:
            reported = started
            ends: dict[tuple[str, int], int] = {}
            done: dict[tuple[str, int], int] = {}
            while True:
                if remaining(ends, done) == 0:
                    # asked only here: the request waits behind the reader's fetch
                    ends = await _end_offsets(consumer, partitions)
                    if remaining(ends, done) == 0 and await _swap(pool, model, live, generation):
                        seconds = time.perf_counter() - started
                        break
                chunk, last = await _next(decoded, reader)
                if not chunk:
                    continue
                applied += await apply_batch(pool, model, chunk, dead, schema=schema)
                messages += len(chunk)
                batches += 1
                if batches % _COLLECT_EVERY == 0:
                    gc.collect()
                done.update(last)
                now = time.perf_counter()
                if now - reported >= 1.0:
                    reported = now
                    left = remaining(ends, done)
                    progress(
                        f"{model.name}: {messages} read, {left} to go,"
                        f" {messages / (now - started):,.0f} messages/s"
                    )
                    await pool.execute(
                        f"UPDATE {CONTROL}.rebuilds SET applied = $3, remaining = $4,"
                        " updated_at = now() WHERE name = $1 AND generation = $2",
                        model.name,
                        generation,
                        messages,
                        left,
                    )
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        gc.enable()
        await consumer.stop()
    await pool.execute(f"DROP SCHEMA IF EXISTS {generation_schema(model, live)} CASCADE")
    progress(
        f"{model.name}: generation {generation} is live: {messages} messages"
        f" ({applied} events applied) in {seconds:.1f} s"
    )
    return RebuildResult(model.name, generation, messages, applied, seconds)


_Chunk = tuple[list[Decoded], dict[tuple[str, int], int]]
"""Decoded messages and the last offset among them per topic partition."""


async def _read(consumer: AIOKafkaConsumer, batch: int, out: asyncio.Queue[_Chunk]) -> None:
    """Fetch and decode ahead: this runs while the database applies the previous batch."""
    while True:
        fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
        chunk: list[Decoded] = []
        last: dict[tuple[str, int], int] = {}
        for tp, records in fetched.items():
            for start in range(0, len(records), _SLICE):
                chunk += decode_batch(records[start : start + _SLICE])
                await asyncio.sleep(0)  # let the applier send its next statement
            if records:
                last[(tp.topic, tp.partition)] = records[-1].offset
        if chunk:
            await out.put((chunk, last))


async def _end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[tuple[str, int], int]:
    return {
        (tp.topic, tp.partition): int(offset)
        for tp, offset in (await consumer.end_offsets(partitions)).items()
    }


async def _next(decoded: asyncio.Queue[_Chunk], reader: asyncio.Task[None]) -> _Chunk:
    """The next decoded batch; empty after a second without one (the caller looks again)."""
    try:
        async with asyncio.timeout(1.0):
            return await decoded.get()
    except TimeoutError:
        if reader.done():
            reader.result()  # the reader's error
            raise RuntimeError("the reader stopped") from None
        return [], {}


async def _swap(pool: Pool, model: ReadModel, live: int, generation: int) -> bool:
    """Swap the new generation in if it has everything the live one has."""
    new = generation_schema(model, generation)
    async with pool.acquire() as conn, conn.transaction():
        active = await conn.fetchval(
            f"SELECT generation FROM {CONTROL}.read_models WHERE name = $1 FOR UPDATE",
            model.name,
        )
        if active != live:
            raise RuntimeError(f"{model.name}: generation {active} went live meanwhile")
        ahead = await checkpoints(conn, generation_schema(model, live))
        done = await checkpoints(conn, new)
        if any(offset > done.get(tp, -1) for tp, offset in ahead.items()):
            return False
        await conn.execute(f"SET LOCAL search_path TO {new}, public")
        await model.settle(conn)
        await point_views(conn, model, new)
        await conn.execute(
            f"UPDATE {CONTROL}.read_models SET generation = $2, swapped_at = now() WHERE name = $1",
            model.name,
            generation,
        )
        await conn.execute(
            f"UPDATE {CONTROL}.rebuilds SET state = 'swapped', remaining = 0, updated_at = now()"
            " WHERE name = $1 AND generation = $2",
            model.name,
            generation,
        )
        return True
