"""Observability overhead (``make bench``): service throughput with tracing and metrics on
against the same system with them off.

Three installations of the whole system (every service, relays and consumers included,
as ``make run`` starts them), each on its own database and topics, one running at a time:
in each repeat every mode in turn is started, warmed up, measured at every concurrency and
stopped (the order rotates), so no mode shares the machine with another's idle processes:

- ``on``: per-request Prometheus metrics, and OpenTelemetry tracing of every request,
  relay send, consumer and projection (every trace sampled), exported over OTLP/HTTP
  (``OTEL_TRACES_EXPORTER=otlp``) to a sink in this process that decodes and counts the
  spans between trials (so the figures prove they were made); ``/metrics`` of every
  service is scraped every ``--scrape-seconds`` meanwhile;
- ``sampled``: the same with a tenth of the traces sampled (``parentbased_traceidratio``,
  0.1), as tracing is usually run;
- ``off``: ``CLR_HTTP_METRICS=0`` (no per-request metrics), no tracing, no scraping. The
  event store's append histogram is on in all three (one clock read per append).

The load is ``POST /organisations`` on collaboration (a new organisation per request),
from oha (``service_bench``'s load generator), closed loop at each ``--clients`` for
``--seconds``, ``--repeats`` times per mode; medians, and the CPU the processes used per
completed command. Then, in the same system, a fixed ``--rate`` of commands a second for
``--rate-seconds``: the five services' CPU per command there does not swing with the
closed loop's batch sizes and queueing (two repeats of one closed-loop point differ by up
to a quarter on this machine), and on a machine whose cores the system saturates, off's
CPU per command over a mode's is the capacity that mode keeps: the same ratio, estimated
steadily.
Target (issue 16): on >= 0.9x off at every concurrency. Results go to
bench/results/observability_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.service_bench import (
    ORGANISATION,
    Load,
    cpu_seconds,
    durable,
    load_generator,
    oha,
    trial,
)
from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.service.auth import AuthSettings, mint
from clr_events.settings import ConnectionSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "observability_bench.json"
CLIENTS = (1, 16, 64)
MODES = ("on", "sampled", "off")
TARGET = 0.9


class SpanSink(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver that counts the spans it is sent. It keeps the requests
    as they come and decodes them when asked (``spans``), between trials: a collector runs
    on a machine of its own, so its decoding is no part of the services' overhead."""

    lock = threading.Lock()
    received: list[bytes]
    counted = 0

    @property
    def spans(self) -> int:
        """Every span received so far (decoding what came since the last call)."""
        with self.lock:
            bodies, self.received = self.received, []
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            self.counted += sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
        return self.counted


class _Receive(BaseHTTPRequestHandler):
    server: SpanSink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def span_sink(port: int) -> Iterator[SpanSink]:
    sink = SpanSink(("127.0.0.1", port), _Receive)
    sink.received = []
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.shutdown()
        sink.server_close()


async def scrape(urls: list[str], every: float, stop: asyncio.Event) -> int:
    """GET /metrics of each service every ``every`` seconds until ``stop``; scrapes done."""
    done = 0
    async with httpx.AsyncClient(timeout=10.0) as client:
        while not stop.is_set():
            for url in urls:
                response = await client.get(f"{url}/metrics")
                response.raise_for_status()
                done += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    return done


async def at_rest(
    pids: dict[str, int], *, cores: float = 0.25, window: float = 0.5, timeout: float = 60.0
) -> float:
    """Wait until the system's processes use less than ``cores`` over ``window`` seconds
    (the relays and consumers have caught up with the last trial's commands); the seconds
    waited. Every trial starts from rest: a closed loop at saturation leaves a backlog
    downstream, and the next trial would share the cores with its catching up (one system's
    successive trials fell from 1,800 to 1,050 commands/s without it)."""
    started = loop_time()
    while loop_time() - started < timeout:
        before = cpu_seconds(pids)
        await asyncio.sleep(window)
        after = cpu_seconds(pids)
        if sum(after[n] - before[n] for n in pids) < cores * window:
            return loop_time() - started
    print(f"  not at rest after {timeout:.0f} s; measuring anyway", flush=True)
    return loop_time() - started


def loop_time() -> float:
    """The running loop's clock."""
    return asyncio.get_running_loop().time()


