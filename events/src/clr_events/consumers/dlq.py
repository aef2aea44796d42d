"""Dead letters: what a consumer sends to ``<group>.dlq``, and their replay after a fix.

**Sending.** A record a consumer group can never apply (``errors.is_transient`` says it
is the record's fault) goes to ``<group>.dlq`` with its key, value and headers, plus
``dlq_group``, ``dlq_topic``, ``dlq_partition``, ``dlq_offset``, ``dlq_error_type`` and
``dlq_error``. Its offset is then checkpointed, so the group goes on with the next record.
The dead letter is produced (and acknowledged) *before* the checkpoint commits: a crash
between the two sends it again, so the DLQ is at-least-once, never at-most-once. A value
too large for the DLQ topic (the error headers made it pass the size limit) is sent
without it, with ``dlq_value: omitted``: the original stays on its topic (event topics
keep everything), where the replay reads it.

**Replay.** ``python -m clr_events.consumers.dlq replay --group <group> [--dry-run]``
(``make dlq-replay GROUP=<group>``) reads the group's DLQ from the start and *redelivers*
each dead letter's original record to that one group's handler, in one PostgreSQL
transaction with a mark in ``<schema>.dlq_replays`` (keyed by the original's topic,
partition and offset): a second run, or a dead letter sent twice, replays nothing twice.
A record that still fails is reported and left unmarked for a later run; a transient
failure stops the run (run it again).

Why not re-produce the record to its original topic: every *other* group reading that
topic would see it again. The domain services' consumers would skip it (their inbox
dedupes by ``(source, id)``), but the projections' read models dedupe by their offset
checkpoint, which a re-produced record is past: the organisation directory and the expert
register would apply an old upsert over newer rows (a renamed organisation renamed back, a
revoked certification revived), and public subscribers would see a public event twice on
a topic whose ``prevposition`` chain promises each once. Redelivering to the group that
refused the record touches nobody else.

The command finds the group's handler by its name, ``<service>.<consumer>``: a package
may offer ``<service>.dlq.replay_target(group, settings)`` (the projections do, for their
read models); otherwise the service's ``<service>.service.build()`` runtime is started
without background work and its ``ConsumerSpec`` of that group is used. A redelivered
record carries the header ``dlq_replayed_from`` (the DLQ topic and offset).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError

from clr_events.consumers.errors import is_transient
from clr_events.errors import EventsError
from clr_events.kafka.reader import read_to_end, reader
from clr_events.migrations import events_migrations, migrate
from clr_events.pg import Connection, Pool
from clr_events.settings import ConnectionSettings

log = logging.getLogger(__name__)

PREFIX = "dlq_"
"""Every header the dead-lettering adds starts with it (a replay drops them)."""

MAX_ERROR = 2000
"""Characters of the error message kept in ``dlq_error``."""


class Message(Protocol):
    """The parts of a Kafka record a dead letter copies (aiokafka's ``ConsumerRecord`` is
    one, and so is the projections' ``Record``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def dead_letter_headers(
    group: str,
    topic: str,
    partition: int,
    offset: int,
    headers: Any,
    error: BaseException,
) -> list[tuple[str, bytes]]:
    """The original headers (but earlier ``dlq_*`` ones) plus where it came from and why."""
    return [
        *((name, value) for name, value in headers or () if not name.startswith(PREFIX)),
        ("dlq_group", group.encode()),
        ("dlq_topic", topic.encode()),
        ("dlq_partition", str(partition).encode()),
        ("dlq_offset", str(offset).encode()),
        ("dlq_error_type", type(error).__name__.encode()),
        ("dlq_error", str(error)[:MAX_ERROR].encode(errors="replace")),
    ]


