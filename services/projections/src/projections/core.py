"""Read models, their generations, and applying a batch of messages effectively once.

Each read model owns its tables. They live in one PostgreSQL schema per *generation*
(``rm_<name>_g<N>``), beside that generation's checkpoint (the last offset applied per topic
partition). ``projections.<name>_<table>`` views point at the active generation; every
query reads the views, so swapping in a rebuilt generation is one short transaction that
readers never notice.

A batch is applied in one transaction with its checkpoint: messages at or below the
checkpoint are skipped (Kafka's committed offsets are only a hint), undecodable or invalid
ones go to the dead-letter topic and are checkpointed too, the rest reach the read model.
A batch that fails for a reason that is not transient (``is_transient``, shared with the
domain services' consumers: a value PostgreSQL refuses, say U+0000 in a name) is applied
again one message at a time, and the message that fails alone is dead-lettered in a
transaction that checkpoints it. Dead letters are produced before that transaction
commits: at-least-once into ``projections.<read model>.dlq``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from aiokafka import AIOKafkaProducer

from clr_events.codec import from_kafka
from clr_events.consumers.dlq import DeadLetter as Letter
from clr_events.consumers.dlq import Message as Message  # a Kafka record, as consumers see it
from clr_events.consumers.dlq import Redeliver, send_dead_letter
from clr_events.consumers.errors import TransientError, is_transient
from clr_events.envelope import Envelope
from clr_events.errors import UnknownEventTypeError
from clr_events.migrations import load, migrate
from clr_events.pg import Connection, Pool
from clr_events.registry import Contract, registry
from clr_events.settings import ConnectionSettings

CONTROL = "projections"
"""The schema of the views and of the table that names each read model's active generation."""


@dataclass(frozen=True, slots=True)
class Record:
    """A Kafka record made from another client's message (faust's, in the live agents)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Event(NamedTuple):
    """A decoded public event: its envelope and its contract (a tuple: a replay makes
    millions, and a frozen dataclass costs several times more to create)."""

    envelope: Envelope
    contract: Contract


class ReadModel(Protocol):
    """A read model: its topics, its tables, and how a batch of events changes them.

    ``apply`` runs inside the batch's transaction with ``search_path`` set to the
    generation's schema. It must be deterministic and must tolerate an event it has seen
    before (a relay may republish after a crash; the read model dedupes by position).
    """

    name: str
    topics: tuple[str, ...]
    tables: dict[str, str]
    """Table name -> the body of its CREATE TABLE."""
    indexes: tuple[str, ...]
    partitioned: bool
    """Every row a record changes is keyed by the record's key (or shared only through
    upserts taken in key order): partitions can then be applied in concurrent transactions
    without waiting on one another's rows or deadlocking (a rebuild's lanes)."""

    async def apply(self, conn: Connection, events: list[Event]) -> None:
        """Apply a batch of events, in the order they came (per partition order)."""
        ...

    async def settle(self, conn: Connection) -> None:
        """Bring up to date what is derived from the read model as a whole (the label feed's
        head): after every batch in the live agents; a rebuild settles once, in the
        transaction that swaps it in (nobody reads a generation before)."""
        ...


DeadLetter = Callable[[Message, BaseException], Awaitable[None]]


def generation_schema(model: ReadModel, generation: int) -> str:
    """The schema of one generation of a read model."""
    return f"rm_{model.name}_g{generation}"


MIGRATIONS = load("projections")
"""The control schema's migrations (``migrations/``)."""


def layout_of(model: ReadModel) -> int:
    """The version of a read model's tables (its ``layout``, 1 if it has none): when the
    code's differs from the active generation's, the read model is rebuilt (a new
    generation with the code's tables) before the code writes to it."""
    return int(getattr(model, "layout", 1))


class StaleLayoutError(TransientError):
    """The active generation has another layout than the code: wait for the rebuild."""


async def migrate_control(conn: Connection | Pool) -> None:
    """Apply the control schema's pending migrations."""
    await migrate(conn, CONTROL, "control", MIGRATIONS)


async def live_layout(conn: Connection | Pool, model: ReadModel) -> int | None:
    """The layout of the read model's active generation (None: it has none yet)."""
    found = await conn.fetchval(
        f"SELECT coalesce(layout, 1) FROM {CONTROL}.read_models WHERE name = $1", model.name
    )
    return None if found is None else int(found)


