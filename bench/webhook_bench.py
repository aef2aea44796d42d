"""Webhook delivery benchmark (``make bench``): measured here, never asserted.

Every service runs as its own process (fresh database, its own topics); a local receiver
(aiohttp, in a process of its own, answering 200 at once: ``tests/e2e/receiver.py``)
stands for the platforms. Times are wall-clock (one machine, two processes).

1. Latency at a steady rate: ``--subscriptions`` webhook subscriptions (10) follow the feed
   while label record corrections (each a public event) are sent at ``--rate`` per second
   (100) for ``--seconds``; beside them one Server-Sent Events client follows
   ``/api/feed/stream``, the same path without webhooks. Reported: p50/p99 from a
   command's acceptance (HTTP 201) to its event delivered to each subscription, and to
   its event seen on the SSE stream, and the median of the subscriptions' own p99s.
2. Throughput: events/s to the local receiver when one subscription, then ten at once,
   replay the whole feed from position 0; against one SSE client reading the same feed
   from 0 (the reference: the same events out of the same store, without signatures,
   per-record lanes or cursor writes).

Results go to bench/results/webhook_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.store_bench import percentile
from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.settings import ConnectionSettings
from tests.e2e import scenario
from tests.e2e.conftest import System

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "webhook_bench.json"
PORTS = {name: port + 200 for name, port in supervisor.SERVICES.items()}
RECEIVER_PORT = 8390
TARGET_P99_MS = 500.0
ADMIN = "registry_admin"


class Receiver:
    """The receiver's process, and what arrived there: (path, webhook-id, correlation id,
    time) rows, fetched as needed."""

    def __init__(self, port: int, client: httpx.AsyncClient) -> None:
        self.port = port
        self.client = client
        self.rows: list[tuple[str, str, str, float]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.receiver", "--port", str(port)]
        )

    def url(self, path: str) -> str:
        """The endpoint URL of ``path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def ready(self) -> None:
        """Until it answers."""
        for _ in range(100):
            try:
                await self.client.get(f"http://127.0.0.1:{self.port}/_arrivals?from=0")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the receiver did not start")

    async def fetch(self) -> list[tuple[str, str, str, float]]:
        """Every arrival so far."""
        response = await self.client.get(
            f"http://127.0.0.1:{self.port}/_arrivals?from={len(self.rows)}"
        )
        self.rows += [tuple(r) for r in response.json()]
        return self.rows

    def stop(self) -> None:
        """End its process."""
        self.process.terminate()
        self.process.wait(10)


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "n": len(values)}


async def _sse(
    client: httpx.AsyncClient, url: str, after: int, seen: dict[str, float], stop: asyncio.Event
) -> int:
    """Follow the event stream from ``after``; the time each correlation id is first seen.
    Returns the events read."""
    count = 0
    async with client.stream("GET", f"{url}/api/feed/stream?after={after}", timeout=None) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                event = orjson.loads(line[6:])
                seen.setdefault(event.get("correlationid") or event["id"], time.time())
                count += 1
            if stop.is_set():
                return count
    return count


async def _head(system: System) -> int:
    page = (await system.get("projections", "/api/feed?after=0&limit=1")).json()
    return int(page["head"])


async def _feed_size(system: System) -> int:
    total, after = 0, 0
    while True:
        page = (await system.get("projections", f"/api/feed?after={after}&limit=1000")).json()
        if not page["events"]:
            return total
        total += len(page["events"])
        after = page["next"]