async def send_dead_letter(
    producer: AIOKafkaProducer, group: str, message: Message, error: BaseException
) -> None:
    """Send ``message`` to ``<group>.dlq`` and wait for the acknowledgement.

    Raises:
        KafkaError: the broker did not take it (transient: the caller retries).
    """
    log.warning(
        "%s: %s[%d]@%d dead-lettered: %r",
        group,
        message.topic,
        message.partition,
        message.offset,
        error,
    )
    headers = dead_letter_headers(
        group, message.topic, message.partition, message.offset, message.headers, error
    )
    try:
        await producer.send_and_wait(
            f"{group}.dlq", message.value, key=message.key, headers=headers
        )
    except MessageSizeTooLargeError:
        await producer.send_and_wait(
            f"{group}.dlq", None, key=message.key, headers=[*headers, ("dlq_value", b"omitted")]
        )


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter's original record (a ``Message``), and why it was refused."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    """The original's headers, plus ``dlq_replayed_from``."""
    group: str
    error_type: str
    error: str
    dlq_offset: int
    value_omitted: bool = False

    @classmethod
    def of(cls, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
        """Parse a record of a DLQ topic.

        Raises:
            EventsError: it has no ``dlq_*`` headers saying where its original was.
        """
        found = dict(record.headers or ())
        try:
            return cls(
                topic=found["dlq_topic"].decode(),
                partition=int(found["dlq_partition"]),
                offset=int(found["dlq_offset"]),
                key=record.key,
                value=record.value,
                headers=[
                    *((n, v) for n, v in record.headers or () if not n.startswith(PREFIX)),
                    ("dlq_replayed_from", f"{record.topic}@{record.offset}".encode()),
                ],
                group=found.get("dlq_group", b"").decode(errors="replace"),
                error_type=found.get("dlq_error_type", b"").decode(errors="replace"),
                error=found.get("dlq_error", b"").decode(errors="replace"),
                dlq_offset=record.offset,
                value_omitted=found.get("dlq_value") == b"omitted",
            )
        except (KeyError, ValueError, UnicodeDecodeError) as error:
            raise EventsError(
                f"{record.topic}@{record.offset} is not a dead letter: {error!r}"
            ) from None


Redeliver = Callable[[Connection, DeadLetter], Awaitable[None]]
"""Apply a dead letter's original as the group would, inside the replay's transaction."""


@dataclass(frozen=True)
class ReplayTarget:
    """A consumer group as the replay needs it."""

    group: str
    """The group's name in this installation (its DLQ is ``<group>.dlq``)."""
    schema: str
    """Where the group's replay marks live (``<schema>.dlq_replays``)."""
    redeliver: Redeliver


@dataclass
class ReplayResult:
    """What a replay did, dead letters by their DLQ offset."""

    replayed: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


class ReplayMarks:
    """Which originals a group has had redelivered (in the redelivery's transaction)."""

    def __init__(self, schema: str) -> None:
        self._table = f"{schema}.dlq_replays"
        self._schema = schema

    async def migrate(self, conn: Connection) -> None:
        """Apply the table's pending migrations (``clr_events/migrations/dlq``)."""
        await migrate(conn, self._schema, "dlq", events_migrations("dlq"))

    async def done(self, conn: Connection, group: str, letter: DeadLetter) -> bool:
        """True when the original was redelivered before."""
        found = await conn.fetchval(
            f"SELECT true FROM {self._table} WHERE consumer_group = $1 AND topic = $2"
            ' AND partition = $3 AND "offset" = $4',
            group,
            letter.topic,
            letter.partition,
            letter.offset,
        )
        return bool(found)

    async def mark(self, conn: Connection, group: str, letter: DeadLetter) -> bool:
        """Mark the original as redelivered; False when it already was."""
        inserted = await conn.fetchval(
            f'INSERT INTO {self._table} (consumer_group, topic, partition, "offset",'
            " dlq_offset) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            group,
            letter.topic,
            letter.partition,
            letter.offset,
            letter.dlq_offset,
        )
        return bool(inserted)


_consumer = reader


