"""Event store and relay benchmark (``make bench``): measured here, never asserted.

Every figure is measured in the same run against the same PostgreSQL server (durable:
fsync and synchronous_commit on, which this script checks) and the same Kafka broker:

- appends per second and p50/p99 latency, one event per append, with 1 and 16 concurrent
  writers, for this store, for the ``eventsourcing`` library's PostgreSQL recorder, and for
  raw asyncpg INSERTs of the same rows (the ceiling: no ordering or chain guarantee);
- reading all events in position order as ``StoredEvent``s, with the cyclic collector on
  and off, and with every event's data and metadata decoded (they are decoded on first
  use);
- relay publish rate against a raw aiokafka producer sending the same records;
- commit-to-Kafka latency of the relay at a steady rate;
- the lone writer's floor: PostgreSQL's pgbench (a C client, no Python) running the raw
  INSERT and this store's single-event append statement, one client, prepared.

Runs are time-boxed and interleaved (ours, library, raw, ours, ...) ``--repeats`` times;
the table shows medians and the spread. Results go to bench/results/store_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from clr_events.codec import KafkaRecord, to_kafka
from clr_events.kafka.producer import new_producer
from clr_events.kafka.topics import TopicSpec, ensure_topics
from clr_events.outbox.relay import PostgresRelayCheckpoint, Relay, publish_as_stored
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from clr_events.store.base import NewEvent
from clr_events.store.postgres import PostgresEventStore, sql_file

DATA = {"org_id": "org-000042", "level": "bronze", "valid_until": "2028-03-31", "note": "x" * 120}
TYPE = "bench.LabelAwarded.v1"
RESULTS = Path(__file__).parent / "results" / "store_bench.json"
PHASES = ("appends", "floor", "read", "relay", "latency")

READ_ALL_TARGET = 200_000  # decoded events/s, collector on
RELAY_TARGET = 0.7  # the relay's rate over a bare producer's, same records
LATENCY_TARGET_MS = 50.0  # commit -> on Kafka, p99, at --latency-rate

RAW_INSERT = (
    "INSERT INTO {schema}.raw_events (stream_id, version, event_id, type, schema_version,"
    " data, metadata, recorded_at) VALUES ($1, $2, $3, $4, 1, $5, $6, now())"
)
"""The ceiling's INSERT: stream, version, event id, type, data, metadata."""