async def latency(
    system: System, receiver: Receiver, labels: int, subscriptions: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Corrections at ``rate``/s; accepted -> delivered (each subscription) and -> on SSE."""
    person = await scenario.expert(system, "AT", ["benchmarking_expert"], "2024-01-02")
    orgs = [await scenario.organisation(system, "DE", "2024-01-10") for _ in range(labels)]
    await scenario.known_to_assessments(system, orgs, [person])
    for org in orgs:
        await scenario.bronze(system, org, person, "2025-06-03", "2025-06-20")

    async def all_in_feed() -> bool:
        return await _feed_size(system) >= labels

    await system.until(all_in_feed, "the awards in the feed", timeout=120)
    head = await _head(system)
    paths = [f"/s{n}" for n in range(subscriptions)]
    for path in paths:
        response = await system.post(
            "projections", "/webhooks", {"url": receiver.url(path), "after": head}, ADMIN
        )
        assert response.status_code == 201, response.text
    accepted: dict[str, float] = {}
    statuses: Counter[int] = Counter()
    sse_seen: dict[str, float] = {}
    stop = asyncio.Event()
    follower = asyncio.create_task(
        _sse(system.client, system.urls["projections"], head, sse_seen, stop)
    )

    auth = system.auth("labelling_board")  # one token: minting one per command costs CPU

    async def correct(org: str, valid_until: str) -> None:
        correlation = str(uuid.uuid4())
        try:
            response = await system.client.post(
                system.urls["label_decisions"] + f"/labels/{org}/bronze/corrections",
                json={"valid_until": valid_until, "reason": "bench"},
                headers={**auth, "X-Correlation-ID": correlation},
            )
        except httpx.TransportError:  # a kept-alive connection closed under us: counted as 0
            statuses[0] += 1
            return
        statuses[response.status_code] += 1
        if response.status_code == 201:
            accepted[correlation] = time.time()

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    deadline = start + seconds
    n = 0
    while time.perf_counter() < deadline:
        org = orgs[n % labels]
        valid_until = str(date(2027, 1, 1) + timedelta(days=n // labels))  # always a change
        tasks.append(asyncio.create_task(correct(org, valid_until)))
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
    await asyncio.gather(*tasks)

    async def delivered() -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {path: {} for path in paths}
        for path, _, correlation, at in await receiver.fetch():
            if path in out:
                out[path].setdefault(correlation or "", at)
        return out

    async def everything_arrived() -> bool:
        got = await delivered()
        return all(len(got[p].keys() & accepted.keys()) >= len(accepted) for p in paths) and (
            len(sse_seen.keys() & accepted.keys()) >= len(accepted)
        )

    await system.until(everything_arrived, "every event delivered and streamed", timeout=120)
    stop.set()
    follower.cancel()
    got = await delivered()
    per_sub = {p: [1000 * (got[p][c] - accepted[c]) for c in accepted] for p in paths}
    every = [v for values in per_sub.values() for v in values]
    sse = [1000 * (sse_seen[c] - accepted[c]) for c in accepted]
    return {
        "commands_sent": n,
        "commands_accepted": len(accepted),
        "responses": dict(sorted(statuses.items())),
        "rate_per_s": n / seconds,
        "subscriptions": subscriptions,
        "accepted_to_delivered_ms": _ms(every),
        "median_of_subscription_p99_ms": statistics.median(
            percentile(values, 0.99) for values in per_sub.values()
        ),
        "accepted_to_sse_ms": _ms(sse),
    }


async def throughput(system: System, receiver: Receiver, subscriptions: int) -> dict[str, Any]:
    """``subscriptions`` replaying the whole feed from 0 at once; events/s to the receiver."""
    total = await _feed_size(system)
    tag = uuid.uuid4().hex[:6]
    paths = [f"/replay-{tag}-{n}" for n in range(subscriptions)]
    mark = len(await receiver.fetch())
    start = time.time()
    for path in paths:
        response = await system.post(
            "projections", "/webhooks", {"url": receiver.url(path), "after": 0}, ADMIN
        )
        assert response.status_code == 201, response.text

    async def done() -> bool:
        counts = Counter(row[0] for row in (await receiver.fetch())[mark:])
        return all(counts[p] >= total for p in paths)

    await system.until(done, "the replays delivered", timeout=600)
    last = max(row[3] for row in receiver.rows[mark:])
    elapsed = last - start
    return {
        "subscriptions": subscriptions,
        "events_each": total,
        "seconds": elapsed,
        "events_per_s": subscriptions * total / elapsed,
    }


async def sse_throughput(system: System) -> dict[str, Any]:
    """One SSE client reading the whole feed from 0; events/s."""
    total = await _feed_size(system)
    seen: dict[str, float] = {}
    stop = asyncio.Event()
    start = time.time()
    reader = asyncio.create_task(_sse(system.client, system.urls["projections"], 0, seen, stop))

    async def done() -> bool:
        return len(seen) >= total

    await system.until(done, "the stream read", timeout=600)
    elapsed = max(seen.values()) - start
    stop.set()
    reader.cancel()
    return {"events": total, "seconds": elapsed, "events_per_s": total / elapsed}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--subscriptions", type=int, default=10)
    args = parser.parse_args()
    base = ConnectionSettings()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    settings = await install(base, "clr_bench_wh")
    receiver_client = httpx.AsyncClient(timeout=30.0)
    receiver = Receiver(RECEIVER_PORT, receiver_client)
    try:
        await receiver.ready()
        secret = secrets.token_hex(32)
        env = {**service_env(settings, secret), "CLR_WEBHOOK_ALLOW_PRIVATE_TARGETS": "1"}
        running = supervisor.start(
            Path(tempfile.mkdtemp(prefix="clr-bench-wh-")), ports=PORTS, env=env
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
                    f"webhooks: {args.rate:.0f} commands/s for {args.seconds:.0f} s,"
                    f" {args.subscriptions} subscriptions",
                    flush=True,
                )
                results["latency"] = await latency(
                    system, receiver, args.labels, args.subscriptions, args.rate, args.seconds
                )
                print("webhooks: replays of the whole feed", flush=True)
                results["sse_throughput"] = await sse_throughput(system)
                results["throughput_1"] = await throughput(system, receiver, 1)
                results["throughput_10"] = await throughput(system, receiver, 10)
        finally:
            running.stop()
    finally:
        receiver.stop()
        await receiver_client.aclose()
        await uninstall(base, settings)
    lat = results["latency"]
    hook, sse = lat["accepted_to_delivered_ms"], lat["accepted_to_sse_ms"]
    one, ten, ref = results["throughput_1"], results["throughput_10"], results["sse_throughput"]
    met = "met" if hook["p99"] <= TARGET_P99_MS else "NOT MET"
    lines = [
        "",
        f"webhooks at {lat['rate_per_s']:.0f} commands/s, {lat['subscriptions']} subscriptions:"
        f" {lat['commands_accepted']} accepted (responses by status: {lat['responses']})",
        f"  accepted -> delivered (every subscription)  p50 {hook['p50']:7.1f} ms"
        f"   p99 {hook['p99']:7.1f} ms   (target: p99 <= {TARGET_P99_MS:.0f} ms: {met})",
        f"  median of the subscriptions' p99           {lat['median_of_subscription_p99_ms']:7.1f}"
        " ms",
        f"  accepted -> seen on SSE (reference)         p50 {sse['p50']:7.1f} ms"
        f"   p99 {sse['p99']:7.1f} ms",
        f"  webhook p99 / SSE p99                       {hook['p99'] / sse['p99']:7.2f}",
        f"replay of the whole feed ({ref['events']} events) to the local receiver:",
        f"  1 subscription        {one['events_per_s']:9,.0f} events/s",
        f"  10 subscriptions      {ten['events_per_s']:9,.0f} events/s (all together)",
        f"  SSE, 1 client         {ref['events_per_s']:9,.0f} events/s (reference)",
        f"  1 subscription / SSE  {one['events_per_s'] / ref['events_per_s']:9.2f}",
    ]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
