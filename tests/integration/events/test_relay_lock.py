"""A relay whose advisory lock's session is lost stops and takes the lock again.

PostgreSQL drops an advisory lock with its session (a restart, a network cut). A relay
that carried on without it could run beside another instance's; the runtime notices the
lost session, stops the relay after its batch and restarts it under a new lock.
"""

from __future__ import annotations

import asyncio
import uuid

from clr_events.pg import Pool
from clr_events.service.runtime import RelaySpec, Runtime, ServiceSettings

HOLDER = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND objid::bigint = (hashtext($1)::bigint & 4294967295)"
)


async def holder(pool: Pool, key: str) -> int | None:
    pid = await pool.fetchval(HOLDER, key)
    return None if pid is None else int(pid)


async def test_a_relay_that_lost_its_lock_takes_it_again(
    pool: Pool, database_url: str, kafka_bootstrap: str
) -> None:
    name = f"relaylock_{uuid.uuid4().hex[:8]}"
    runtime = Runtime(
        name,
        relays=[RelaySpec("lock.events", lambda stored: None)],
        settings=ServiceSettings(
            database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap
        ),
    )
    runtime.relay_lock_check, runtime.restart_first = 0.1, 0.05
    key = f"relay:{name}:lock.events"
    await runtime.start()
    try:

        async def held_by(not_pid: int | None) -> int:
            for _ in range(200):
                pid = await holder(pool, key)
                if pid is not None and pid != not_pid and "lock.events" in runtime.live_relays:
                    return pid
                await asyncio.sleep(0.05)
            raise AssertionError(f"nobody holds {key} (the relay runs without its lock)")

        first = await held_by(None)
        await pool.execute("SELECT pg_terminate_backend($1)", first)
        second = await held_by(first)
        assert second != first
        assert runtime.failing == {} or set(runtime.failing) == {"relay:lock.events"}
    finally:
        await runtime.stop()
        await pool.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