AppendOnce = Callable[[int, int], Awaitable[None]]  # (writer, version) -> one append


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(append: AppendOnce, writers: int, seconds: float) -> dict[str, float]:
    """Each writer appends to its own stream, one event at a time, until time is up."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        version = 0
        while time.perf_counter() < deadline:
            version += 1
            start = time.perf_counter()
            await append(w, version)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    return {
        "appends_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


# ------------------------------------------------------------------- systems
async def ours(pool: Pool, schema: str) -> tuple[AppendOnce, Callable[[], Awaitable[None]]]:
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    run = uuid.uuid4().hex[:8]

    async def append(w: int, version: int) -> None:
        await store.append(f"{run}-{w}", version - 1, [NewEvent(TYPE, DATA, {"actor": "bench"})])

    return append, store.close


async def raw(pool: Pool, schema: str) -> tuple[AppendOnce, Callable[[], Awaitable[None]]]:
    """The ceiling: one autocommitted INSERT of the same row, no lock, no chain."""
    await pool.execute(f"""
        CREATE SCHEMA IF NOT EXISTS {schema};
        CREATE TABLE IF NOT EXISTS {schema}.raw_events (
            position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stream_id text NOT NULL, version integer NOT NULL, event_id uuid NOT NULL,
            type text NOT NULL, schema_version integer NOT NULL, data json NOT NULL,
            metadata json NOT NULL, recorded_at timestamptz NOT NULL,
            UNIQUE (stream_id, version))""")
    sql = RAW_INSERT.format(schema=schema)
    run = uuid.uuid4().hex[:8]
    metadata = orjson.dumps({"actor": "bench"}).decode()

    async def append(w: int, version: int) -> None:
        await pool.execute(
            sql, f"{run}-{w}", version, uuid.uuid4(), TYPE, orjson.dumps(DATA).decode(), metadata
        )

    return append, _nothing


async def _nothing() -> None:
    return None


class EventsourcingLibrary:
    """The eventsourcing library's PostgreSQL application recorder (psycopg 3, blocking)."""

    def __init__(self, database_url: str, schema: str, threads: int) -> None:
        from eventsourcing.persistence import StoredEvent as LibraryEvent
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        url = urlparse(database_url)
        self._datastore = PostgresDatastore(
            dbname=url.path.lstrip("/") or "postgres",
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password or "",
            pool_size=threads,
            schema=schema,
            originator_id_type="text",
        )
        self._recorder = PostgresApplicationRecorder(self._datastore)
        self._recorder.create_table()
        self._event = LibraryEvent
        self._executor = ThreadPoolExecutor(threads)
        self._run = uuid.uuid4().hex[:8]
        self._state = orjson.dumps(DATA)

    async def append(self, w: int, version: int) -> None:
        """From a worker thread, as an asyncio service has to call a blocking library."""
        event = self._event(f"{self._run}-{w}", version, TYPE, self._state)
        await asyncio.get_running_loop().run_in_executor(
            self._executor, self._recorder.insert_events, [event]
        )

    async def append_inline(self, w: int, version: int) -> None:
        """On the calling thread, blocking it: a lone synchronous writer, no thread hop."""
        event = self._event(f"{self._run}-inline-{w}", version, TYPE, self._state)
        self._recorder.insert_events([event])

    async def close(self) -> None:
        self._executor.shutdown()
        self._datastore.close()


# ------------------------------------------------------------------- phases
async def bench_appends(
    pool: Pool, database_url: str, repeats: int, seconds: float
) -> dict[str, Any]:
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    await pool.execute(
        "DROP SCHEMA IF EXISTS bench_ours CASCADE; DROP SCHEMA IF EXISTS bench_raw CASCADE;"
        " DROP SCHEMA IF EXISTS bench_es CASCADE; CREATE SCHEMA bench_es"
    )
    for writers in (1, 16):
        for repeat in range(repeats):
            library = EventsourcingLibrary(database_url, "bench_es", writers)
            systems: dict[str, tuple[AppendOnce, Callable[[], Awaitable[None]]]] = {
                "ours": await ours(pool, "bench_ours"),
                "eventsourcing": (library.append, library.close),
                "raw_asyncpg": await raw(pool, "bench_raw"),
            }
            if writers == 1:  # the library at its best, no thread hop (closed with the above)
                systems["eventsourcing_inline"] = (library.append_inline, _nothing)
            order = list(systems)
            order = order[repeat % len(order) :] + order[: repeat % len(order)]  # rotate the start
            for name in order:
                append, close = systems[name]
                figures = await drive(append, writers, seconds)
                results.setdefault(f"{writers}w", {}).setdefault(name, []).append(figures)
                print(
                    f"  {writers:>2} writer(s) {name:<21} rep {repeat + 1}:"
                    f" {figures['appends_per_s']:>8.0f}/s  p50 {figures['p50_ms']:.2f} ms"
                    f"  p99 {figures['p99_ms']:.2f} ms"
                )
            for _, close in systems.values():
                await close()
    return results


