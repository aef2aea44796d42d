"""Type aliases for asyncpg pools and connections (asyncpg's classes are generic only in stubs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    Connection = asyncpg.Connection


async def _keep_session(_conn: object) -> None:
    """A released connection's session needs nothing undone (see ``create_pool``)."""


async def create_pool(dsn: str, **options: Any) -> Pool:
    """A pool whose connections go back without a reset round trip.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: a second round trip for every ``pool.fetch``, awaited by
    the caller. This project leaves no session state on a released connection: settings
    are ``SET LOCAL`` or connection options, the relay's advisory lock is unlocked by its
    holder, the LISTEN connections are held apart and UNLISTEN when closed, and an open
    transaction is still rolled back by asyncpg before the (empty) reset runs.
    """
    pool: Pool = await asyncpg.create_pool(dsn, reset=_keep_session, **options)
    return pool