async def read_dead_letters(
    kafka: ConnectionSettings, dlq_topic: str
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a DLQ topic, from the start to its end when asked."""
    return await read_to_end(kafka, dlq_topic)


async def _original_value(kafka: ConnectionSettings, letter: DeadLetter) -> bytes | None:
    """The value of a dead letter sent without it, read from its original topic."""
    consumer = _consumer(kafka)
    await consumer.start()
    try:
        tp = TopicPartition(letter.topic, letter.partition)
        consumer.assign([tp])
        consumer.seek(tp, letter.offset)
        record = await consumer.getone(tp)
        if record.offset != letter.offset:
            raise EventsError(f"{letter.topic}[{letter.partition}]@{letter.offset} is gone")
        value: bytes | None = record.value
        return value
    finally:
        await consumer.stop()


async def replay(
    pool: Pool,
    kafka: ConnectionSettings,
    target: ReplayTarget,
    *,
    dry_run: bool = False,
    retries: int = 5,
    report: Callable[[str], None] = print,
) -> ReplayResult:
    """Redeliver every dead letter of ``target.group`` not redelivered before.

    Raises:
        Exception: a transient failure that outlasted ``retries`` (run it again later).
    """
    marks = ReplayMarks(target.schema)
    async with pool.acquire() as conn:
        await marks.migrate(conn)
    dlq_topic = f"{target.group}.dlq"
    result = ReplayResult()
    for record in await read_dead_letters(kafka, dlq_topic):
        try:
            letter = DeadLetter.of(record)
        except EventsError as error:
            result.failed[record.offset] = str(error)
            report(f"{dlq_topic}@{record.offset}: skipped, {error}")
            continue
        where = f"{dlq_topic}@{record.offset} ({letter.topic}[{letter.partition}]@{letter.offset})"
        async with pool.acquire() as conn:
            done = await marks.done(conn, target.group, letter)
        if done:
            result.already.append(record.offset)
            report(f"{where}: replayed before")
            continue
        if dry_run:
            result.replayed.append(record.offset)
            report(f"{where}: would replay ({letter.error_type}: {letter.error[:200]})")
            continue
        if letter.value_omitted:
            value = await _original_value(kafka, letter)
            letter = dataclasses.replace(letter, value=value, value_omitted=False)
        refused = await _redeliver(pool, marks, target, letter, retries)
        if refused is None:
            result.replayed.append(record.offset)
            report(f"{where}: replayed")
        else:
            result.failed[record.offset] = f"{type(refused).__name__}: {refused}"
            report(f"{where}: still refused, {type(refused).__name__}: {str(refused)[:200]}")
    report(
        f"{target.group}: {len(result.replayed)} {'to replay' if dry_run else 'replayed'},"
        f" {len(result.already)} replayed before, {len(result.failed)} refused"
    )
    return result


async def _redeliver(
    pool: Pool, marks: ReplayMarks, target: ReplayTarget, letter: DeadLetter, retries: int
) -> BaseException | None:
    """Redeliver one original effectively once; the error when the record is refused."""
    delay = 0.2
    for attempt in range(retries + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                if await marks.mark(conn, target.group, letter):
                    await target.redeliver(conn, letter)
            return None
        except Exception as error:
            if not is_transient(error):
                return error
            if attempt == retries:
                raise
            log.warning("%s: transient error, retrying: %r", target.group, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    return None


@asynccontextmanager
async def target_of(group: str, settings: ConnectionSettings) -> AsyncIterator[Replaying]:
    """The replay target and pool of a group named ``<service>.<consumer>`` (see the module's
    docstring for how its handler is found).

    Raises:
        LookupError: no package or consumer of that name.
    """
    package = group.split(".", 1)[0]
    try:
        own = importlib.import_module(f"{package}.dlq")
    except ModuleNotFoundError as missing:
        if missing.name not in (package, f"{package}.dlq"):
            raise
        if missing.name == package:
            raise LookupError(f"no service package {package!r} for group {group!r}") from None
        own = None
    if own is not None:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            yield Replaying(own.replay_target(group, settings), pool)
        finally:
            await pool.close()
        return
    from clr_events.consumers.runner import redeliverer
    from clr_events.service.runtime import Runtime

    app = importlib.import_module(f"{package}.service").build()
    runtime = app.state.runtime
    if not isinstance(runtime, Runtime):
        raise LookupError(f"{package} has no consumer runtime")
    specs = {spec.group: spec for spec in runtime.consumers}
    if group not in specs:
        raise LookupError(f"{package} has no consumer group {group!r}: {sorted(specs)}")
    runtime.settings = runtime.settings.model_copy(update={"background": False})
    await runtime.start()
    try:
        name = runtime.settings.topic(group)
        yield Replaying(
            ReplayTarget(
                name, runtime.name, redeliverer(runtime.consumer(specs[group]), name, runtime.name)
            ),
            runtime.pool,
        )
    finally:
        await runtime.stop()


@dataclass(frozen=True)
class Replaying:
    """A replay target and the pool to replay with."""

    target: ReplayTarget
    pool: Pool


async def _main(group: str, dry_run: bool) -> int:
    settings = ConnectionSettings()
    async with target_of(group, settings) as replaying:
        result = await replay(replaying.pool, settings, replaying.target, dry_run=dry_run)
    return 1 if result.failed else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``replay --group <group> [--dry-run]``; exit status 1 if any refused."""
    parser = argparse.ArgumentParser(prog="python -m clr_events.consumers.dlq")
    commands = parser.add_subparsers(dest="command", required=True)
    again = commands.add_parser("replay", help="redeliver a group's dead letters to it")
    again.add_argument("--group", required=True, help="e.g. assessments.reference")
    again.add_argument("--dry-run", action="store_true", help="list, change nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        status = asyncio.run(_main(args.group, args.dry_run))
    except LookupError as unknown:
        parser.error(str(unknown))
    raise SystemExit(status)


if __name__ == "__main__":
    main()
