"""Rebuild a read model from offset zero beside the live one, then swap it in.

1. Create the next generation (empty tables, empty checkpoint) next to the active one.
2. Read every partition of the read model's topics from the beginning with a group-less
   consumer and apply in large batches, each with its checkpoint (the same ``apply_batch``
   as the live agents), printing progress. A reader task fetches and decodes the next
   batch while PostgreSQL applies the previous one. Python's cyclic garbage collector is
   off meanwhile, but for a full collection every ``_COLLECT_EVERY`` batches: a replay
   allocates millions of objects that live for a batch or two (freed by reference
   counting), and collecting them took a third of the rebuild's time. A model keyed by
   the records' keys (``partitioned``) is first brought up to the end offsets of the start
   in several processes (``python -m projections.rebuild``, started with the rebuild, one
   share of the partitions each, this process taking the first): decoding is Python's
   work, one core per process. This process then reads on from their checkpoints.
3. Once at the end offsets, swap in one transaction: lock the active generation's row (the
   live agents wait on it for a moment), check the new generation has applied at least
   everything the live one has, settle it (the batches did not: the label feed's head is
   computed once, not over the rows read ahead at every batch), point the views at it and
   record it as active. If the live one is ahead, read on and try again. The old
   generation is dropped after the swap.

A record the read model refuses goes to its dead-letter topic as in the live agents (the
same ``apply_batch``, so the same error classification); a transient failure of a batch is
retried with backoff before the rebuild gives up.

The public page and API keep answering from the views throughout.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import pickle
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from clr_events.consumers.errors import is_transient
from clr_events.kafka.producer import new_producer
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from projections.core import (
    CONTROL,
    DeadLetter,
    Decoded,
    ReadModel,
    apply_batch,
    checkpoints,
    create_generation,
    dead_letterer,
    decode_batch,
    ensure_generation,
    generation_schema,
    layout_of,
    point_views,
)
from projections.offsets import Offsets, remaining, topics_of
from projections.read_models.all import READ_MODELS

log = logging.getLogger(__name__)

_SLICE = 100
"""Messages decoded between two yields to the event loop."""

_COLLECT_EVERY = 100
"""Batches between two full garbage collections during a rebuild (bounds cyclic garbage)."""

_RETRIES = 8
"""Retries of a batch that failed transiently (about a minute of backoff) before giving up."""


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
    lanes: int = 2,
    processes: int = 2,
    processes_from: int = 50_000,
    progress: Callable[[str], None] = print,
) -> RebuildResult:
    """Rebuild ``model`` into a new generation and swap it in; returns the figures.

    A model whose rows are keyed by the records' keys (``partitioned``) is applied in
    ``lanes`` concurrent transactions, each over its own share of the partitions: one lane's
    statements run in PostgreSQL while Python prepares the other's. The pool needs a
    connection per lane and one more.

    Such a model with ``processes_from`` messages or more is first brought up to the end
    offsets of the start in ``processes`` processes, each over its own share of the
    partitions with its own lanes (decoding is Python's work, one core per process), each
    batch with its checkpoint as always. Then this process reads on from those
    checkpoints, every partition, and swaps as the module's docstring says. (Starting a
    process takes about half a second: below some tens of thousands of messages it costs
    more than it saves.)
    """
    shared = model.partitioned and processes > 1 and READ_MODELS.get(model.name) is model
    # the helpers start first: they load (about half a second) while the generation is made
    async with _helpers(processes - 1 if shared else 0) as helpers:
        return await _rebuild(
            pool, producer, settings, model, batch, lanes, helpers, processes_from, progress
        )


async def _rebuild(
    pool: Pool,
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    model: ReadModel,
    batch: int,
    lanes: int,
    helpers: list[asyncio.subprocess.Process],
    processes_from: int,
    progress: Callable[[str], None],
) -> RebuildResult:
    """The rebuild once its helper processes (if any) are started: see ``rebuild``."""
    live, generation, schema = await _new_generation(pool, model)
    progress(f"{model.name}: building generation {generation} beside generation {live}")
    partitions = await _partitions(settings, model)
    started = time.perf_counter()
    state = _State([_Lane() for _ in range(lanes if model.partitioned else 1)])
    if helpers:
        state.messages, state.applied = await _catch_up_in_processes(
            pool,
            producer,
            settings,
            model,
            schema,
            partitions,
            batch,
            lanes,
            helpers,
            processes_from,
            progress,
        )
    async with pool.acquire() as conn:
        state.done.update(await checkpoints(conn, schema))
    applying = _applying(pool, producer, settings, model, schema, partitions, batch, state)
    async with applying as (consumer, tasks):
        seconds = await _read_on_and_swap(
            pool, model, live, generation, consumer, partitions, tasks, state, started, progress
        )
    await pool.execute(f"DROP SCHEMA IF EXISTS {generation_schema(model, live)} CASCADE")
    progress(
        f"{model.name}: generation {generation} is live: {state.messages} messages"
        f" ({state.applied} events applied) in {seconds:.1f} s"
    )
    return RebuildResult(model.name, generation, state.messages, state.applied, seconds)


async def _new_generation(pool: Pool, model: ReadModel) -> tuple[int, int, str]:
    """Create the next generation of ``model`` (empty tables, empty checkpoint) and record
    its rebuild; returns the live generation, the new one and the new one's schema."""
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
    return live, generation, schema


