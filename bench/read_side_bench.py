"""Read side benchmark (``make bench``): measured here, never asserted.

1. End-to-end latency at a steady rate: every service runs as its own process (fresh
   database, its own topics); commands (label record corrections, each a public event) are
   sent at ``--rate`` per second; one reader follows the public feed of the projections
   service. Reported: p50/p99 from sending a command, and from its acceptance (HTTP 201),
   to the event being visible in the public API.
2. Rebuild rate of the label register from offset zero (a synthetic history written
   straight to its topics), against the ceiling: a bare aiokafka consumer reading the same
   topics and asyncpg COPY writing the same rows (every row of the rebuilt read model, in
   tables of the same definition, its share after each fetched batch). Also shown: COPY
   of one narrow row per record, the reference of earlier runs. Ours runs with two lanes
   (concurrent transactions over shares of the partitions) in two processes (each over
   half of the partitions: the default), in one process (the default before), and with
   one lane in one process (a transaction at a time, as the ceiling). Interleaved
   repeats; medians. ``--rebuild-only`` skips the first part.

Results go to bench/results/read_side_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from bench.store_bench import percentile
from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.codec import to_kafka
from clr_events.contracts import collaboration, label_decisions
from clr_events.envelope import Envelope, schema_uri
from clr_events.kafka.producer import new_producer
from clr_events.registry import registry
from clr_events.settings import ConnectionSettings
from projections.core import create_generation
from projections.offsets import Offsets, topics_of
from projections.read_models.all import READ_MODELS
from projections.rebuild import rebuild
from tests.e2e import scenario
from tests.e2e.conftest import System

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "read_side_bench.json"
REBUILD_TARGET = 0.8  # our rebuild over the ceiling (aiokafka + COPY of the same rows)
PORTS = {name: port + 100 for name, port in supervisor.SERVICES.items()}


async def latency(system: System, labels: int, rate: float, seconds: float) -> dict[str, Any]:
    """Corrections at ``rate``/s; send->visible and accepted->visible in the public feed."""
    person = await scenario.expert(system, "AT", ["benchmarking_expert"], "2024-01-02")
    orgs = [await scenario.organisation(system, "DE", "2024-01-10") for _ in range(labels)]
    await scenario.known_to_assessments(system, orgs, [person])
    for org in orgs:
        await scenario.bronze(system, org, person, "2025-06-03", "2025-06-20")
    head = 0

    async def all_in_feed() -> bool:
        nonlocal head
        page = (await system.get("projections", "/api/feed?after=0&limit=1000")).json()
        head = page["head"]
        return len(page["events"]) >= labels

    await system.until(all_in_feed, "the awards in the feed", timeout=120)
    sent: dict[str, float] = {}
    accepted: dict[str, float] = {}
    visible: dict[str, float] = {}
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()

    async def follow() -> None:
        cursor = head
        while not stop.is_set() or len(visible) < len(accepted):
            page = (await system.get("projections", f"/api/feed?after={cursor}&limit=1000")).json()
            now = time.perf_counter()
            for event in page["events"]:
                visible.setdefault(event.get("correlationid") or "", now)
            cursor = page["next"]
            if not page["events"]:
                await asyncio.sleep(0.002)
            if stop.is_set() and time.perf_counter() > deadline + 30:
                return

    async def correct(org: str, valid_until: str) -> None:
        correlation = str(uuid.uuid4())
        sent[correlation] = time.perf_counter()
        response = await system.client.post(
            system.urls["label_decisions"] + f"/labels/{org}/bronze/corrections",
            json={"valid_until": valid_until, "reason": "bench"},
            headers={**system.auth("labelling_board"), "X-Correlation-ID": correlation},
        )
        statuses[response.status_code] += 1
        if response.status_code == 201:
            accepted[correlation] = time.perf_counter()

    follower = asyncio.create_task(follow())
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    deadline = start + seconds
    n = 0
    while time.perf_counter() < deadline:
        org = orgs[n % labels]
        valid_until = "2027-06-30" if (n // labels) % 2 else "2027-05-31"
        tasks.append(asyncio.create_task(correct(org, valid_until)))
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    stop.set()
    await follower
    from_send = [1000 * (visible[c] - sent[c]) for c in accepted if c in visible]
    from_accept = [1000 * (visible[c] - accepted[c]) for c in accepted if c in visible]
    return {
        "commands_sent": n,
        "commands_accepted": len(accepted),
        "responses": dict(sorted(statuses.items())),
        "visible": len(from_send),
        "rate_per_s": n / seconds,
        "send_to_visible_ms": {
            "p50": percentile(from_send, 0.5),
            "p99": percentile(from_send, 0.99),
        },
        "accepted_to_visible_ms": {
            "p50": percentile(from_accept, 0.5),
            "p99": percentile(from_accept, 0.99),
        },
    }


def _envelope(type_: str, subject: str, data: dict[str, Any], position: int, prev: int) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source=f"/{type_.split('.')[0]}",
        type=type_,
        subject=subject,
        time=datetime.now(UTC),
        dataschema=schema_uri(type_),
        data=data,
        streamversion=1,
        globalposition=position,
        prevposition=prev,
    )


async def write_history(
    kafka: ConnectionSettings, settings: ConnectionSettings, orgs: int, renewals: int
) -> int:
    """A synthetic history: orgs registered, each with an award and renewals. Returns events."""
    producer = new_producer(kafka)
    await producer.start()
    awarded_t = registry.type_of(label_decisions.LabelAwarded)
    renewed_t = registry.type_of(label_decisions.LabelRenewed)
    registered_t = registry.type_of(collaboration.OrganisationRegistered)
    position = count = 0
    pending = []

    async def send(topic: str, envelope: Envelope) -> None:
        record = to_kafka(envelope)
        pending.append(
            await producer.send(
                settings.topic(topic), record.value, key=record.key, headers=record.headers
            )
        )

    try:
        for i in range(orgs):
            org = f"bench-org-{i:06}"
            await send(
                "collaboration.events",
                _envelope(
                    registered_t,
                    f"organisation:{org}",
                    {"org_id": org, "name": f"Cluster {i}", "country": "DE", "sector": "Energy"},
                    i + 1,
                    i,
                ),
            )
            day = date(2012, 1, 1) + timedelta(days=i % 2000)
            until = day + timedelta(days=730)
            data = {
                "org_id": org,
                "level": "bronze",
                "assessment_id": f"a-{i}",
                "assessed_on": str(day),
                "awarded_on": str(day),
                "valid_until": str(until),
                "expert_ids": ["e-1"],
                "policy_version": "2026.1",
                "decided_by": "bench",
            }
            position += 1
            events = [(awarded_t, data)]
            for r in range(renewals):
                previous, until = until, until + timedelta(days=1095)
                events.append(
                    (
                        renewed_t,
                        {
                            **data,
                            "renewed_on": str(previous - timedelta(days=30 - r)),
                            "previous_valid_until": str(previous),
                            "valid_until": str(until),
                        },
                    )
                )
            for j, (type_, payload) in enumerate(events):
                if j:
                    position += 1
                await send(
                    "label_decisions.events",
                    _envelope(type_, f"{org}:bronze", payload, position, position - 1),
                )
            count += 1 + len(events)
            if len(pending) > 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


Rows = dict[str, list[tuple[Any, ...]]]
"""Table -> every row of a rebuilt generation of the label register."""


async def rebuilt_rows(database_url: str) -> Rows:
    """The rows the label register holds after a rebuild (read through its views)."""
    model = READ_MODELS["labels"]
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM projections.labels_{table}")]
            for table in model.tables
        }
    finally:
        await conn.close()


async def ceiling(
    database_url: str, settings: ConnectionSettings, rows: Rows | None = None
) -> dict[str, float]:
    """A bare aiokafka read of the label register's topics, writing by asyncpg COPY.

    With ``rows`` (the reference of the target): after each fetched batch, its share of the
    read model's own rows, into tables of the same definition and indexes, one transaction
    per batch. Without: one narrow row per record (topic, partition, offset, subject, type,
    data), the reference earlier runs used.
    """
    model = READ_MODELS["labels"]
    conn = await asyncpg.connect(database_url)
    async with conn.transaction():
        if rows is None:
            await conn.execute(
                "DROP TABLE IF EXISTS bench_ceiling; CREATE TABLE bench_ceiling (topic text,"
                " part int, off bigint, subject text, type text, data jsonb)"
            )
        else:  # generation 0 is never used by the service: no view points at it
            schema = await create_generation(conn, model, 0)
    consumer = AIOKafkaConsumer(
        **settings.kafka_options(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    offsets = Offsets(settings)
    await offsets.start()
    tps = await offsets.partitions(topics_of(model, settings))
    await offsets.stop()
    ends = await consumer.end_offsets(tps)
    total = sum(ends.values())
    consumer.assign(tps)
    await consumer.seek_to_beginning()
    started = time.perf_counter()
    seen = 0
    while seen < total:
        fetched = await consumer.getmany(timeout_ms=500, max_records=5000)
        records = [r for batch in fetched.values() for r in batch]
        if not records:
            continue
        if rows is None:
            narrow = []
            for r in records:
                headers = dict(r.headers)
                narrow.append(
                    (
                        r.topic,
                        r.partition,
                        r.offset,
                        headers.get("ce_subject", b"").decode(),
                        headers.get("ce_type", b"").decode(),
                        r.value.decode(),
                    )
                )
            await conn.copy_records_to_table("bench_ceiling", records=narrow)
        else:
            async with conn.transaction():
                for table, all_rows in rows.items():
                    n = len(all_rows)
                    share = all_rows[n * seen // total : n * (seen + len(records)) // total]
                    if share:
                        await conn.copy_records_to_table(table, records=share, schema_name=schema)
        seen += len(records)
    seconds = time.perf_counter() - started
    await consumer.stop()
    await conn.execute(
        "DROP TABLE bench_ceiling" if rows is None else f"DROP SCHEMA {schema} CASCADE"
    )
    await conn.close()
    return {"messages": seen, "seconds": seconds, "rate": seen / seconds}


async def rebuild_rate(
    database_url: str, settings: ConnectionSettings, lanes: int, processes: int = 2
) -> dict[str, float]:
    """Our rebuild of the label register, into a new generation, swapped in."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=lanes + 2)
    producer = new_producer(settings)
    await producer.start()
    try:
        result = await rebuild(
            pool,
            producer,
            settings,
            READ_MODELS["labels"],
            lanes=lanes,
            processes=processes,
            progress=lambda _: None,
        )
    finally:
        await producer.stop()
        await pool.close()
    return {"messages": result.messages, "seconds": result.seconds, "rate": result.rate}


