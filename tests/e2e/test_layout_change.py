"""A projections instance that starts with another layout of a read model than its live
generation's rebuilds it beside the live one and swaps it in, to the same rows, leaving
the other read models alone.

Its own installation: the projections process is stopped and started again.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.settings import ConnectionSettings
from projections.core import CONTROL
from tests.e2e import scenario
from tests.e2e.conftest import PORT_BASE, System

PORTS = {"collaboration": PORT_BASE + 71, "projections": PORT_BASE + 70}


async def test_a_read_model_of_another_layout_is_rebuilt_when_the_service_starts(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_layout")
    secret = secrets.token_hex(32)
    env = service_env(settings, secret)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    assert pool is not None
    running = await asyncio.to_thread(supervisor.start, tmp_path, ports=PORTS, env=env)

    async def active() -> dict[str, tuple[int, int]]:
        rows = await pool.fetch(
            f"SELECT name, generation, coalesce(layout, 1) FROM {CONTROL}.read_models"
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def directory() -> list[tuple[Any, ...]]:
        rows = await pool.fetch(f"SELECT * FROM {CONTROL}.organisations_orgs")
        return sorted((tuple(r) for r in rows), key=repr)

    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            system = System(running.urls, client, kafka_bootstrap, secret, settings.instance, "")
            orgs = [await scenario.organisation(system) for _ in range(5)]

            async def listed() -> bool:
                found = await pool.fetchval(
                    f"SELECT count(*) FROM {CONTROL}.organisations_orgs"
                    " WHERE org_id = ANY($1) AND validated_on IS NOT NULL",
                    orgs,
                )
                return bool(found == len(orgs))

            await system.until(listed, "the organisations in the directory")
            before, rows = await active(), await directory()
            assert before["organisations"] == (1, 1)

            # given the live directory was made by code of another layout
            projections = running.processes["projections"]
            await asyncio.to_thread(projections.terminate)
            await asyncio.to_thread(projections.wait, 30)
            await pool.execute(
                f"UPDATE {CONTROL}.read_models SET layout = 0 WHERE name = 'organisations'"
            )

            # when the service starts again
            running.launch("projections")
            await asyncio.to_thread(supervisor._wait_ready, running, 90)

            # then it rebuilds the directory into a new generation of its own layout
            async def rebuilt() -> bool:
                return (await active())["organisations"] == (2, 1)

            await system.until(rebuilt, "the directory rebuilt", timeout=120)
            assert await directory() == rows
            after = await active()
            del after["organisations"], before["organisations"]
            assert after == before  # the other read models: same generation, same layout
            # and its agents write to it again
            late = await scenario.organisation(system)

            async def late_listed() -> bool:
                return bool(
                    await pool.fetchval(
                        f"SELECT count(*) FROM {CONTROL}.organisations_orgs WHERE org_id = $1",
                        late,
                    )
                )

            await system.until(late_listed, "a later organisation in the rebuilt directory")
    finally:
        await asyncio.to_thread(running.stop)
        await pool.close()
        await uninstall(base, settings)