@asynccontextmanager
async def _offsets(settings: ConnectionSettings) -> AsyncIterator[Offsets]:
    """A short-lived reader of partitions and end offsets."""
    offsets = Offsets(settings)
    await offsets.start()
    try:
        yield offsets
    finally:
        await offsets.stop()


async def _partitions(settings: ConnectionSettings, model: ReadModel) -> list[TopicPartition]:
    """Every partition of the model's topics."""
    async with _offsets(settings) as offsets:
        return await offsets.partitions(topics_of(model, settings))


async def _catch_up_in_processes(
    pool: Pool,
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    model: ReadModel,
    schema: str,
    partitions: list[TopicPartition],
    batch: int,
    lanes: int,
    helpers: list[asyncio.subprocess.Process],
    processes_from: int,
    progress: Callable[[str], None],
) -> tuple[int, int]:
    """Bring every partition up to the end offsets of the start in this process and the
    ``helpers`` if there are ``processes_from`` messages or more to read, or let the helpers
    go; returns the messages read and the events applied.

    Raises:
        RuntimeError: a helper process failed (its error is in its log).
    """
    at_start = await _end_offsets_now(settings, model)
    processes = len(helpers) + 1
    if remaining(at_start, {}) < processes_from:
        for process in helpers:  # no work order: it ends
            assert process.stdin is not None
            process.stdin.close()
        return 0, 0
    progress(f"{model.name}: up to the end offsets of the start in {processes} processes")
    messages, applied = await _in_processes(
        pool, producer, settings, model, schema, partitions, at_start, batch, lanes, helpers
    )
    progress(f"{model.name}: {messages} read in {processes} processes, reading on")
    return messages, applied


@asynccontextmanager
async def _applying(
    pool: Pool,
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    model: ReadModel,
    schema: str,
    partitions: list[TopicPartition],
    batch: int,
    state: _State,
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[asyncio.Task[None]]]]:
    """A reader task and a task per lane of ``state`` applying ``partitions`` from just
    after their checkpoints in ``state.done`` (or from their beginning), until the block
    ends; yields the consumer and the tasks. The garbage collector is off meanwhile (see
    the module's docstring)."""
    consumer = _consumer(settings)
    await consumer.start()
    dead = dead_letterer(producer, settings, model, Counter())
    lane_of = {
        (tp.topic, tp.partition): state.lanes[i % len(state.lanes)]
        for i, tp in enumerate(partitions)
    }
    gc.disable()
    try:
        consumer.assign(partitions)
        await _seek_past(consumer, partitions, state.done)
        tasks = [
            asyncio.create_task(_read(consumer, batch, lane_of)),
            *(
                asyncio.create_task(_apply_lane(pool, model, schema, dead, lane, state))
                for lane in state.lanes
            ),
        ]
        try:
            yield consumer, tasks
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        gc.enable()
        await consumer.stop()


async def _read_on_and_swap(
    pool: Pool,
    model: ReadModel,
    live: int,
    generation: int,
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    tasks: list[asyncio.Task[None]],
    state: _State,
    started: float,
    progress: Callable[[str], None],
) -> float:
    """Apply on (the ``tasks`` do) until the new generation has reached the end offsets
    and everything the live one has, then swap it in; returns the seconds from ``started``
    to the swap.

    Raises:
        Exception: the reader's or a lane's failure.
        RuntimeError: another generation went live meanwhile.
    """
    reported = started
    ends: dict[tuple[str, int], int] = {}
    while True:
        if remaining(ends, state.done) == 0:
            # asked only here: the request waits behind the reader's fetch
            ends = await _end_offsets(consumer, partitions)
            async with _all_idle(state.lanes):
                if remaining(ends, state.done) == 0 and await _swap(pool, model, live, generation):
                    seconds = time.perf_counter() - started
                    for task in tasks:  # no queued batch may reach the generation now live
                        task.cancel()
                    return seconds
        await _progressed(state, tasks)
        now = time.perf_counter()
        if now - reported >= 1.0:
            reported = now
            left = remaining(ends, state.done)
            await _report(pool, model, generation, state, left, now - started, progress)