def rates(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['rate']:,.0f}" for r in runs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--orgs", type=int, default=20000)
    parser.add_argument("--renewals", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rebuild-only", action="store_true", help="skip the latency run")
    args = parser.parse_args()
    base = ConnectionSettings()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    # the latency run and the rebuild each on their own installation: the synthetic
    # history's positions would collide with the real events of the latency run
    if not args.rebuild_only:
        settings = await install(base, "clr_bench")
        try:
            secret = secrets.token_hex(32)
            running = supervisor.start(
                Path(tempfile.mkdtemp(prefix="clr-bench-")),
                ports=PORTS,
                env=service_env(settings, secret),
            )
            try:
                async with httpx.AsyncClient(
                    timeout=30.0, limits=httpx.Limits(max_connections=200)
                ) as client:
                    system = System(
                        running.urls,
                        client,
                        base.kafka_bootstrap_servers,
                        secret,
                        settings.instance,
                        settings.database_url,
                    )
                    print(
                        f"latency: {args.rate:.0f} commands/s for {args.seconds:.0f} s", flush=True
                    )
                    results["latency"] = await latency(system, args.labels, args.rate, args.seconds)
            finally:
                running.stop()
        finally:
            await uninstall(base, settings)
    settings = await install(base, "clr_bench")
    try:
        print(f"rebuild: writing a history of {args.orgs} organisations ...", flush=True)
        results["history_events"] = await write_history(base, settings, args.orgs, args.renewals)
        runs: dict[str, list[dict[str, float]]] = {
            "rebuild": [],
            "one_process": [],
            "one_lane": [],
            "ceiling": [],
            "narrow": [],
        }
        rows: Rows = {}
        for _ in range(args.repeats):
            runs["rebuild"].append(await rebuild_rate(settings.database_url, settings, 2))
            runs["one_process"].append(await rebuild_rate(settings.database_url, settings, 2, 1))
            runs["one_lane"].append(await rebuild_rate(settings.database_url, settings, 1, 1))
            rows = rows or await rebuilt_rows(settings.database_url)
            runs["ceiling"].append(await ceiling(settings.database_url, settings, rows))
            runs["narrow"].append(await ceiling(settings.database_url, settings))
        results["rebuild"] = runs
        results["rebuilt_rows"] = {table: len(table_rows) for table, table_rows in rows.items()}
    finally:
        await uninstall(base, settings)
    ours = statistics.median(r["rate"] for r in runs["rebuild"])
    one_lane = statistics.median(r["rate"] for r in runs["one_lane"])
    one_process = statistics.median(r["rate"] for r in runs["one_process"])
    top = statistics.median(r["rate"] for r in runs["ceiling"])
    narrow = statistics.median(r["rate"] for r in runs["narrow"])
    lines = [""]
    if lat := results.get("latency"):
        send, accept = lat["send_to_visible_ms"], lat["accepted_to_visible_ms"]
        lines += [
            f"end-to-end at {lat['rate_per_s']:.0f} commands/s:"
            f" {lat['visible']} of {lat['commands_accepted']} accepted commands seen"
            f" (responses by status: {lat['responses']})",
            f"  sent -> visible in the public API      p50 {send['p50']:7.1f} ms"
            f"   p99 {send['p99']:7.1f} ms",
            f"  accepted -> visible in the public API  p50 {accept['p50']:7.1f} ms"
            f"   p99 {accept['p99']:7.1f} ms   (target: p99 < 500 ms)",
        ]
    lines += [
        f"rebuild of the label register from offset zero:"
        f" {runs['rebuild'][0]['messages']} messages, median of {args.repeats}",
        f"  ours (replay, apply_batch, swap), 2 processes of 2 lanes"
        f" {ours:10,.0f} messages/s   runs {rates(runs['rebuild'])}",
        f"  ours, 1 process of 2 lanes                {one_process:10,.0f} messages/s"
        f"   runs {rates(runs['one_process'])}",
        f"  ours, 1 process, 1 lane (one transaction at a time) {one_lane:10,.0f} messages/s"
        f"   runs {rates(runs['one_lane'])}",
        f"  ceiling: aiokafka + COPY of the same rows {top:10,.0f} messages/s"
        f"   runs {rates(runs['ceiling'])}",
        f"  aiokafka + COPY of one row per record     {narrow:10,.0f} messages/s"
        f"   runs {rates(runs['narrow'])}",
        f"  ours / ceiling                            {ours / top:10.2f}"
        f"   (target: >= {REBUILD_TARGET}: {'met' if ours / top >= REBUILD_TARGET else 'NOT MET'})",
        f"  ours, 1 process of 2 lanes / ceiling      {one_process / top:10.2f}",
        f"  ours, 1 lane / ceiling                    {one_lane / top:10.2f}",
        f"  ours / one row per record                 {ours / narrow:10.2f}",
    ]
    print("\n".join(lines))
    results["summary"] = {
        "rebuild_rate": ours,
        "ceiling_rate": top,
        "ratio": ours / top,
        "one_process_rate": one_process,
        "one_process_ratio": one_process / top,
        "one_lane_rate": one_lane,
        "one_lane_ratio": one_lane / top,
        "one_row_per_record_rate": narrow,
        "ratio_to_one_row_per_record": ours / narrow,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print("\nwritten: bench/results/read_side_bench.json")


if __name__ == "__main__":
    asyncio.run(main())
