"""Two instances of every service under a steady load of commands (new organisations, and
Bronze labels going from assessments through label_decisions to the public register),
sent as an operator's clients send them (an Idempotency-Key each, retried on the other
instance when one is gone): the instance of each domain service that publishes (holds
its relay's lock) is killed with -9, so the other takes its relay over and its consumers'
partitions; a third projections instance joins, one is killed with -9 and one leaves
cleanly. Afterwards every organisation and every
label is in the stores once and in the read models once, and the read models have the
same rows as a rebuild from the topics.

Its own installation, started as ``make run SCALE=projections=2,collaboration=2,...``
starts the system (``clr_dev.supervisor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.kafka.producer import new_producer
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from projections.core import CONTROL
from projections.read_models.all import READ_MODELS
from projections.rebuild import rebuild
from tests.e2e import scenario
from tests.e2e.conftest import PORT_BASE, System
from tests.e2e.test_disaster import read_model_rows

PORTS = {name: PORT_BASE + 40 + n for n, name in enumerate(supervisor.SERVICES)}
JOINING = PORT_BASE + 60  # beside the second instances (+ 50 ...)
SCALE = dict.fromkeys(supervisor.SERVICES, 2)
DOMAIN = [name for name in supervisor.SERVICES if name != "projections"]
PUBLISHER = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.objid::bigint = (hashtext($1)::bigint & 4294967295)"
)
"""Who holds a lock: connections are named ``service/host/pid`` (``clr_events.pg``)."""


@dataclass
class FailingOver(System):
    """Commands with an Idempotency-Key, sent to a service's first instance and, while it
    cannot answer (gone, or a 5xx), to its other, with the same key, until answered; reads
    the same way."""

    instances: dict[str, list[str]] | None = None

    async def _send(self, service: str, method: str, path: str, **kw: Any) -> httpx.Response:
        assert self.instances is not None
        for _ in range(300):
            for url in self.instances[service]:
                try:
                    answer = await self.client.request(method, url + path, **kw)
                except httpx.TransportError:
                    continue
                if answer.status_code < 500:
                    return answer
            await asyncio.sleep(0.2)
        raise AssertionError(f"{method} {service}{path}: no instance answered")

    async def post(self, service: str, path: str, body: Any, *roles: str) -> httpx.Response:
        headers = {**self.auth(*roles), "Idempotency-Key": uuid.uuid4().hex}
        return await self._send(service, "POST", path, json=body, headers=headers)

    async def get(self, service: str, path: str, *roles: str) -> httpx.Response:
        return await self._send(service, "GET", path, headers=self.auth(*roles) if roles else {})


async def publisher(pool: Pool, running: supervisor.Running, service: str) -> str:
    """The instance of ``service`` whose relay of its events publishes."""
    pids = {str(process.pid): name for name, process in running.processes.items()}
    for _ in range(100):
        holder = await pool.fetchval(PUBLISHER, f"relay:{service}:{service}.events")
        if holder is not None:
            return pids[holder.rsplit("/", 1)[-1]]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no instance of {service} publishes")


async def test_the_read_side_stays_right_while_instances_join_leave_and_die_under_load(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_scale")
    secret = secrets.token_hex(32)
    env = service_env(settings, secret)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    assert pool is not None
    running = await asyncio.to_thread(
        supervisor.start,
        tmp_path / "system",
        ports=PORTS,
        env=env,
        scale=SCALE,
    )
    assert {f"{name}-2" for name in SCALE} <= set(running.urls)
    joined: supervisor.Running | None = None
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:

            def system(urls: dict[str, str] = running.urls) -> System:
                return System(urls, client, kafka_bootstrap, secret, settings.instance, "")

            clients = FailingOver(
                running.urls, client, kafka_bootstrap, secret, settings.instance, ""
            )
            clients.instances = {
                name: [running.urls[name], running.urls[f"{name}-2"]] for name in DOMAIN
            }

            written: list[str] = []
            labelled: list[str] = []
            stop = asyncio.Event()
            person = await scenario.expert(clients, "AT", ["benchmarking_expert"], "2023-04-01")

            async def writer(n: int) -> None:
                while not stop.is_set():
                    day = f"2024-{1 + len(written) % 12:02d}-{1 + n:02d}"
                    written.append(await scenario.organisation(clients, validated_on=day))

            async def labeller() -> None:
                while not stop.is_set():
                    org = await scenario.organisation(clients, validated_on="2024-01-10")
                    written.append(org)
                    await scenario.known_to_assessments(clients, [org], [person])
                    await scenario.bronze(clients, org, person, "2024-03-05", "2024-04-02")
                    labelled.append(org)

            async def until_written(count: int, labels: int) -> None:
                def enough() -> bool:
                    return len(written) >= count and len(labelled) >= labels

                await system().until(lambda: asyncio.sleep(0, enough()), "load", timeout=120)

            writers = [asyncio.create_task(writer(n)) for n in range(2)]
            writers.append(asyncio.create_task(labeller()))
            try:
                # given two instances of every service under a steady load
                await until_written(10, 1)
                # when the publishing instance of each domain service is killed with -9
                for name in DOMAIN:
                    victim = await publisher(pool, running, name)
                    os.kill(running.processes[victim].pid, signal.SIGKILL)
                # and a third projections instance joins, the second is killed with -9,
                # the first leaves
                joined = await asyncio.to_thread(
                    supervisor.start, tmp_path / "joined", ports={"projections": JOINING}, env=env
                )
                await until_written(25, 3)
                os.kill(running.processes["projections-2"].pid, signal.SIGKILL)
                await until_written(40, 4)
                first = running.processes["projections"]
                first.send_signal(signal.SIGTERM)
                await asyncio.to_thread(first.wait, 30)
                await until_written(55, 5)
            finally:
                stop.set()
                await asyncio.gather(*writers)
            urls = {**running.urls, "projections": joined.urls["projections"]}

            # then the instance left catches up
            async def caught_up() -> bool:
                found = (await system(urls).get("projections", "/read-models")).json()
                return all(m["lag_messages"] == 0 for m in found["read_models"])

            await system(urls).until(caught_up, "the read side to catch up", timeout=120)

            # and every organisation and every label decided has reached it (a label is
            # decided after its approval was answered, through Kafka)
            async def everything_arrived() -> bool:
                listed = await pool.fetchval(
                    f"SELECT count(*) FROM {CONTROL}.organisations_orgs WHERE org_id = ANY($1)",
                    written,
                )
                registered = await pool.fetchval(
                    f"SELECT count(*) FROM {CONTROL}.labels_labels WHERE org_id = ANY($1)",
                    labelled,
                )
                return bool(listed == len(written) and registered == len(labelled))

            await system(urls).until(everything_arrived, "every command's effect", timeout=120)

        async def by_org(query: str, orgs: list[str]) -> list[tuple[Any, ...]]:
            """The rows of ``query`` (its ``$1``: ``orgs``) as tuples."""
            return [tuple(r) for r in await pool.fetch(query, orgs)]

        # every organisation of the store is in the directory once, as validated
        validated = "SELECT org_id, validated_on FROM {} WHERE org_id = ANY($1) ORDER BY 1"
        store = await by_org(validated.format("collaboration.organisations"), written)
        directory = await by_org(validated.format(f"{CONTROL}.organisations_orgs"), written)
        assert len(store) == len(written) >= 55
        assert directory == store

        # every label was decided once, and is in the public register once, as decided
        once = [(org, 1) for org in sorted(labelled)]
        awarded = await by_org(
            "SELECT data->>'org_id', count(*) FROM label_decisions.event_store"
            " WHERE type = 'LabelAwarded' AND data->>'org_id' = ANY($1) GROUP BY 1 ORDER BY 1",
            labelled,
        )
        assert awarded == once
        labels = "SELECT org_id, level, valid_until FROM {} WHERE org_id = ANY($1) ORDER BY 1"
        decided = await by_org(labels.format("label_decisions.records"), labelled)
        register = await by_org(labels.format(f"{CONTROL}.labels_labels"), labelled)
        assert len(decided) == len(labelled) >= 5
        assert register == decided
        history = await by_org(
            f"SELECT org_id, count(*) FROM {CONTROL}.labels_history"
            " WHERE org_id = ANY($1) AND kind = 'awarded' GROUP BY 1 ORDER BY 1",
            labelled,
        )
        assert history == once

        # and what the instances built is what a rebuild from the topics builds
        live = await read_model_rows(pool)
        producer = new_producer(settings)
        await producer.start()
        try:
            for model in READ_MODELS.values():
                await rebuild(pool, producer, settings, model, progress=lambda _: None)
        finally:
            await producer.stop()
        assert await read_model_rows(pool) == live
    finally:
        if joined is not None:
            await asyncio.to_thread(joined.stop)
        await asyncio.to_thread(running.stop)
        await pool.close()
        with contextlib.suppress(Exception):
            await uninstall(base, settings)