async def fill_for_reads(pool: Pool, events: int) -> None:
    """Without the append phase (``--only``): fill ``bench_ours`` with ``events`` events,
    as the append phase writes them (one event per append, a stream per writer)."""
    store = PostgresEventStore(pool, schema="bench_ours")
    await store.migrate()
    missing = events - await store.head_position()
    run = uuid.uuid4().hex[:8]

    async def writer(w: int) -> None:
        for version in range(missing // 16 + 1):
            await store.append(f"{run}-{w}", version, [NewEvent(TYPE, DATA, {"actor": "bench"})])

    if missing > 0:
        await asyncio.gather(*(writer(w) for w in range(16)))
    await store.close()


async def bench_read_all(pool: Pool, repeats: int) -> dict[str, list[float]]:
    """Read every event through ``replay()``, with the cyclic collector on and off.

    Off is how a replaying process such as the projections' rebuild runs; on is a process
    that leaves it alone. Both are printed: the store itself never touches the collector.
    A stored event decodes its data and metadata on first use, so a third run, collector
    on, uses both of every event: a reader that looks at everything.
    """
    # Read a settled table, as a replay of past events does: without this the reads race
    # the write phase's checkpoint and autovacuum, and pay its hint-bit writes.
    await pool.execute("VACUUM (ANALYZE) bench_ours.event_store")
    await pool.execute("CHECKPOINT")
    store = PostgresEventStore(pool, schema="bench_ours")
    head = await store.head_position()
    rates: dict[str, list[float]] = {"collector_on": [], "collector_off": [], "data_used": []}
    for _ in range(repeats):
        for mode in rates:
            gc.collect()  # start from a clean heap, not the garbage of the write phases
            if mode == "collector_off":
                gc.disable()
            try:
                start, count = time.perf_counter(), 0
                async for page in store.replay(0, 5000):
                    count += len(page)
                    if mode == "data_used":  # a reader that looks at every event's data
                        for stored in page:
                            stored.data  # noqa: B018
                            stored.metadata  # noqa: B018
                rates[mode].append(count / (time.perf_counter() - start))
            finally:
                gc.enable()
    print(
        f"  read all: {head} events, {statistics.median(rates['collector_on']):,.0f}"
        f" events/s (collector off: {statistics.median(rates['collector_off']):,.0f};"
        f" collector on, every event's data and metadata used:"
        f" {statistics.median(rates['data_used']):,.0f})"
    )
    return rates


async def _through_relay(relay: Relay, events: int) -> float:
    start = time.perf_counter()
    await relay.publish_available()
    return events / (time.perf_counter() - start)


async def _bare_producer(
    producer: AIOKafkaProducer, topic: str, records: list[KafkaRecord]
) -> float:
    start = time.perf_counter()
    futures = [await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records]
    await asyncio.gather(*futures)
    return len(records) / (time.perf_counter() - start)


async def bench_relay(
    pool: Pool, kafka: ConnectionSettings, repeats: int, events: int
) -> dict[str, list[float]]:
    """Publish the same ``events`` through the relay and through a bare producer."""
    store = PostgresEventStore(pool, schema="bench_relay")
    await pool.execute("DROP SCHEMA IF EXISTS bench_relay CASCADE")
    await store.migrate()
    await asyncio.gather(
        *(store.append(f"org-{i % 500}", None, [NewEvent(TYPE, DATA)]) for i in range(events))
    )
    translate = publish_as_stored("/bench")
    records = [to_kafka(translate(e)) for e in await store.read_all(0, events)]
    rates: dict[str, list[float]] = {"relay": [], "raw_producer": []}
    for repeat in range(repeats):
        topic = f"bench.relay.{uuid.uuid4().hex[:8]}"
        raw_topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka, [TopicSpec(topic, 6), TopicSpec(raw_topic, 6)])
        producer = new_producer(kafka)
        await producer.start()
        try:
            checkpoint = PostgresRelayCheckpoint(pool, "bench_relay", f"bench-{repeat}")
            await checkpoint.migrate()
            relay = Relay(store, checkpoint, producer, topic, translate)

            # interleaved: each goes first every other repeat
            runs = [
                ("relay", _through_relay(relay, events)),
                ("raw_producer", _bare_producer(producer, raw_topic, records)),
            ]
            for name, run in runs if repeat % 2 == 0 else runs[::-1]:
                rates[name].append(await run)
        finally:
            await producer.stop()
        print(
            f"  relay rep {repeat + 1}: {rates['relay'][-1]:>8.0f}/s   raw producer:"
            f" {rates['raw_producer'][-1]:>8.0f}/s"
        )
    await store.close()
    return rates


