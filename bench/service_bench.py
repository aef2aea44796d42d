"""Service benchmark (``make bench``): commands through HTTP, beside a bare endpoint.

Two commands, each measured against a bare FastAPI + asyncpg endpoint doing one durable
INSERT of the same body (``bench/bare_endpoint.py``, served the same way: uvicorn with the
services' settings, same host, same PostgreSQL):

- ``organisation``: ``POST /organisations`` on collaboration, no ``org_id`` (the service
  makes one), so every request registers a new organisation;
- ``correction``: ``POST /labels/{org}/bronze/corrections`` on label_decisions, over
  10^``--record-digits`` label records (1000) set up through the APIs first
  (organisations, an expert, approved Bronze benchmarkings, awarded through Kafka). Each
  request picks a record and a ``valid_until`` at random (oha's ``--rand-regex-url``, and
  ``-Z`` with one body a line): two clients correcting one record at once get a 409
  (expected version), a correction to the day it already has a 422; both are counted by
  status, and only 2xx count as done.

The load comes from oha, a compiled load generator (installed once into ``.local/bin``
by ``cargo install``), closed loop: each of ``c`` connections sends its next request when
the last one is answered, at 1, 4, 16 and 64 clients, ``--seconds`` per trial. Service and
bare endpoint alternate (which goes first alternates too), ``--repeats`` times per
concurrency; the table shows medians. The whole system runs as ``make run`` starts it
(every service, relays and consumers included) on an isolated installation: its own
database and topics, durable commits (the script refuses to run unless PostgreSQL has
``fsync`` and ``synchronous_commit`` on). The CPU the processes used is shown per trial,
and per completed command (a figure the noise of a shared machine moves less).

Targets (issue 18): the service at >= 0.5x the bare endpoint at every concurrency,
throughput not falling as clients grow (each level within 5 % of the best below it), p99
at 16 clients <= 50 ms. Results go to bench/results/service_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.service.auth import AuthSettings, mint
from clr_events.settings import ConnectionSettings
from tests.e2e import scenario
from tests.e2e.conftest import System

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "service_bench.json"
OHA_VERSION = "1.16.0"
TOOLS = ROOT / ".local"
OHA = TOOLS / "bin" / "oha"
CLIENTS = (1, 4, 16, 64)
COMMANDS = ("organisation", "correction")
SYSTEMS = ("service", "bare")
RATIO_TARGET = 0.5
P99_TARGET_MS = 50.0
P99_TARGET_CLIENTS = 16
FALL_TOLERANCE = 0.05
TICKS = os.sysconf("SC_CLK_TCK")

ORGANISATION = {
    "name": "Cluster of the service benchmark",
    "country": "DE",
    "sector": "Advanced manufacturing",
    "website": "https://bench.example.eu",
    "figures": scenario.figures(),
}
"""A new organisation's body: without ``org_id``, so the service makes a new one each time."""


def load_generator() -> Path:
    """oha, installed into ``.local/bin`` by cargo the first time (a few minutes).

    Raises:
        SystemExit: oha is missing and cargo is not there to build it.
    """
    if OHA.exists():
        return OHA
    cargo = shutil.which("cargo")
    if cargo is None:
        raise SystemExit(
            "the service benchmark needs oha: install Rust's cargo, or put oha on PATH"
        )
    print(f"installing oha {OHA_VERSION} into .local/bin (cargo install, once) ...", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [cargo, "install", "oha", "--version", OHA_VERSION, "--locked", "--root", str(TOOLS)],
        check=True,
    )
    print(f"oha installed in {time.perf_counter() - started:.0f} s", flush=True)
    return OHA


@dataclass(frozen=True)
class Load:
    """What oha sends: to ``url`` (a regular expression when ``regex``), with a body."""

    url: str
    body: list[str]
    """oha's body options: ``-D file`` (one body) or ``-Z file`` (a random line each time)."""
    regex: bool = False


def oha(
    load: Load, clients: int, seconds: float, token: str, *, rate: float | None = None
) -> dict[str, Any]:
    """One closed-loop trial (or, with ``rate``, one at that many requests a second in
    all); oha's JSON report plus the CPU seconds oha used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        str(OHA),
        "--no-tui",
        "--output-format",
        "json",
        "-z",
        f"{seconds}s",
        "-c",
        str(clients),
        *(["-q", str(rate)] if rate is not None else []),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-H",
        f"Authorization: Bearer {token}",
        *load.body,
        *(["--rand-regex-url"] if load.regex else []),
        load.url,
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report: dict[str, Any] = json.loads(done.stdout)
    report["load_generator_cpu_s"] = (after.ru_utime + after.ru_stime) - (
        before.ru_utime + before.ru_stime
    )
    return report


def trial(report: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The figures of one trial from oha's report: completed commands/s, latency, statuses."""
    statuses = {int(code): n for code, n in report.get("statusCodeDistribution", {}).items()}
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    percentiles = report.get("latencyPercentiles", {})
    return {
        "ok_per_s": ok / seconds,
        "p50_ms": 1000 * (percentiles.get("p50") or 0.0),
        "p99_ms": 1000 * (percentiles.get("p99") or 0.0),
        "statuses": statuses,
        "errors": report.get("errorDistribution", {}),
    }


