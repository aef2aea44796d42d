"""Several projections instances under a steady load of commands: one joins, one is
killed with -9, one leaves cleanly; the read model the survivors built has every
organisation the store has, once, and the same rows as a rebuild from the topic.

Its own installation, started as ``make run SCALE=projections=2,label_decisions=2`` starts
the system (``clr_dev.supervisor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.kafka.producer import new_producer
from clr_events.settings import ConnectionSettings
from projections.core import CONTROL
from projections.read_models.all import READ_MODELS
from projections.rebuild import rebuild
from tests.e2e import scenario
from tests.e2e.conftest import PORT_BASE, System

PORTS = {name: PORT_BASE + 40 + n for n, name in enumerate(supervisor.SERVICES)}
JOINING = PORT_BASE + 60  # beside the second instances (+ 50 ...)


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
        scale={"projections": 2, "label_decisions": 2},
    )
    assert {"projections-2", "label_decisions-2"} <= set(running.urls)
    joined: supervisor.Running | None = None
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:

            def system(urls: dict[str, str] = running.urls) -> System:
                return System(urls, client, kafka_bootstrap, secret, settings.instance, "")

            written: list[str] = []
            stop = asyncio.Event()

            async def writer(n: int) -> None:
                while not stop.is_set():
                    day = f"2024-{1 + len(written) % 12:02d}-{1 + n:02d}"
                    written.append(await scenario.organisation(system(), validated_on=day))

            async def until_written(count: int) -> None:
                await system().until(lambda: asyncio.sleep(0, len(written) >= count), "load")

            writers = [asyncio.create_task(writer(n)) for n in range(2)]
            try:
                # given two projections instances under a steady load
                await until_written(10)
                # when a third joins, the second is killed with -9, the first leaves
                joined = await asyncio.to_thread(
                    supervisor.start, tmp_path / "joined", ports={"projections": JOINING}, env=env
                )
                await until_written(25)
                os.kill(running.processes["projections-2"].pid, signal.SIGKILL)
                await until_written(40)
                first = running.processes["projections"]
                first.send_signal(signal.SIGTERM)
                await asyncio.to_thread(first.wait, 30)
                await until_written(55)
            finally:
                stop.set()
                await asyncio.gather(*writers)
            urls = {**running.urls, "projections": joined.urls["projections"]}

            # then the instance left catches up
            async def caught_up() -> bool:
                found = (await system(urls).get("projections", "/read-models")).json()
                return all(m["lag_messages"] == 0 for m in found["read_models"])

            await system(urls).until(caught_up, "the read side to catch up", timeout=120)

        # every organisation of the store is in the directory once, as validated
        store = await pool.fetch(
            "SELECT org_id, validated_on FROM collaboration.organisations"
            " WHERE org_id = ANY($1) ORDER BY org_id",
            written,
        )
        directory = await pool.fetch(
            f"SELECT org_id, validated_on FROM {CONTROL}.organisations_orgs"
            " WHERE org_id = ANY($1) ORDER BY org_id",
            written,
        )
        assert len(store) == len(written) >= 55
        assert [tuple(r) for r in directory] == [tuple(r) for r in store]

        # and what the instances built is what a rebuild from the topics builds
        async def rows() -> list[tuple[Any, ...]]:
            found = await pool.fetch(f"SELECT * FROM {CONTROL}.organisations_orgs")
            return sorted((tuple(r) for r in found), key=repr)

        live = await rows()
        producer = new_producer(settings)
        await producer.start()
        try:
            await rebuild(
                pool, producer, settings, READ_MODELS["organisations"], progress=lambda _: None
            )
        finally:
            await producer.stop()
        assert await rows() == live
    finally:
        if joined is not None:
            await asyncio.to_thread(joined.stop)
        await asyncio.to_thread(running.stop)
        await pool.close()
        with contextlib.suppress(Exception):
            await uninstall(base, settings)