async def bench_relay_latency(
    pool: Pool, kafka: ConnectionSettings, rate: float, seconds: float
) -> dict[str, float]:
    """Commit-to-consumable latency through the relay at a steady append rate."""
    await pool.execute("DROP SCHEMA IF EXISTS bench_latency CASCADE")
    store = PostgresEventStore(pool, schema="bench_latency")
    await store.migrate()
    topic = f"bench.latency.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, 6)])
    producer = new_producer(kafka)
    consumer = AIOKafkaConsumer(
        topic, **kafka.kafka_options(), auto_offset_reset="earliest", fetch_max_wait_ms=5
    )
    await producer.start()
    await consumer.start()
    checkpoint = PostgresRelayCheckpoint(pool, "bench_latency", "bench")
    await checkpoint.migrate()
    stop = asyncio.Event()
    relay_task = asyncio.create_task(
        Relay(store, checkpoint, producer, topic, publish_as_stored("/bench")).run(stop)
    )
    committed: dict[str, float] = {}
    received: dict[str, float] = {}
    total = int(rate * seconds)

    async def consume() -> None:
        while len(received) < total:
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for record in batch:
                    received[dict(record.headers)["ce_id"].decode()] = now

    consuming = asyncio.create_task(consume())
    await asyncio.sleep(1.0)  # consumer joined, relay listening
    start = time.perf_counter()
    for i in range(total):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        event = NewEvent(TYPE, DATA)
        await store.append(f"org-{i % 50}", None, [event])
        committed[str(event.event_id)] = time.perf_counter()
    await asyncio.wait_for(consuming, 30)
    stop.set()
    await relay_task
    await consumer.stop()
    await producer.stop()
    await store.close()
    latencies = [received[k] - committed[k] for k in committed]
    figures = {
        "rate_per_s": rate,
        "events": total,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }
    print(
        f"  relay latency at {rate:.0f}/s: p50 {figures['p50_ms']:.1f} ms,"
        f" p99 {figures['p99_ms']:.1f} ms"
    )
    return figures


