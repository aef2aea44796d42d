"""Store states the tests bring about by hand."""

from __future__ import annotations

from clr_events.pg import Pool


async def cut_back(pool: Pool, schema: str, position: int) -> None:
    """The store as a restore from a backup taken at ``position`` leaves it: the events
    after it gone, the head back there (close the store's own connections first)."""
    async with pool.acquire() as conn, conn.transaction():
        table = f"{schema}.event_store"
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER event_store_append_only")
        await conn.execute(f"DELETE FROM {table} WHERE position > $1", position)
        await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER event_store_append_only")
        await conn.execute(
            f"UPDATE {schema}.event_store_head SET position = $1,"
            f" hash = (SELECT hash FROM {table} WHERE position = $1)",
            position,
        )
