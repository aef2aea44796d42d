"""Type aliases for asyncpg pools and connections (asyncpg's classes are generic only in stubs)."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, urlsplit

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


def application_name(service: str) -> str:
    """What a service's connections call themselves (``application_name``, shown in
    ``pg_stat_activity`` and the server's log): ``service/host/pid``, so an operator sees
    which instance holds a lock or runs a query (PostgreSQL keeps 63 bytes: a long host
    name is cut, never the pid)."""
    pid = str(os.getpid())
    host = socket.gethostname()[: max(63 - len(service) - len(pid) - 2, 0)]
    return f"{service}/{host}/{pid}"[-63:]


def named(dsn: str, name: str | None, **options: Any) -> dict[str, Any]:
    """asyncpg connection ``options`` with ``application_name`` (``application_name(name)``)
    among the server settings, unless ``name`` is None or ``dsn`` names one."""
    if name is None or "application_name" in parse_qs(urlsplit(dsn).query):
        return options
    settings = {
        "application_name": application_name(name),
        **(options.get("server_settings") or {}),
    }
    return {**options, "server_settings": settings}


async def create_pool(dsn: str, *, name: str | None = None, **options: Any) -> Pool:
    """A pool whose connections go back without a reset round trip; with ``name``, its
    connections carry the service's ``application_name`` (unless ``dsn`` names one).

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: a second round trip for every ``pool.fetch``, awaited by
    the caller. This project leaves no session state on a released connection: settings
    are ``SET LOCAL`` or connection options, the relay's advisory lock is unlocked by its
    holder, the LISTEN connections are held apart and UNLISTEN when closed, and an open
    transaction is still rolled back by asyncpg before the (empty) reset runs.
    """
    options = named(dsn, name, **options)
    pool: Pool = await asyncpg.create_pool(dsn, reset=_keep_session, **options)
    return pool