async def create_generation(conn: Connection, model: ReadModel, generation: int) -> str:
    """Create an empty generation of a read model (dropping a leftover of the same number)."""
    schema = generation_schema(model, generation)
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    for table, body in model.tables.items():
        await conn.execute(f"CREATE TABLE {schema}.{table} ({body})")
    await conn.execute(
        f"CREATE TABLE {schema}.checkpoint (topic text NOT NULL, partition integer NOT NULL,"
        ' "offset" bigint NOT NULL, PRIMARY KEY (topic, partition))'
    )
    for index in model.indexes:
        await conn.execute(index.format(schema=schema))
    return schema


async def point_views(conn: Connection, model: ReadModel, schema: str) -> None:
    """Point the read model's views at a generation (inside the caller's transaction)."""
    for table in (*model.tables, "checkpoint"):
        view = f"{CONTROL}.{model.name}_{table}"
        await conn.execute(
            f"DROP VIEW IF EXISTS {view}; CREATE VIEW {view} AS SELECT * FROM {schema}.{table}"
        )


async def ensure_generation(pool: Pool, model: ReadModel) -> int:
    """The active generation of a read model, creating the first one if there is none."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('projections:migrate'))")
        await migrate_control(conn)
        generation = await conn.fetchval(
            f"SELECT generation FROM {CONTROL}.read_models WHERE name = $1", model.name
        )
        if generation is None:
            generation = 1
            schema = await create_generation(conn, model, generation)
            await point_views(conn, model, schema)
            await conn.execute(
                f"INSERT INTO {CONTROL}.read_models (name, generation, layout) VALUES ($1, $2, $3)",
                model.name,
                generation,
                layout_of(model),
            )
        elif await live_layout(conn, model) == layout_of(model):
            await upgrade_generation(conn, model, generation_schema(model, generation))
        return int(generation)


async def upgrade_generation(conn: Connection, model: ReadModel, schema: str) -> None:
    """Bring a generation made by an earlier version up to the read model's tables: its
    ``upgrades`` (idempotent statements, e.g. a column added), then, if a column was added
    or dropped, the views again (a view's ``*`` is fixed when it is made)."""
    upgrades: tuple[str, ...] = getattr(model, "upgrades", ())
    if not upgrades:
        return
    columns = (
        "SELECT string_agg(table_name || '.' || column_name, ',' ORDER BY table_name,"
        " column_name) FROM information_schema.columns WHERE table_schema = $1"
    )
    before = await conn.fetchval(columns, schema)
    for statement in upgrades:
        await conn.execute(statement.format(schema=schema))
    if await conn.fetchval(columns, schema) != before:
        await point_views(conn, model, schema)


async def forget_offsets(pool: Pool, models: Iterable[ReadModel]) -> dict[str, int]:
    """After the topics were lost and created again (empty, then republished from the
    stores): forget what each read model's live generation applied of the old topics, so
    its agents read the new ones from the start (a read model tolerates an event it has
    applied; a rebuild then swaps in a generation made from the new topics alone). Run with
    the service stopped. Returns the partitions forgotten per read model."""
    forgotten: dict[str, int] = {}
    async with pool.acquire() as conn, conn.transaction():
        for model in models:
            schema = await active_schema(conn, model, lock=False)
            status = await conn.execute(f"DELETE FROM {schema}.checkpoint")
            forgotten[model.name] = int(status.split()[-1])
    return forgotten


class NoGenerationError(TransientError, LookupError):
    """A read model has no active generation (yet): wait for one, the records are fine."""


async def active_schema(conn: Connection, model: ReadModel, *, lock: bool) -> str:
    """The active generation's schema; ``lock`` (to write to it) holds off a swap until the
    transaction ends.

    Raises:
        NoGenerationError: there is none.
        StaleLayoutError: (``lock``) its layout is not the code's: it is being rebuilt.
    """
    row = await conn.fetchrow(
        f"SELECT generation, coalesce(layout, 1) AS layout FROM {CONTROL}.read_models"
        " WHERE name = $1" + (" FOR SHARE" if lock else ""),
        model.name,
    )
    if row is None:
        raise NoGenerationError(f"read model {model.name} has no generation yet")
    if lock and row["layout"] != layout_of(model):
        raise StaleLayoutError(
            f"read model {model.name}: the live generation has layout {row['layout']},"
            f" this code writes layout {layout_of(model)}: waiting for its rebuild"
        )
    return generation_schema(model, int(row["generation"]))


async def checkpoints(conn: Connection, schema: str) -> dict[tuple[str, int], int]:
    """The last offset applied per topic partition in a generation."""
    rows = await conn.fetch(f'SELECT topic, partition, "offset" FROM {schema}.checkpoint')
    return {(row["topic"], row["partition"]): row["offset"] for row in rows}


class Decoded(NamedTuple):
    """A message and what decoding it gave: an event, nothing (a type this reader does not
    know, a newer one), or the error that makes it poison."""

    message: Message
    event: Event | None
    error: BaseException | None = None


def decode(message: Message) -> Decoded:
    """Decode one message; a poison message carries its error instead of an event."""
    try:
        envelope = from_kafka(message.key, message.value, message.headers)
        contract = registry.decode(envelope.type, envelope.data)
    except UnknownEventTypeError:
        return Decoded(message, None)
    except Exception as error:  # whatever decoding raises, the bytes are at fault
        return Decoded(message, None, error)
    return Decoded(message, Event(envelope, contract))


def decode_batch(messages: Iterable[Message]) -> list[Decoded]:
    """Decode messages in order (pure CPU: a rebuild does it while the database works)."""
    return [decode(message) for message in messages]


async def apply_batch(
    pool: Pool,
    model: ReadModel,
    batch: Sequence[Decoded],
    dead_letter: DeadLetter,
    *,
    schema: str | None = None,
) -> int:
    """Apply decoded messages to the active generation, effectively once, and settle it; or
    to the generation ``schema`` that a rebuild settles when it swaps it in.

    Returns how many events reached the read model. A message the read model cannot apply
    is found by applying the batch one message at a time, and dead-lettered alone.

    Raises:
        Exception: a transient failure (``is_transient``): the caller retries the batch.
    """
    try:
        return await _apply(pool, model, batch, dead_letter, schema)
    except Exception as error:
        if is_transient(error):
            raise
        if len(batch) == 1:
            return await _refuse(pool, model, batch[0], error, dead_letter, schema)
    applied = 0
    for item in batch:
        try:
            applied += await _apply(pool, model, [item], dead_letter, schema)
        except Exception as error:
            if is_transient(error):
                raise
            await _refuse(pool, model, item, error, dead_letter, schema)
    return applied


async def _refuse(
    pool: Pool,
    model: ReadModel,
    item: Decoded,
    error: BaseException,
    dead_letter: DeadLetter,
    schema: str | None,
) -> int:
    """Dead-letter a message the read model refused, and checkpoint it."""
    return await _apply(pool, model, [Decoded(item.message, None, error)], dead_letter, schema)


async def _apply(
    pool: Pool,
    model: ReadModel,
    batch: Sequence[Decoded],
    dead_letter: DeadLetter,
    schema: str | None,
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        target = schema or await active_schema(conn, model, lock=True)
        done = await checkpoints(conn, target)
        fresh = [
            d
            for d in batch
            if d.message.offset > done.get((d.message.topic, d.message.partition), -1)
        ]
        events = [d.event for d in fresh if d.event is not None]
        if events:
            await conn.execute(f"SET LOCAL search_path TO {target}, public")
            await model.apply(conn, events)
            if schema is None:
                await model.settle(conn)
        last: dict[tuple[str, int], int] = {}
        for item in fresh:
            last[(item.message.topic, item.message.partition)] = item.message.offset
        if last:
            await conn.execute(
                f'INSERT INTO {target}.checkpoint (topic, partition, "offset")'
                " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
                ' ON CONFLICT (topic, partition) DO UPDATE SET "offset" = excluded."offset"',
                [tp[0] for tp in last],
                [tp[1] for tp in last],
                list(last.values()),
            )
        # last, so a batch the read model refuses (and that is split) dead-letters nothing
        for item in fresh:
            if item.error is not None:
                await dead_letter(item.message, item.error)
        return len(events)


def dead_letterer(
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    model: ReadModel,
    counts: Counter[str],
) -> DeadLetter:
    """Send a message the read model can never apply to ``projections.<name>.dlq``.

    Raises:
        KafkaError: the broker did not take it (transient: the batch is retried).
    """
    group = settings.topic(f"projections.{model.name}")

    async def dead_letter(message: Message, error: BaseException) -> None:
        await send_dead_letter(producer, group, message, error)
        counts[model.name] += 1

    return dead_letter


def redeliverer(model: ReadModel) -> Redeliver:
    """Apply a dead letter's original to the active generation (``python -m
    clr_events.consumers.dlq replay --group projections.<name>``), past the checkpoint:
    the replay marks what it redelivered, in the same transaction.

    Raises:
        Exception: what decoding or the read model raises (the record stays refused).
    """

    async def redeliver(conn: Connection, letter: Letter) -> None:
        decoded = decode(letter)
        if decoded.error is not None:
            raise decoded.error
        if decoded.event is None:
            return  # a type this reader does not know: nothing to apply
        target = await active_schema(conn, model, lock=True)
        await conn.execute(f"SET LOCAL search_path TO {target}, public")
        await model.apply(conn, [decoded.event])
        await model.settle(conn)

    return redeliver
