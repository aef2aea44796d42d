"""Transparency log benchmark (``make bench``): measured here, never asserted.

- checkpoint cost: appends per second (16 writers, one event each, durable commits) with
  the checkpoint signer running in the same process (every 1,000 events or 1 s, re-hashing
  the new events, signing, storing, publishing to Kafka) against the same appends without
  it; interleaved off/on ``--repeats`` times, medians; target >= 0.95x;
- proofs at 1 M events: building the tree from 1 M chain hashes, the root, an inclusion
  and a consistency proof (time per proof, median of 1,000; size in bytes), and verifying
  them;
- ``clr-audit verify`` throughput on a synthetic 1 M-event bundle (a valid chain and a
  signed checkpoint at 1 M): events per second, in a process of its own.

Results go to bench/results/tlog_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from clr_events.kafka.topics import TopicSpec, ensure_topics
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from clr_events.store.base import NewEvent
from clr_events.store.hashing import GENESIS_HASH, chain, digest_of, format_time
from clr_events.store.postgres import PostgresEventStore
from clr_events.transparency.bundle import FORMAT, MANIFEST, event_line, store_files
from clr_events.transparency.log import (
    Checkpointer,
    CheckpointPublisher,
    TransparencyLog,
)
from clr_events.transparency.merkle import MerkleTree, verify_consistency, verify_inclusion
from clr_events.transparency.note import Checkpoint, SignerKey, sign_checkpoint

RESULTS = Path(__file__).parent / "results" / "tlog_bench.json"
DATA = {"org_id": "org-000042", "level": "bronze", "valid_until": "2028-03-31", "note": "x" * 120}
COST_TARGET = 0.95


async def appends(store: PostgresEventStore, writers: int, seconds: float) -> float:
    run = uuid.uuid4().hex[:8]
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        nonlocal done
        version = 0
        while time.perf_counter() < deadline:
            await store.append(f"{run}-{w}", version, [NewEvent("bench.T", DATA, {"a": "b"})])
            version += 1
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return done / (time.perf_counter() - start)


async def bench_cost(
    pool: Pool, settings: ConnectionSettings, repeats: int, seconds: float, writers: int
) -> dict[str, Any]:
    schema = f"bench_tlog_{uuid.uuid4().hex[:8]}"
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    tlog = TransparencyLog(pool, store, schema, f"bench.example/{schema}")
    await tlog.migrate()
    topic = f"{schema}.checkpoints"
    await ensure_topics(settings, [TopicSpec(topic, 1)])
    off: list[float] = []
    on: list[float] = []
    publisher = CheckpointPublisher(settings, schema, tlog.origin)
    signer = Checkpointer(
        tlog,
        SignerKey.generate(tlog.origin),
        every_events=1000,
        every_seconds=1.0,
        publish=publisher,
    )
    try:
        for _ in range(repeats):
            off.append(await appends(store, writers, seconds))
            # the signer keeps what it verified, as in a service, and first catches up with
            # the events appended while it was off
            stop = asyncio.Event()
            task = asyncio.ensure_future(signer.run(stop))
            await caught_up(signer, await store.head_position())
            on.append(await appends(store, writers, seconds))
            stop.set()
            await task
        checkpoints = len(await tlog.checkpoints(limit=100_000))
        await signer.close()
    finally:
        await store.close()
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
    return {
        "off": off,
        "on": on,
        "ratio": statistics.median(on) / statistics.median(off),
        "checkpoints_signed": checkpoints,
    }


def bench_proofs(size: int, samples: int) -> dict[str, Any]:
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size)]
    tree = MerkleTree()
    start = time.perf_counter()
    tree.extend(leaves)
    build = time.perf_counter() - start
    start = time.perf_counter()
    root = tree.root()
    root_s = time.perf_counter() - start
    rng = random.Random(9162)
    inclusion_times, inclusion_sizes, verify_times = [], [], []
    for _ in range(samples):
        index = rng.randrange(size)
        start = time.perf_counter()
        proof = tree.inclusion_proof(index)
        inclusion_times.append(time.perf_counter() - start)
        inclusion_sizes.append(32 * len(proof))
        start = time.perf_counter()
        assert verify_inclusion(index, size, tree.leaf(index), proof, root)
        verify_times.append(time.perf_counter() - start)
    consistency_times, consistency_sizes = [], []
    for _ in range(samples):
        first = rng.randrange(1, size)
        start = time.perf_counter()
        proof = tree.consistency_proof(first)
        consistency_times.append(time.perf_counter() - start)
        consistency_sizes.append(32 * len(proof))
    first = size // 3
    assert verify_consistency(first, size, tree.root(first), root, tree.consistency_proof(first))
    return {
        "events": size,
        "build_s": build,
        "root_ms": root_s * 1000,
        "inclusion_us": statistics.median(inclusion_times) * 1e6,
        "inclusion_bytes_max": max(inclusion_sizes),
        "inclusion_verify_us": statistics.median(verify_times) * 1e6,
        "consistency_us": statistics.median(consistency_times) * 1e6,
        "consistency_bytes_max": max(consistency_sizes),
        "tree_bytes": 64 * size,
    }


def synthetic_bundle(directory: Path, size: int) -> float:
    """A valid bundle of ``size`` events and a checkpoint at ``size``; seconds taken."""
    start = time.perf_counter()
    key = SignerKey.generate("bench.example/synthetic")
    files = store_files("synthetic")
    (directory / files["events"]).parent.mkdir(parents=True)
    previous = GENESIS_HASH
    tree = MerkleTree()
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    data = json.dumps(DATA, separators=(",", ":"))
    with (directory / files["events"]).open("wb") as handle:
        for position in range(1, size + 1):
            stream, event_id = f"org-{position % 5000}", str(uuid.UUID(int=position))
            at = format_time(moment + timedelta(microseconds=position))
            version = position // 5000 + 1
            texts = (stream, event_id, "bench.T", "1", data, '{"a":"b"}', at)
            previous = chain(previous, position, version, digest_of(texts))
            tree.append(previous)
            handle.write(
                event_line(position, stream, version, *texts[1:3], 1, *texts[4:], previous)
            )
    note = sign_checkpoint(Checkpoint(key.name, size, tree.root()), key).render()
    (directory / files["checkpoints"]).write_text(
        json.dumps({"tree_size": size, "note": note}) + "\n"
    )
    (directory / files["keys"]).write_text(key.verifier.text() + "\n")
    manifest = {"format": FORMAT, "stores": [{"name": "synthetic", "origin": key.name}]}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return time.perf_counter() - start


def bench_verify(size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(scratch) / "bundle"
        bundle.mkdir()
        made = synthetic_bundle(bundle, size)
        start = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "clr_events.transparency.audit",
                "verify",
                str(bundle),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        report = json.loads(done.stdout)
        assert done.returncode == 0 and report["ok"], done.stdout[-2000:] + done.stderr
        size_mb = (bundle / store_files("synthetic")["events"]).stat().st_size / 1e6
    return {
        "events": size,
        "bundle_mb": size_mb,
        "generate_s": made,
        "verify_s": report["seconds"],
        "process_s": wall,
        "events_per_s": size / report["seconds"],
    }


def report_cost(cost: dict[str, Any], writers: int, repeats: int) -> None:
    print(f"\nCheckpoint cost: appends/s, {writers} writers, durable, {repeats} interleaved runs")
    for name in ("off", "on"):
        runs = [round(x) for x in cost[name]]
        print(f"  checkpoints {name:3}  {statistics.median(cost[name]):9,.0f}  {runs}")
    met = "met" if cost["ratio"] >= COST_TARGET else "NOT met"
    print(f"  on / off = {cost['ratio']:.3f}x (target >= {COST_TARGET}x: {met})")
    print(f"  {cost['checkpoints_signed']} checkpoints signed")


def report_proofs(p: dict[str, Any]) -> None:
    print(f"\nProofs at {p['events']:,} events (in-memory tree, {p['tree_bytes'] / 1e6:.0f} MB)")
    print(f"  tree built from the chain hashes  {p['build_s']:.2f} s")
    print(f"  root                              {p['root_ms']:.3f} ms")
    print(
        f"  inclusion proof                   {p['inclusion_us']:.1f} us,"
        f" at most {p['inclusion_bytes_max']} bytes; verified in {p['inclusion_verify_us']:.1f} us"
    )
    print(
        f"  consistency proof                 {p['consistency_us']:.1f} us,"
        f" at most {p['consistency_bytes_max']} bytes"
    )


def report_verify(v: dict[str, Any]) -> None:
    print(
        f"\nclr-audit verify, synthetic bundle of {v['events']:,} events ({v['bundle_mb']:.0f} MB)"
    )
    print(
        f"  verified in {v['verify_s']:.1f} s ({v['process_s']:.1f} s with the process):"
        f" {v['events_per_s']:,.0f} events/s (the bundle made in {v['generate_s']:.1f} s)"
    )


async def caught_up(signer: Checkpointer, head: int) -> None:
    """Until the signer has signed the head (as a signer that never stopped)."""
    for _ in range(2400):
        if signer.signed >= head:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the signer did not catch up in 120 s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("cost", "proofs", "verify"), action="append")
    args = parser.parse_args()
    phases = args.only or ["cost", "proofs", "verify"]
    settings = ConnectionSettings()
    summary: dict[str, Any] = {"settings": vars(args)}
    if "cost" in phases:
        pool = await asyncpg.create_pool(settings.database_url, min_size=2, max_size=20)
        try:
            durable = {n: await pool.fetchval(f"SHOW {n}") for n in ("fsync", "synchronous_commit")}
            if set(durable.values()) != {"on"}:
                raise SystemExit(
                    "the benchmark measures durable commits: fsync and synchronous_commit on"
                )
            cost = await bench_cost(pool, settings, args.repeats, args.seconds, args.writers)
        finally:
            await pool.close()
        summary["cost"] = cost
        report_cost(cost, args.writers, args.repeats)
    if "proofs" in phases:
        summary["proofs"] = bench_proofs(args.events, 1000)
        report_proofs(summary["proofs"])
    if "verify" in phases:
        summary["verify"] = bench_verify(args.events)
        report_verify(summary["verify"])
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print("\nwritten: bench/results/tlog_bench.json")


if __name__ == "__main__":
    asyncio.run(main())