async def _report(
    pool: Pool,
    model: ReadModel,
    generation: int,
    state: _State,
    left: int,
    seconds: float,
    progress: Callable[[str], None],
) -> None:
    """The rebuild's progress, printed and in its row (``GET /read-models``)."""
    progress(
        f"{model.name}: {state.messages} read, {left} to go,"
        f" {state.messages / seconds:,.0f} messages/s"
    )
    await pool.execute(
        f"UPDATE {CONTROL}.rebuilds SET applied = $3, remaining = $4,"
        " updated_at = now() WHERE name = $1 AND generation = $2",
        model.name,
        generation,
        state.messages,
        left,
    )


def _consumer(settings: ConnectionSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.kafka_options(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )


async def _seek_past(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], done: dict[tuple[str, int], int]
) -> None:
    """Each partition from just after its checkpoint, or from its beginning."""
    fresh = [tp for tp in partitions if (tp.topic, tp.partition) not in done]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    for tp in partitions:
        if (tp.topic, tp.partition) in done:
            consumer.seek(tp, done[(tp.topic, tp.partition)] + 1)


async def _end_offsets_now(
    settings: ConnectionSettings, model: ReadModel
) -> dict[tuple[str, int], int]:
    async with _offsets(settings) as offsets:
        return await offsets.end_offsets(topics_of(model, settings))


async def _in_processes(
    pool: Pool,
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    model: ReadModel,
    schema: str,
    partitions: list[TopicPartition],
    ends: dict[tuple[str, int], int],
    batch: int,
    lanes: int,
    helpers: list[asyncio.subprocess.Process],
) -> tuple[int, int]:
    """Apply every partition up to ``ends``, in this process and the ``helpers``, each
    over its own share of the partitions; returns the messages read and the events applied.

    Raises:
        RuntimeError: a helper process failed (its error is in its log).
    """
    shares = [partitions[i :: len(helpers) + 1] for i in range(len(helpers) + 1)]
    if len(shares[-1]) > 1:  # a helper starts later (a fresh interpreter): one partition less
        shares[0].append(shares[-1].pop())
    for process, share in zip(helpers, shares[1:], strict=True):
        # the work order carries the settings (credentials): a pipe, not the command line
        assert process.stdin is not None
        process.stdin.write(pickle.dumps((settings, model.name, schema, share, ends, batch, lanes)))
        await process.stdin.drain()
        process.stdin.close()
    messages, applied = await _bulk(
        pool, producer, settings, model, schema, shares[0], ends, batch, lanes
    )
    for process in helpers:
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{model.name}: a rebuild process failed ({process.returncode})")
        more, more_applied = map(int, out.split())
        messages, applied = messages + more, applied + more_applied
    return messages, applied


@asynccontextmanager
async def _helpers(count: int) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``count`` processes of ``python -m projections.rebuild``, each waiting for its work
    order on its standard input (see ``_process_main``); stopped if still running at the end
    (not needed, or the rebuild failed)."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(count):
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "projections.rebuild",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


def _process_main() -> None:
    """A rebuild helper process: its work order from its standard input (nothing, if the
    rebuild ended before it was needed), its own connections, its figures on its standard
    output."""
    order = sys.stdin.buffer.read()
    if not order:
        return
    settings, name, schema, partitions, ends, batch, lanes = pickle.loads(order)

    async def run() -> tuple[int, int]:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=lanes + 1)
        producer = new_producer(settings)
        await producer.start()
        try:
            return await _bulk(
                pool, producer, settings, READ_MODELS[name], schema, partitions, ends, batch, lanes
            )
        finally:
            await producer.stop()
            await pool.close()

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    messages, applied = asyncio.run(run())
    sys.stdout.write(f"{messages} {applied}\n")


async def _bulk(
    pool: Pool,
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    model: ReadModel,
    schema: str,
    partitions: list[TopicPartition],
    ends: dict[tuple[str, int], int],
    batch: int,
    lanes: int,
) -> tuple[int, int]:
    """Apply ``partitions`` from their beginning up to ``ends`` (at least), in ``lanes``,
    each batch with its checkpoint; returns the messages read and the events applied."""
    if not partitions:
        return 0, 0
    mine = {(tp.topic, tp.partition) for tp in partitions}
    ends = {tp: end for tp, end in ends.items() if tp in mine}
    state = _State([_Lane() for _ in range(lanes)])
    applying = _applying(pool, producer, settings, model, schema, partitions, batch, state)
    async with applying as (_, tasks):
        while remaining(ends, state.done) > 0:
            await _progressed(state, tasks)
        async with _all_idle(state.lanes):  # no batch cut off mid-transaction
            for task in tasks:
                task.cancel()
    return state.messages, state.applied


_Chunk = tuple[list[Decoded], dict[tuple[str, int], int]]
"""Decoded messages and the last offset among them per topic partition."""