async def run_trial(
    mode: str,
    load: Load,
    clients: int,
    token: str,
    args: argparse.Namespace,
    urls: list[str],
    pids: dict[str, int],
) -> dict[str, Any]:
    """One closed-loop trial from rest, with the CPU the system used per completed command
    (``with_cpu``: relays, consumers and read models included)."""
    settled = await at_rest(pids)
    before = cpu_seconds(pids)
    stop = asyncio.Event()
    scraper = (
        asyncio.ensure_future(scrape(urls, args.scrape_seconds, stop)) if mode != "off" else None
    )
    try:
        report = await asyncio.to_thread(oha, load, clients, args.seconds, token)
    finally:
        stop.set()
    figures = trial(report, args.seconds)
    figures["scrapes"] = await scraper if scraper is not None else 0
    figures["settled_s"] = settled
    return await with_cpu(figures, before, pids, args.seconds)


async def fixed_rate(
    load: Load, token: str, args: argparse.Namespace, pids: dict[str, int]
) -> dict[str, Any]:
    """``--rate`` commands a second for ``--rate-seconds`` (16 connections), with the CPU
    the system used per completed command (``with_cpu``), from rest."""
    await at_rest(pids)
    before = cpu_seconds(pids)
    report = await asyncio.to_thread(oha, load, 16, args.rate_seconds, token, rate=args.rate)
    return await with_cpu(trial(report, args.rate_seconds), before, pids, args.rate_seconds)