def summarise(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats; statuses and errors added up."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for t in trials:
        statuses.update(t["statuses"])
        errors.update(t["errors"])
    return {
        "ok_per_s": statistics.median(t["ok_per_s"] for t in trials),
        "runs_ok_per_s": [round(t["ok_per_s"], 1) for t in trials],
        "p50_ms": statistics.median(t["p50_ms"] for t in trials),
        "p99_ms": statistics.median(t["p99_ms"] for t in trials),
        "cpu_ms_per_ok": statistics.median(t.get("cpu_ms_per_ok", 0.0) for t in trials),
        "machine_cpu_ms_per_ok": statistics.median(
            t.get("machine_cpu_ms_per_ok", 0.0) for t in trials
        ),
        "statuses": dict(sorted(statuses.items())),
        "errors": dict(errors),
    }


def verdicts(summary: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The targets against one command's medians (``summary[clients][system]``)."""
    clients = sorted(summary)
    ratios = {
        c: summary[c]["service"]["ok_per_s"] / summary[c]["bare"]["ok_per_s"] for c in clients
    }
    rates = [summary[c]["service"]["ok_per_s"] for c in clients]
    falls = [
        c for i, c in enumerate(clients) if i and rates[i] < (1 - FALL_TOLERANCE) * max(rates[:i])
    ]
    p99 = summary.get(P99_TARGET_CLIENTS, {}).get("service", {}).get("p99_ms")
    return {
        "ratios": ratios,
        "ratio_met": all(r >= RATIO_TARGET for r in ratios.values()),
        "falls_at": falls,
        "not_falling_met": not falls,
        "p99_at_16_ms": p99,
        "p99_met": p99 is not None and p99 <= P99_TARGET_MS,
    }


def met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def table(name: str, summary: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    """The printed table of one command, its ratios and targets."""
    lines = [
        f"{name}: completed commands per second (2xx), medians; cpu ms: the CPU the"
        " service's (or the bare endpoint's) process used per completed command; all ms:"
        " the whole machine's (PostgreSQL, Kafka, every service, relays, consumers;"
        " not oha)",
        f"{'clients':>7}  {'system':<8}{'2xx/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms':>8}"
        f"{'all ms':>8}  statuses (all repeats)   runs",
    ]
    for clients in sorted(summary):
        for system in SYSTEMS:
            s = summary[clients][system]
            statuses = ", ".join(f"{code}: {n}" for code, n in s["statuses"].items())
            errors = sum(s["errors"].values())
            lines.append(
                f"{clients:>7}  {system:<8}{s['ok_per_s']:9.0f}{s['p50_ms']:9.1f}{s['p99_ms']:9.1f}"
                f"{s['cpu_ms_per_ok']:8.2f}{s['machine_cpu_ms_per_ok']:8.2f}"
                f"  {statuses}{f' (+{errors} cut at the deadline or failed)' if errors else ''}"
                f"   {', '.join(f'{r:.0f}' for r in s['runs_ok_per_s'])}"
            )
    v = verdicts(summary)
    ratios = ", ".join(f"{c}: {r:.2f}" for c, r in v["ratios"].items())
    machine = ", ".join(
        f"{c}: {summary[c]['service']['machine_cpu_ms_per_ok'] / bare:.1f}x"
        for c in sorted(summary)
        if (bare := summary[c]["bare"]["machine_cpu_ms_per_ok"]) > 0
    )
    lines += [
        f"  service / bare by clients: {ratios}",
        f"  the whole machine's CPU per completed command, service / bare: {machine or '-'}",
        f"  target service >= {RATIO_TARGET}x bare at every concurrency: {met(v['ratio_met'])}",
        f"  target throughput not falling as clients grow (within {FALL_TOLERANCE:.0%}):"
        f" {met(v['not_falling_met'])}"
        + (f" (falls at {', '.join(map(str, v['falls_at']))} clients)" if v["falls_at"] else ""),
        f"  target p99 at {P99_TARGET_CLIENTS} clients <= {P99_TARGET_MS:.0f} ms: "
        + (
            f"{v['p99_at_16_ms']:.1f} ms, {met(v['p99_met'])}"
            if v["p99_at_16_ms"] is not None
            else f"not measured (no run at {P99_TARGET_CLIENTS} clients)"
        ),
    ]
    return lines


def machine_cpu_seconds() -> float:
    """CPU seconds the machine's processors have been busy (``/proc/stat``: user, nice,
    system, irq and softirq; not idle, I/O wait or time stolen by the hypervisor)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / TICKS


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far."""
    used = {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / TICKS
    return used


async def until_all(
    items: list[str], ready: Callable[[str], Awaitable[bool]], what: str, timeout: float = 300
) -> None:
    """Poll until ``ready`` holds for every item.

    Raises:
        TimeoutError: some never became ready.
    """
    pending = set(items)
    deadline = time.monotonic() + timeout
    while pending:
        checks = await asyncio.gather(*(ready(i) for i in sorted(pending)))
        pending -= {i for i, ok in zip(sorted(pending), checks, strict=True) if ok}
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(items)} never {what}")
        if pending:
            await asyncio.sleep(0.5)


async def label_records(system: System, digits: int) -> list[str]:
    """10^``digits`` organisations with a Bronze label, set up through the APIs; their ids
    (``sb`` and ``digits`` digits, so ``sb[0-9]{digits}`` matches every one and no other)."""
    gate = asyncio.Semaphore(8)
    person = await scenario.expert(system, "AT", ["benchmarking_expert"], "2024-01-02")

    async def organisation(i: int) -> str:
        async with gate:
            return await scenario.organisation(
                system, "DE", "2024-01-10", org_id=f"sb{i:0{digits}}"
            )

    orgs = list(await asyncio.gather(*(organisation(i) for i in range(10**digits))))

    async def known(org: str) -> bool:
        response = await system.get("assessments", f"/reference/organisations/{org}")
        return response.status_code == 200 and bool(response.json()["validated_on"])

    await until_all(orgs, known, "reached the assessments service")
    await scenario.known_to_assessments(system, orgs[:1], [person])

    async def bronze(org: str) -> None:
        async with gate:
            await scenario.bronze(system, org, person, "2025-06-03", "2025-06-20")

    await asyncio.gather(*(bronze(org) for org in orgs))

    async def labelled(org: str) -> bool:
        response = await system.get("label_decisions", f"/labels/{org}")
        return response.status_code == 200 and bool(response.json()["labels"])

    await until_all(orgs, labelled, "got their label")
    return orgs


def correction_bodies(folder: Path, days: int) -> Path:
    """One correction body a line, each with another ``valid_until``."""
    path = folder / "corrections.jsonl"
    first = date(2027, 1, 1)
    lines = (
        json.dumps({"valid_until": str(first + timedelta(days=d)), "reason": "service bench"})
        for d in range(days)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def start_bare(database_url: str, port: int, logs: Path) -> subprocess.Popen[bytes]:
    """The bare endpoint as its own process, like a service; returns when it answers.

    Raises:
        RuntimeError: it exited or did not answer within 30 s.
    """
    with (logs / "bare.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_endpoint"],
            env={
                **os.environ,
                "CLR_DATABASE_URL": database_url,
                "CLR_PORT": str(port),
                "CLR_LOG_LEVEL": "WARNING",
            },
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bare endpoint exited: see {logs / 'bare.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the bare endpoint did not answer in 30 s")


async def durable(database_url: str) -> None:
    """Refuse to measure anything but durable commits.

    Raises:
        SystemExit: fsync or synchronous_commit is off.
    """
    conn = await asyncpg.connect(database_url)
    try:
        settings = {n: await conn.fetchval(f"SHOW {n}") for n in ("fsync", "synchronous_commit")}
    finally:
        await conn.close()
    if settings != {"fsync": "on", "synchronous_commit": "on"}:
        raise SystemExit(f"the benchmark measures durable commits, but PostgreSQL has {settings}")


def measure(
    loads: dict[str, Load],
    token: str,
    pids: dict[str, int],
    target: str,
    args: argparse.Namespace,
) -> tuple[dict[int, dict[str, dict[str, Any]]], list[dict[str, Any]]]:
    """Every concurrency, service and bare alternating, ``args.repeats`` times."""
    runs: list[dict[str, Any]] = []
    for system in SYSTEMS:  # warm both up: connections, pools, caches
        oha(loads[system], 4, 2.0, token)
    summary: dict[int, dict[str, dict[str, Any]]] = {}
    for clients in args.clients:
        by_system: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
        for repeat in range(args.repeats):
            order = SYSTEMS if repeat % 2 == 0 else SYSTEMS[::-1]
            for system in order:
                before, machine_before = cpu_seconds(pids), machine_cpu_seconds()
                report = oha(loads[system], clients, args.seconds, token)
                after, machine_after = cpu_seconds(pids), machine_cpu_seconds()
                figures = trial(report, args.seconds)
                used = {n: (after[n] - before[n]) / args.seconds for n in pids}
                figures["cpu_cores"] = {
                    "target": used[target] if system == "service" else used["bare"],
                    "other_services": sum(v for n, v in used.items() if n not in (target, "bare")),
                    "load_generator": report["load_generator_cpu_s"] / args.seconds,
                    # everything but oha: PostgreSQL, Kafka, every service, relays, consumers
                    "machine": (machine_after - machine_before - report["load_generator_cpu_s"])
                    / args.seconds,
                }
                ok_per_s = max(figures["ok_per_s"], 1e-9)
                figures["cpu_ms_per_ok"] = 1000 * figures["cpu_cores"]["target"] / ok_per_s
                figures["machine_cpu_ms_per_ok"] = 1000 * figures["cpu_cores"]["machine"] / ok_per_s
                by_system[system].append(figures)
                runs.append({"clients": clients, "system": system, "repeat": repeat, **figures})
                print(
                    f"  {clients:>2} clients {system:<8} {figures['ok_per_s']:7.0f} 2xx/s"
                    f"  p50 {figures['p50_ms']:6.1f}  p99 {figures['p99_ms']:7.1f} ms"
                    f"  {figures['statuses']}  cores: {figures['cpu_cores']['target']:.2f}"
                    f" here, {figures['cpu_cores']['other_services']:.2f} other services,"
                    f" {figures['cpu_cores']['load_generator']:.2f} oha,"
                    f" {figures['cpu_cores']['machine']:.2f} the whole machine but oha",
                    flush=True,
                )
        summary[clients] = {s: summarise(by_system[s]) for s in SYSTEMS}
    return summary, runs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument(
        "--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS), help="what to measure"
    )
    parser.add_argument(
        "--record-digits", type=int, default=3, help="10^N label records to correct (ids sb000..)"
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(os.environ.get("CLR_BENCH_PORT_BASE", "8300")),
        help="the services listen on base+0..4 (projections first), the bare endpoint on base+9",
    )
    args = parser.parse_args()
    load_generator()
    base = ConnectionSettings()
    await durable(base.database_url)
    ports = {name: args.port_base + port - 8100 for name, port in supervisor.SERVICES.items()}
    bare_port = args.port_base + 9
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count()},
        "settings": dict(vars(args)),
        "load_generator": f"oha {OHA_VERSION}",
    }
    lines: list[str] = []
    settings = await install(base, "clr_sbench")
    folder = Path(tempfile.mkdtemp(prefix="clr-service-bench-"))
    secret = secrets.token_hex(32)
    running = supervisor.start(folder, ports=ports, env=service_env(settings, secret))
    bare: subprocess.Popen[bytes] | None = None
    try:
        bare = start_bare(settings.database_url, bare_port, folder)
        pids = {name: p.pid for name, p in running.processes.items()} | {"bare": bare.pid}
        token = mint("bench", ["registry_admin"], AuthSettings(secret=secret))
        bare_url = f"http://127.0.0.1:{bare_port}"
        async with httpx.AsyncClient(
            timeout=60.0, limits=httpx.Limits(max_connections=50)
        ) as client:
            system = System(
                running.urls,
                client,
                base.kafka_bootstrap_servers,
                secret,
                settings.instance,
                settings.database_url,
            )
            if "correction" in args.commands:
                records = 10**args.record_digits
                print(f"setting up {records} label records through the APIs ...", flush=True)
                started = time.perf_counter()
                await label_records(system, args.record_digits)
                results["setup_seconds"] = time.perf_counter() - started
        organisation = folder / "organisation.json"
        organisation.write_text(json.dumps(ORGANISATION))
        corrections = correction_bodies(folder, 1000)
        record = f"sb[0-9]{{{args.record_digits}}}"  # every id label_records made
        commands = {
            "organisation": (
                "collaboration",
                {
                    "service": Load(
                        f"{running.urls['collaboration']}/organisations", ["-D", str(organisation)]
                    ),
                    "bare": Load(f"{bare_url}/organisations", ["-D", str(organisation)]),
                },
            ),
            "correction": (
                "label_decisions",
                {
                    system_name: Load(
                        f"{url}/labels/{record}/bronze/corrections",  # oha: dots are dots
                        ["-Z", str(corrections)],
                        regex=True,
                    )
                    for system_name, url in (
                        ("service", running.urls["label_decisions"]),
                        ("bare", bare_url),
                    )
                },
            ),
        }
        for name in args.commands:
            target, loads = commands[name]
            print(f"{name}: {target} against the bare endpoint", flush=True)
            summary, runs = measure(loads, token, pids, target, args)
            results[name] = {
                "service": target,
                "summary": {str(c): s for c, s in summary.items()},
                "targets": verdicts(summary),
                "runs": runs,
            }
            lines += ["", *table(f"{name} ({target})", summary)]
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(20)
        running.stop()
        await uninstall(base, settings)
    print("\n".join(lines))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print("\nwritten: bench/results/service_bench.json")


if __name__ == "__main__":
    asyncio.run(main())
