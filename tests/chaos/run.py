"""The chaos suite: steady load with idempotent retrying clients while processes die.

``python -m tests.chaos.run [--full]`` starts its OWN PostgreSQL and Kafka
(``deploy/local/stack.sh`` with a state folder of its own and ports next to
``CLR_E2E_PORT_BASE``; the stack of ``make run`` and of the other tests is never touched),
a fresh installation and the five services under ``supervisor.Running.supervise``. Clients
register organisations (collaboration) and courses (training_certification), each command
with an ``Idempotency-Key``, retried on a refused connection, a timeout or a 5xx until it
is answered. Meanwhile each fault in turn: ``kill -9`` of a service (the supervisor
restarts it), of the PostgreSQL postmaster or of the Kafka broker (``stack.sh start``
brings them back). After each restart a marker organisation is registered; the time until
the public read side shows it is the fault's recovery time.

Afterwards, with the load stopped, it proves:

- nothing lost, nothing doubled: every accepted command has exactly one effect in its
  store (one stream per organisation and course), every answered key is in the
  idempotency table, and each public event is on its topic exactly once (by event id);
- the read model equals the store (the organisations the public side knows are the ones
  collaboration recorded);
- every store's hash chain verifies (``store.verify()``; label_decisions' over HTTP);
- while a process is away, every error answer is 503 with ``Retry-After`` (never a 500);
- CPU at rest: each service process uses under 5 % of a core over 5 s;

and prints the recovery time per fault. Without ``--full``: the five services and
PostgreSQL (what ``make test`` runs); with it, the broker too and longer load between
faults (``make chaos``). Exits 1 with the reasons when a proof fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.codec import from_kafka
from clr_events.service.auth import AuthSettings, mint
from clr_events.settings import ConnectionSettings
from clr_events.store.postgres import PostgresEventStore

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack.sh"
SERVICES = list(supervisor.SERVICES)
STORES = ["collaboration", "training_certification", "assessments", "label_decisions"]
CPU_AT_REST = 0.05
"""A service at rest uses less than this share of one core."""


def log(line: str) -> None:
    """A progress line (the suite runs for minutes)."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {line}", flush=True)  # noqa: T201