async def with_cpu(
    figures: dict[str, Any], before: dict[str, float], pids: dict[str, int], seconds: float
) -> dict[str, Any]:
    """A trial's figures with the CPU used per completed command since ``before``, a second
    after the load (what the commands set off downstream, mostly): ``cpu_ms_per_ok``
    collaboration's, ``system_cpu_ms_per_ok`` all five services'."""
    await asyncio.sleep(1.0)
    after = cpu_seconds(pids)
    done = max(figures["ok_per_s"] * seconds, 1.0)
    figures["cpu_ms_per_ok"] = 1000 * (after["collaboration"] - before["collaboration"]) / done
    figures["system_cpu_ms_per_ok"] = 1000 * sum(after[n] - before[n] for n in pids) / done
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--scrape-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=600.0, help="commands/s, fixed phase")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(os.environ.get("CLR_BENCH_PORT_BASE", "8400")),
        help="on: base+0..4, sampled: base+10..14, off: base+20..24, the span sink: base+30",
    )
    args = parser.parse_args()
    load_generator()
    base = ConnectionSettings()
    await durable(base.database_url)
    secret = secrets.token_hex(32)
    token = mint("bench", ["registry_admin"], AuthSettings(secret=secret))
    folder = Path(tempfile.mkdtemp(prefix="clr-observability-bench-"))
    body = folder / "organisation.json"
    body.write_text(json.dumps(ORGANISATION))
    sink_port = args.port_base + 30
    extra = {
        "on": {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        },
        "off": {"CLR_HTTP_METRICS": "0"},
        # as tracing is usually run: a tenth of the traces (what a caller samples, kept)
        "sampled": {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        },
    }
    installations = {mode: await install(base, f"clr_obench_{mode}") for mode in MODES}
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "settings": vars(args)}
    trials: dict[int, dict[str, list[dict[str, Any]]]] = {
        c: {m: [] for m in MODES} for c in args.clients
    }
    runs = []
    at_rate: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    try:
        with span_sink(sink_port) as sink:
            for repeat in range(args.repeats):
                for mode in MODES[repeat % 3 :] + MODES[: repeat % 3]:  # each first once
                    # one system on the machine at a time: started, warmed up, measured at
                    # every concurrency, stopped
                    i = MODES.index(mode)
                    ports = {
                        name: args.port_base + 10 * i + port - 8100
                        for name, port in supervisor.SERVICES.items()
                    }
                    env = service_env(installations[mode], secret) | extra[mode]
                    logs = folder / f"{mode}-{repeat}"
                    logs.mkdir()
                    running = supervisor.start(logs, ports=ports, env=env)
                    try:
                        load = Load(
                            f"{running.urls['collaboration']}/organisations", ["-D", str(body)]
                        )
                        pids = {name: p.pid for name, p in running.processes.items()}
                        oha(load, 4, 2.0, token)  # warm up
                        for clients in args.clients:
                            spans_before = sink.spans
                            figures = await run_trial(
                                mode, load, clients, token, args, list(running.urls.values()), pids
                            )
                            figures["spans_exported"] = sink.spans - spans_before
                            trials[clients][mode].append(figures)
                            runs.append({"clients": clients, "mode": mode, **figures})
                            print(
                                f"  {clients:>2} clients {mode:<7} {figures['ok_per_s']:7.0f}"
                                f" 2xx/s  p50 {figures['p50_ms']:6.1f}"
                                f"  p99 {figures['p99_ms']:7.1f} ms"
                                f"  cpu ms/cmd {figures['cpu_ms_per_ok']:.2f} here,"
                                f" {figures['system_cpu_ms_per_ok']:.2f} system"
                                f"  {figures['statuses']}  spans {figures['spans_exported']}"
                                f"  scrapes {figures['scrapes']}"
                                f"  rest after {figures['settled_s']:.1f} s",
                                flush=True,
                            )
                        figures = await fixed_rate(load, token, args, pids)
                        at_rate[mode].append(figures)
                        runs.append({"rate": args.rate, "mode": mode, **figures})
                        print(
                            f"  {args.rate:.0f}/s fixed {mode:<7} {figures['ok_per_s']:7.0f} 2xx/s"
                            f"  cpu ms/cmd {figures['system_cpu_ms_per_ok']:.2f} system",
                            flush=True,
                        )
                        await asyncio.sleep(6)  # the batch span processors' last exports
                    finally:
                        running.stop()
            results["spans_exported"] = sink.spans
    finally:
        for settings in installations.values():
            await uninstall(base, settings)
    summary = {
        clients: {
            m: {
                "ok_per_s": statistics.median(t["ok_per_s"] for t in by_mode[m]),
                "p50_ms": statistics.median(t["p50_ms"] for t in by_mode[m]),
                "p99_ms": statistics.median(t["p99_ms"] for t in by_mode[m]),
                "runs_ok_per_s": [round(t["ok_per_s"]) for t in by_mode[m]],
                "cpu_ms_per_ok": statistics.median(t["cpu_ms_per_ok"] for t in by_mode[m]),
                "system_cpu_ms_per_ok": statistics.median(
                    t["system_cpu_ms_per_ok"] for t in by_mode[m]
                ),
            }
            for m in MODES
        }
        for clients, by_mode in trials.items()
    }
    lines = [
        "observability on vs off: POST /organisations (collaboration), completed/s, medians;"
        " cpu ms: collaboration's CPU per completed command, system: all five services'",
        f"{'clients':>7}  {'mode':<5}{'2xx/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'cpu ms':>8}{'system':>8}   runs",
    ]
    ratios = {}
    for clients, by_mode in summary.items():
        for mode in MODES:
            s = by_mode[mode]
            lines.append(
                f"{clients:>7}  {mode:<5}{s['ok_per_s']:9.0f}{s['p50_ms']:9.1f}{s['p99_ms']:9.1f}"
                f"{s['cpu_ms_per_ok']:8.2f}{s['system_cpu_ms_per_ok']:8.2f}"
                f"   {', '.join(map(str, s['runs_ok_per_s']))}"
            )
        ratios[clients] = {
            mode: by_mode[mode]["ok_per_s"] / by_mode["off"]["ok_per_s"] for mode in MODES[:2]
        }
    met = {mode: all(r[mode] >= TARGET for r in ratios.values()) for mode in MODES[:2]}
    for mode in MODES[:2]:
        lines += [
            f"  {mode} / off by clients: "
            + ", ".join(f"{c}: {r[mode]:.2f}" for c, r in ratios.items()),
            f"  target {mode} >= {TARGET}x off at every concurrency:"
            f" {'met' if met[mode] else 'NOT MET'}",
        ]
    cpu_at_rate = {
        m: statistics.median(t["system_cpu_ms_per_ok"] for t in at_rate[m]) for m in MODES
    }
    capacity = {m: cpu_at_rate["off"] / cpu_at_rate[m] for m in MODES[:2]}

    def repeats(mode: str) -> str:
        return ", ".join(f"{t['system_cpu_ms_per_ok']:.3f}" for t in at_rate[mode])

    lines += [
        f"  at a fixed {args.rate:.0f} commands/s, the five services' CPU ms per command: "
        + ", ".join(f"{m} {cpu_at_rate[m]:.3f} ({repeats(m)})" for m in MODES),
        "  capacity kept at the CPU (off's CPU per command / the mode's): "
        + ", ".join(f"{m} {capacity[m]:.2f}" for m in MODES[:2]),
        f"  spans exported by the traced system: {results['spans_exported']}",
    ]
    print("\n".join(lines))
    results |= {
        "summary": {str(c): s for c, s in summary.items()},
        "ratios": {str(c): r for c, r in ratios.items()},
        "targets_met": met,
        "fixed_rate": {"rate": args.rate, "cpu_ms_per_ok": cpu_at_rate, "capacity": capacity},
        "runs": runs,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print("\nwritten: bench/results/observability_bench.json")


if __name__ == "__main__":
    asyncio.run(main())