async def bench_floor(
    pool: Pool, database_url: str, repeats: int, seconds: int
) -> dict[str, list[float]]:
    """One append's latency without Python: pgbench runs the same SQL, one client.

    Into a schema of its own: the content digests are made up, so its chain is not the
    events' (the statement is what is timed, not the digest).
    """
    found = shutil.which("pgbench") or max(
        glob.glob("/usr/lib/postgresql/*/bin/pgbench"), default=""
    )
    if not found:
        print("  pgbench not found: the floor is not measured")
        return {}
    schema = "bench_floor"
    await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await raw(pool, schema)
    await PostgresEventStore(pool, schema=schema).migrate()
    stream, event_type = "('floor-' || :n)", f"'{TYPE}'"
    data = "'" + orjson.dumps(DATA).decode().replace("'", "''") + "'"
    metadata = """'{"actor": "bench"}'"""
    statement = _pgbench_sql(
        sql_file("append_one.sql", schema),  # parameters as pgbench literals and variables
        [stream, "NULL::integer", "gen_random_uuid()", event_type, "1", data, metadata,
         "now()", "sha256(:n::text::bytea)"],
    )  # fmt: skip
    raw_sql = _pgbench_sql(
        RAW_INSERT.format(schema=schema),
        [stream, "1", "gen_random_uuid()", event_type, data, metadata],
    )
    figures: dict[str, list[float]] = {"raw_insert_ms": [], "ours_statement_ms": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            for name, sql in (("raw_insert", raw_sql), ("ours_statement", statement)):
                script = Path(scratch) / f"{name}.sql"
                script.write_text(f"\\set n random(1, 9000000000000000000)\n{sql};\n")
                command = [found, "-n", "-M", "prepared", "-c", "1", "-T", str(seconds)]
                run = await asyncio.to_thread(
                    subprocess.run,
                    [*command, "-f", str(script), database_url],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                match = re.search(r"latency average = ([\d.]+) ms", run.stdout)
                assert match, run.stdout + run.stderr
                figures[f"{name}_ms"].append(float(match.group(1)))
            print(
                f"  floor rep {repeat + 1} (pgbench, no Python): raw INSERT"
                f" {figures['raw_insert_ms'][-1]:.3f} ms, our append statement"
                f" {figures['ours_statement_ms'][-1]:.3f} ms"
            )
    await pool.execute(f"DROP SCHEMA {schema} CASCADE")
    return figures


def _pgbench_sql(sql: str, values: list[str]) -> str:
    """``sql`` on one line (pgbench's format), ``$n`` replaced by ``values[n - 1]``."""
    return re.sub(r"\$(\d+)", lambda m: values[int(m.group(1)) - 1], " ".join(sql.splitlines()))


# ------------------------------------------------------------------- report
def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def spread(runs: list[dict[str, float]], key: str) -> str:
    values = [run[key] for run in runs]
    return f"{min(values):.0f}..{max(values):.0f}"


def report(
    appends: dict[str, Any],
    floor: dict[str, list[float]],
    reads: dict[str, list[float]],
    relay: dict[str, list[float]],
    latency: dict[str, float],
) -> dict[str, Any]:
    summary: dict[str, Any] = {"appends": {}, "ratios": {}}
    if appends:
        print("\nAppends, one event each (durable commits), medians over interleaved repeats")
        print(
            f"{'writers':<8}{'system':<22}{'appends/s':>11}{'range':>14}{'p50 ms':>9}{'p99 ms':>9}"
        )
        for key, systems in appends.items():
            for name, runs in systems.items():
                rate = median_of(runs, "appends_per_s")
                summary["appends"].setdefault(key, {})[name] = {
                    "appends_per_s": rate,
                    "p50_ms": median_of(runs, "p50_ms"),
                    "p99_ms": median_of(runs, "p99_ms"),
                    "runs": runs,
                }
                print(
                    f"{key:<8}{name:<22}{rate:>11.0f}{spread(runs, 'appends_per_s'):>14}"
                    f"{median_of(runs, 'p50_ms'):>9.2f}{median_of(runs, 'p99_ms'):>9.2f}"
                )
            figures = summary["appends"][key]
            ours = figures["ours"]["appends_per_s"]
            summary["ratios"][key] = {
                f"ours_over_{name}": ours / figures[name]["appends_per_s"]
                for name in figures
                if name != "ours"
            }
        print("\nRatios (throughput)")
        for key, ratios in summary["ratios"].items():
            print(
                f"  {key}: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items())
            )
    if floor:
        one_writer = summary["appends"]["1w"]
        summary["floor"] = {name: statistics.median(runs) for name, runs in floor.items()}
        needs = {
            name: 1000 / (5 * one_writer[name]["appends_per_s"])
            for name in ("eventsourcing", "eventsourcing_inline")
        }
        summary["floor"].update({f"five_times_{name}_ms": ms for name, ms in needs.items()})
        print(
            "\n1 writer without Python (pgbench, medians): raw INSERT"
            f" {summary['floor']['raw_insert_ms']:.3f} ms, our append statement"
            f" {summary['floor']['ours_statement_ms']:.3f} ms per append; 5x the library"
            " would need " + ", ".join(f"{ms:.3f} ms ({name})" for name, ms in needs.items())
        )
    if reads:
        summary["read_all_events_per_s"] = statistics.median(reads["collector_on"])
        summary["read_all_collector_off_events_per_s"] = statistics.median(reads["collector_off"])
        summary["read_all_runs"] = reads
        summary["read_all_data_used_events_per_s"] = statistics.median(reads["data_used"])
        print(
            "\nRead all in position order:"
            f" {summary['read_all_events_per_s']:,.0f} events/s"
            f" ({spread_of(reads['collector_on'])}); collector off, as a replaying process runs:"
            f" {summary['read_all_collector_off_events_per_s']:,.0f}"
            f" ({spread_of(reads['collector_off'])}); collector on, every event's data and"
            f" metadata decoded: {summary['read_all_data_used_events_per_s']:,.0f}"
            f" ({spread_of(reads['data_used'])})"
        )
        target(
            "read all, collector on",
            summary["read_all_events_per_s"] >= READ_ALL_TARGET,
            f">= {READ_ALL_TARGET:,} events/s",
        )
    if relay:
        ratios = [
            ours / bare for ours, bare in zip(relay["relay"], relay["raw_producer"], strict=True)
        ]
        summary["relay"] = {
            "relay_per_s": statistics.median(relay["relay"]),
            "raw_producer_per_s": statistics.median(relay["raw_producer"]),
            "ours_over_raw_producer": statistics.median(ratios),
            "runs": relay,
        }
        print(
            f"Relay: {summary['relay']['relay_per_s']:,.0f}/s"
            f" ({spread_of(relay['relay'])}) vs raw producer"
            f" {summary['relay']['raw_producer_per_s']:,.0f}/s"
            f" ({spread_of(relay['raw_producer'])}): median of the interleaved ratios"
            f" {summary['relay']['ours_over_raw_producer']:.2f}x"
            f" ({min(ratios):.2f}..{max(ratios):.2f})"
        )
        target(
            "relay over a bare producer",
            summary["relay"]["ours_over_raw_producer"] >= RELAY_TARGET,
            f">= {RELAY_TARGET}x",
        )
    if latency:
        summary["relay_latency"] = latency
        print(
            f"Relay commit-to-Kafka latency at {latency['rate_per_s']:.0f}/s:"
            f" p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms"
        )
        target(
            "relay latency p99",
            latency["p99_ms"] <= LATENCY_TARGET_MS,
            f"<= {LATENCY_TARGET_MS} ms at {latency['rate_per_s']:.0f}/s",
        )
    return summary


def spread_of(values: list[float]) -> str:
    return f"{min(values):,.0f}..{max(values):,.0f}"


def target(what: str, met: bool, goal: str) -> None:
    print(f"  target {what} {goal}: {'met' if met else 'NOT MET'}")


async def main() -> None:
    parser = argparse.ArgumentParser(description="Event store and relay benchmark")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per append run")
    parser.add_argument("--relay-events", type=int, default=20000)
    parser.add_argument("--latency-rate", type=float, default=200.0)
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases to run, of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--read-events",
        type=int,
        default=100_000,
        help="events to read when the append phase does not run (it writes about as many)",
    )
    args = parser.parse_args()
    phases = set(args.only.split(","))
    if unknown := phases - set(PHASES):
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}")
    settings = ConnectionSettings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=4, max_size=40)
    durable = {
        name: await pool.fetchval(f"SHOW {name}") for name in ("fsync", "synchronous_commit")
    }
    print(f"PostgreSQL {await pool.fetchval('SHOW server_version')}, {durable}")
    if set(durable.values()) != {"on"}:
        raise SystemExit("the benchmark measures durable commits: fsync and synchronous_commit on")
    appends, floor, reads, relay, latency = {}, {}, {}, {}, {}
    if "appends" in phases:
        appends = await bench_appends(pool, settings.database_url, args.repeats, args.seconds)
    if "floor" in phases and appends:
        floor = await bench_floor(pool, settings.database_url, args.repeats, round(args.seconds))
    if "read" in phases:
        if not appends:
            await fill_for_reads(pool, args.read_events)
        reads = await bench_read_all(pool, args.repeats)
    if "relay" in phases:
        relay = await bench_relay(pool, settings, args.repeats, args.relay_events)
    if "latency" in phases:
        latency = await bench_relay_latency(pool, settings, args.latency_rate, 5.0)
    summary = report(appends, floor, reads, relay, latency)
    summary["settings"] = {**vars(args), **durable}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print("\nwritten: bench/results/store_bench.json")
    for schema in ("bench_ours", "bench_raw", "bench_es", "bench_relay", "bench_latency"):
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