# ---------------------------------------------------------------------- the stack
@dataclass
class Stack:
    """A PostgreSQL and a Kafka of the suite's own (``stack.sh`` with its own state)."""

    state: Path
    base: int

    @property
    def environment(self) -> dict[str, str]:
        """``stack.sh``'s settings for this stack."""
        return {
            **os.environ,
            "CLR_STATE_DIR": str(self.state),
            "CLR_PG_PORT": str(self.base + 70),
            "CLR_KAFKA_PORT": str(self.base + 72),
            "CLR_KAFKA_CONTROLLER_PORT": str(self.base + 73),
        }

    def run(self, command: str) -> str:
        """``stack.sh <command>``; its standard output."""
        done = subprocess.run(
            [str(STACK), command],
            env=self.environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"stack.sh {command} failed:\n{done.stderr}")
        return done.stdout

    def start(self) -> dict[str, str]:
        """Start (or restart) both; the connection settings as variables."""
        libs = self.state / "kafka" / "libs"
        shared = ROOT / ".local" / "kafka" / "libs"
        if not libs.exists() and (shared / ".complete").exists():
            shutil.copytree(shared, libs)  # the jars only: no download for a second stack
        for attempt in range(30):
            try:
                self.run("start")
                break
            except RuntimeError:  # say, a killed postmaster's backends still leaving
                if attempt == 29:
                    raise
                time.sleep(0.5)
        values: dict[str, str] = {}
        for line in self.run("env").splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                values[name] = value
        return values

    def pid(self, which: str) -> int:
        """The PostgreSQL postmaster's or the Kafka broker's pid."""
        if which == "postgresql":
            return int((self.state / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        return int((self.state / "kafka" / "kafka.pid").read_text().strip())

    def kill(self, which: str) -> None:
        """``kill -9`` of the postmaster or the broker; returns when it is gone."""
        pid = self.pid(which)
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop both (their data stays in the state folder, deleted by the caller)."""
        try:
            self.run("stop")
        except RuntimeError as error:
            log(str(error))


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------- the load
@dataclass
class Load:
    """Clients sending commands with an Idempotency-Key each, retried until answered."""

    urls: dict[str, str]
    secret: str
    accepted: dict[str, set[str]] = field(default_factory=lambda: {"org": set(), "course": set()})
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def headers(self, key: str, role: str) -> dict[str, str]:
        """A token for ``role`` and the command's Idempotency-Key."""
        token = mint("chaos", [role], AuthSettings(secret=self.secret))
        return {"Authorization": f"Bearer {token}", "Idempotency-Key": key}

    async def command(
        self, client: httpx.AsyncClient, service: str, path: str, body: Any, key: str, role: str
    ) -> None:
        """Send until answered: a refused connection, a timeout or a 5xx is retried with
        the same key (so a command that took effect before its answer was lost is
        answered from the idempotency table, not applied again)."""
        while True:
            try:
                answer = await client.post(
                    self.urls[service] + path, json=body, headers=self.headers(key, role)
                )
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code < 500:
                if answer.status_code not in (200, 201):
                    self.refused.append(
                        f"{service}{path} {key}: {answer.status_code} {answer.text}"
                    )
                return
            self.retries += 1
            if answer is not None:  # a database away is 503 with Retry-After, never 500
                kind = f"{answer.status_code}" + (
                    "" if "Retry-After" in answer.headers else " without Retry-After"
                )
                self.errors[kind] += 1
                if kind != "503":
                    self.examples.setdefault(kind, f"{service}{path}: {answer.text[:300]}")
            await asyncio.sleep(0.2)

    async def organisation(self, client: httpx.AsyncClient, org_id: str) -> None:
        """Register an organisation."""
        body = {
            "org_id": org_id,
            "name": f"Cluster {org_id}",
            "country": "DE",
            "sector": "Advanced manufacturing",
            "website": f"https://{org_id}.example.eu",
            "figures": {
                "management_fte": 2.5,
                "committed_members": 60,
                "member_types": ["sme", "large_company", "research"],
                "english_website": True,
            },
        }
        await self.command(
            client, "collaboration", "/organisations", body, f"org:{org_id}", "collaboration_admin"
        )
        self.accepted["org"].add(org_id)

    async def course(self, client: httpx.AsyncClient, course_id: str) -> None:
        """Create a course."""
        body = {
            "course_id": course_id,
            "title": "ECEI Cluster Benchmarking Expert training",
            "kind": "benchmarking_tool_training",
            "starts_on": "2015-01-01",
        }
        await self.command(
            client,
            "training_certification",
            "/courses",
            body,
            f"course:{course_id}",
            "training_admin",
        )
        self.accepted["course"].add(course_id)

    async def client(self, number: int) -> None:
        """One client: an organisation and a course per round, until stopped."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            while not self.stop.is_set():
                suffix = f"{number}-{uuid.uuid4().hex[:10]}"
                await self.organisation(client, f"org-{suffix}")
                await self.course(client, f"course-{suffix}")
                await asyncio.sleep(0.05)


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> float | None:
    """Seconds until ``check`` holds (polled), or None at the timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if await check():
                return time.monotonic() - started
        except (httpx.HTTPError, OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.2)
    return None


# ----------------------------------------------------------------------- the run
@dataclass
class Chaos:
    """One run: the stack, the installation, the services, the load, the faults."""

    stack: Stack
    settings: ConnectionSettings
    running: supervisor.Running
    load: Load
    recoveries: list[tuple[str, float | None]] = field(default_factory=list)

    async def fault(self, which: str) -> None:
        """Kill one process, bring it back, measure until every service is ready and the
        read side shows a marker registered after the restart."""
        log(f"kill -9 {which}")
        if which in SERVICES:
            self.running.processes[which].kill()
            before = self.running.restarts.get(which, 0)

            async def restarted() -> bool:  # by the supervisor
                return self.running.restarts.get(which, 0) > before

            await until(restarted, 60.0)
        else:
            await asyncio.to_thread(self.stack.kill, which)
            await asyncio.sleep(1.0)  # the outage: clients retry meanwhile
            await asyncio.to_thread(self.stack.start)
        restarted_at = time.monotonic()
        marker = f"org-marker-{which}-{uuid.uuid4().hex[:6]}"
        async with httpx.AsyncClient(timeout=5.0) as client:
            await self.load.organisation(client, marker)

            async def visible() -> bool:
                urls = self.running.urls
                page = await client.get(f"{urls['projections']}/api/organisations/{marker}")
                ready = [await client.get(f"{url}/readyz") for url in urls.values()]
                return page.status_code == 200 and all(r.status_code == 200 for r in ready)

            seen = await until(visible, 180.0)
        recovery = None if seen is None else time.monotonic() - restarted_at
        self.recoveries.append((which, recovery))
        took = "never" if recovery is None else f"{recovery:.1f} s"
        log(f"{which}: caught up {took} after the restart")

    async def caught_up(self, pool: asyncpg.Pool[Any]) -> bool:
        """The public side knows every organisation collaboration recorded."""
        known = await pool.fetchval("SELECT count(*) FROM projections.organisations_orgs")
        recorded = await pool.fetchval(
            "SELECT count(DISTINCT stream_id) FROM collaboration.event_store"
            " WHERE stream_id LIKE 'organisation:%'"
        )
        return bool(known == recorded)

    async def prove(self) -> list[str]:
        """Every proof; the failures."""
        failures: list[str] = []
        log(f"answers retried: {dict(self.load.errors)}")
        wrong = {k: n for k, n in self.load.errors.items() if k != "503"}
        if wrong:
            failures.append(
                f"errors other than 503 with Retry-After: {wrong}, e.g. {self.load.examples}"
            )
        if self.load.refused:
            failures.append(f"{len(self.load.refused)} commands refused: {self.load.refused[:3]}")
        pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=4)
        assert pool is not None
        try:
            if await until(lambda: self.caught_up(pool), 120.0) is None:
                failures.append("the read side did not catch up with collaboration in 120 s")
            failures += await self._stores(pool)
            failures += await self._read_model(pool)
        finally:
            await pool.close()
        failures += await self._topics()
        failures += await self._chains()
        failures += await self._at_rest()
        return failures

    async def _stores(self, pool: asyncpg.Pool[Any]) -> list[str]:
        failures = []
        for kind, schema in (("org", "collaboration"), ("course", "training_certification")):
            prefix = "organisation" if kind == "org" else "course"
            rows = await pool.fetch(
                f"SELECT stream_id, count(*) FILTER (WHERE version = 1) AS created"
                f" FROM {schema}.event_store WHERE stream_id LIKE $1 GROUP BY stream_id",
                f"{prefix}:%",
            )
            stored = {r["stream_id"].split(":", 1)[1]: r["created"] for r in rows}
            accepted = self.load.accepted[kind]
            lost = accepted - set(stored)
            doubled = [k for k, n in stored.items() if n != 1]
            unknown = set(stored) - accepted
            log(f"{schema}: {len(accepted)} accepted, {len(stored)} stored")
            if lost:
                failures.append(
                    f"{schema}: {len(lost)} accepted commands lost, e.g. {sorted(lost)[:3]}"
                )
            if doubled or unknown:
                failures.append(
                    f"{schema}: doubled {doubled[:3]}, never answered {sorted(unknown)[:3]}"
                )
            keys = await pool.fetchval(
                f"SELECT count(*) FROM {schema}.idempotency_keys WHERE key LIKE $1", f"{kind}:%"
            )
            if keys != len(accepted):
                failures.append(f"{schema}: {keys} idempotency keys for {len(accepted)} commands")
        return failures

    async def _read_model(self, pool: asyncpg.Pool[Any]) -> list[str]:
        public = {
            r["org_id"]
            for r in await pool.fetch("SELECT org_id FROM projections.organisations_orgs")
        }
        accepted = self.load.accepted["org"]
        if public != accepted:
            return [
                f"read model differs from the store: {len(accepted - public)} missing,"
                f" {len(public - accepted)} extra"
            ]
        return []

    async def _topics(self) -> list[str]:
        """Each public event once on its topic (by event id), every registration published
        (a course's registration is private: its topic is checked for repeats only)."""
        failures: list[str] = []
        for service, created in (
            ("collaboration", "OrganisationRegistered.v1"),
            ("training_certification", None),
        ):
            topic = self.settings.topic(f"{service}.events")
            ids, subjects = await self._read_topic(topic, created)
            doubled = [i for i, n in ids.items() if n > 1]
            if doubled:
                failures.append(f"{topic}: {len(doubled)} event ids published more than once")
            missing = {f"organisation:{k}" for k in self.load.accepted["org"]} - subjects
            if created is not None and missing:
                failures.append(f"{topic}: {len(missing)} registrations never published")
            log(f"{topic}: {sum(ids.values())} records, {len(ids)} event ids")
        return failures

    async def _read_topic(self, topic: str, created: str | None) -> tuple[Counter[str], set[str]]:
        """How often each event id is on the topic, and the subjects of its creations."""
        consumer = AIOKafkaConsumer(
            topic,
            **self.settings.kafka_options(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        ids: Counter[str] = Counter()
        subjects: set[str] = set()
        try:
            ends = await consumer.end_offsets(list(consumer.assignment()) or [])
            while not ends:
                await asyncio.sleep(0.2)
                ends = await consumer.end_offsets(list(consumer.assignment()))
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        envelope = from_kafka(record.key, record.value, record.headers)
                        ids[envelope.id] += 1
                        if created is not None and envelope.type.endswith(created):
                            subjects.add(envelope.subject or "")
        finally:
            await consumer.stop()
        return ids, subjects

    async def _chains(self) -> list[str]:
        failures = []
        pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            for schema in STORES:
                report = await PostgresEventStore(pool, schema=schema).verify()
                if not report.ok:
                    failures.append(f"{schema}: chain broken: {report.problems[:3]}")
        finally:
            await pool.close()
        token = mint("chaos", ["auditor"], AuthSettings(secret=self.load.secret))
        async with httpx.AsyncClient(timeout=30.0) as client:
            answer = await client.get(
                f"{self.running.urls['label_decisions']}/verification",
                headers={"Authorization": f"Bearer {token}"},
            )
        if answer.status_code != 200 or not answer.json()["ok"]:
            failures.append(f"label_decisions /verification: {answer.status_code} {answer.text}")
        return failures

    async def _at_rest(self) -> list[str]:
        await asyncio.sleep(5.0)  # the last batches and snapshots settle
        pids = {name: p.pid for name, p in self.running.processes.items()}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        await asyncio.sleep(5.0)
        failures = []
        for name, pid in pids.items():
            share = (cpu_seconds(pid) - before[name]) / 5.0
            log(f"{name}: {share:.1%} of a core at rest")
            if share >= CPU_AT_REST:
                failures.append(f"{name} uses {share:.1%} of a core at rest")
        return failures


async def chaos(full: bool, base: int, state: Path) -> int:
    """The whole run; 0 when every proof holds."""
    stack = Stack(state, base)
    log(f"starting PostgreSQL on {base + 70} and Kafka on {base + 72} in {state}")
    values = await asyncio.to_thread(stack.start)
    os.environ.update(values)  # the stack's admin and passwords file (for the principals)
    base_settings = ConnectionSettings()
    settings = await install(base_settings, "clr_chaos")
    secret = secrets.token_hex(32)
    ports = {name: base + 60 + port % 100 for name, port in supervisor.SERVICES.items()}
    env = {**service_env(settings, secret), "CLR_LOG_LEVEL": "WARNING"}
    running = await asyncio.to_thread(supervisor.start, state / "logs", ports=ports, env=env)
    stopping = threading.Event()
    watcher = threading.Thread(
        target=running.supervise,
        args=(stopping.is_set,),
        kwargs={"report": log, "restart_first": 0.2, "restart_max": 5.0, "poll": 0.1},
    )
    watcher.start()
    load = Load(running.urls, secret)
    run = Chaos(stack, settings, running, load)
    clients = [asyncio.create_task(load.client(n)) for n in range(4)]
    faults = SERVICES + ["postgresql"] + (["kafka"] if full else [])
    between = 20.0 if full else 4.0
    try:
        for which in faults:
            await asyncio.sleep(between)
            await run.fault(which)
        await asyncio.sleep(between)
        load.stop.set()
        await asyncio.gather(*clients)
        log(
            f"load stopped: {sum(len(v) for v in load.accepted.values())} commands accepted,"
            f" {load.retries} retries"
        )
        failures = await run.prove()
    finally:
        load.stop.set()
        for task in clients:
            task.cancel()
        stopping.set()
        watcher.join()
        running.stop()
        await uninstall(base_settings, settings)
    log("recovery per fault (restart to caught up; target 15 s):")
    for which, seconds in run.recoveries:
        log(f"  {which:<24} {'never' if seconds is None else f'{seconds:5.1f} s'}")
    for failure in failures:
        log(f"FAILED: {failure}")
    if failures:
        for name in SERVICES:  # what the services could not handle: each error's last line
            lines = (state / "logs" / f"{name}.log").read_text(errors="replace").splitlines()
            raised = Counter(
                line for line in lines if line[:1].isalpha() and "Error: " in line.split(" ")[0]
            )
            for line, times in raised.most_common(5):
                log(f"  {name}: {times} x {line[:300]}")
    log("all proofs hold" if not failures else f"{len(failures)} proofs failed")
    return 1 if failures else 0


def main() -> None:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run")
    parser.add_argument("--full", action="store_true", help="the broker too, longer load")
    parser.add_argument("--keep", action="store_true", help="keep the state folder (logs)")
    args = parser.parse_args()
    base = int(os.environ.get("CLR_E2E_PORT_BASE", "18100"))
    state = Path(tempfile.mkdtemp(prefix="clr-chaos-"))
    state.chmod(0o755)  # the postgres user keeps its data inside (stack.sh runs it as postgres)
    stack = Stack(state, base)
    try:
        code = asyncio.run(chaos(args.full, base, state))
    finally:
        stack.stop()
        if args.keep:
            log(f"logs kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
