"""The services' pools: each connection names its service, host and process."""

from __future__ import annotations

import os
import socket

from clr_events.pg import create_pool


async def test_a_named_pool_shows_who_holds_each_connection_and_keeps_its_settings(
    database_url: str,
) -> None:
    pool = await create_pool(
        database_url, name="svc", min_size=1, max_size=1, server_settings={"work_mem": "8MB"}
    )
    try:
        async with pool.acquire() as conn:
            seen = await conn.fetchrow(
                "SELECT application_name, current_setting('work_mem') AS work_mem"
                " FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            )
        assert seen is not None
        assert seen["application_name"] == f"svc/{socket.gethostname()}/{os.getpid()}"[:63]
        assert seen["work_mem"] == "8MB"
    finally:
        await pool.close()


async def test_an_application_name_in_the_url_wins(database_url: str) -> None:
    url = f"{database_url}{'&' if '?' in database_url else '?'}application_name=chosen"
    pool = await create_pool(url, name="svc", min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT current_setting('application_name')") == "chosen"
    finally:
        await pool.close()
