"""``python -m clr_events.migrations`` (``make migrations``): the migration history of every
schema of the database."""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from clr_events.migrations import HISTORY, history
from clr_events.settings import ConnectionSettings


async def _print_history(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        schemas = await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = $1"
            " ORDER BY table_schema",
            HISTORY,
        )
        for (schema,) in schemas:
            for row in await history(conn, schema):
                version = "R" if row["version"] is None else f"{row['version']:04d}"
                baseline = " (baseline)" if row["baseline"] else ""
                sys.stdout.write(
                    f"{schema:<24} {row['component']:<12} {version} {row['name']:<22}"
                    f" {row['applied_at']:%Y-%m-%d %H:%M:%S} {str(row['checksum'])[:12]}"
                    f"{baseline}\n"
                )
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(_print_history(ConnectionSettings().database_url))