@dataclass(eq=False)  # by identity: the reader groups a fetch's records by lane
class _Lane:
    """A share of the partitions, applied in its own transactions."""

    queue: asyncio.Queue[_Chunk] = field(default_factory=lambda: asyncio.Queue(maxsize=4))
    applying: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _State:
    """What the lanes have applied, and a signal each time they apply a batch."""

    lanes: list[_Lane]
    done: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0
    applied: int = 0
    batches: int = 0
    moved: asyncio.Event = field(default_factory=asyncio.Event)


async def _read(
    consumer: AIOKafkaConsumer, batch: int, lane_of: dict[tuple[str, int], _Lane]
) -> None:
    """Fetch and decode ahead: this runs while the database applies the previous batches."""
    while True:
        fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
        chunks: dict[_Lane, _Chunk] = {}
        for tp, records in fetched.items():
            if not records:
                continue
            chunk, last = chunks.setdefault(lane_of[(tp.topic, tp.partition)], ([], {}))
            for start in range(0, len(records), _SLICE):
                chunk += decode_batch(records[start : start + _SLICE])
                await asyncio.sleep(0)  # let the lanes send their next statements
            last[(tp.topic, tp.partition)] = records[-1].offset
        for lane, item in chunks.items():
            await lane.queue.put(item)


async def _apply_lane(
    pool: Pool, model: ReadModel, schema: str, dead: DeadLetter, lane: _Lane, state: _State
) -> None:
    while True:
        chunk, last = await lane.queue.get()
        async with lane.applying:
            # not ``state.applied += await ...``: that reads the sum before awaiting, and
            # another lane's batch meanwhile would be lost from it
            applied = await _apply_retrying(pool, model, chunk, dead, schema)
        state.applied += applied
        state.messages += len(chunk)
        state.batches += 1
        state.done.update(last)
        if state.batches % _COLLECT_EVERY == 0:
            gc.collect()
        state.moved.set()


async def _apply_retrying(
    pool: Pool, model: ReadModel, chunk: list[Decoded], dead: DeadLetter, schema: str
) -> int:
    """``apply_batch`` (which dead-letters what the records cause), retrying a transient
    failure with backoff ``_RETRIES`` times before the rebuild gives up.

    Raises:
        Exception: a transient failure that outlasted the retries, or any other.
    """
    delay = 0.2
    for attempt in range(_RETRIES + 1):
        try:
            return await apply_batch(pool, model, chunk, dead, schema=schema)
        except Exception as error:
            if not is_transient(error) or attempt == _RETRIES:
                raise
            log.warning("%s: transient failure, retrying in %.1f s: %r", model.name, delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


@asynccontextmanager
async def _all_idle(lanes: list[_Lane]) -> AsyncIterator[None]:
    """No lane applies meanwhile (the swap must not race a batch into the new generation)."""
    async with AsyncExitStack() as stack:
        for lane in lanes:
            await stack.enter_async_context(lane.applying)
        yield


async def _progressed(state: _State, tasks: list[asyncio.Task[None]]) -> None:
    """Wait up to a second for a lane to apply a batch; a failed reader or lane raises."""
    try:
        async with asyncio.timeout(1.0):
            await state.moved.wait()
    except TimeoutError:
        for task in tasks:
            if task.done():
                task.result()  # its error
                raise RuntimeError("the rebuild's reader or a lane stopped") from None
    state.moved.clear()


async def _end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[tuple[str, int], int]:
    return {
        (tp.topic, tp.partition): int(offset)
        for tp, offset in (await consumer.end_offsets(partitions)).items()
    }


SWAP_LOCK_TIMEOUT = "200ms"
"""How long the swap waits for a view a public read holds before it gives way: well under
PostgreSQL's deadlock_timeout (1 s), so a reader that holds one view and waits for another
the swap already replaced is never the one a deadlock check cancels (a 500 on the page)."""
SWAP_ATTEMPTS = 50


async def _swap(pool: Pool, model: ReadModel, live: int, generation: int) -> bool:
    """Swap the new generation in if it has everything the live one has; give way to
    public reads and try again while they hold the views."""
    for attempt in range(SWAP_ATTEMPTS):
        try:
            return await _swap_once(pool, model, live, generation)
        except asyncpg.LockNotAvailableError:
            if attempt == SWAP_ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0.02, 0.1))
    raise AssertionError("unreachable")


async def _swap_once(pool: Pool, model: ReadModel, live: int, generation: int) -> bool:
    new = generation_schema(model, generation)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
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
            f"UPDATE {CONTROL}.read_models SET generation = $2, swapped_at = now(), layout = $3"
            " WHERE name = $1",
            model.name,
            generation,
            layout_of(model),
        )
        await conn.execute(
            f"UPDATE {CONTROL}.rebuilds SET state = 'swapped', remaining = 0, updated_at = now()"
            " WHERE name = $1 AND generation = $2",
            model.name,
            generation,
        )
        return True


if __name__ == "__main__":
    _process_main()
