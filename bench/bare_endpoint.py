"""The service benchmark's reference: a bare FastAPI + asyncpg endpoint.

``POST`` to any path stores the request's body as it came, one durable INSERT (autocommit,
so one round trip and one commit), and answers 201 with the row's id. No auth, no
validation, no event store, no outbox: what a command could cost at the least on the same
framework, server settings and database. Served by ``clr_events.service.serve`` exactly as
a service is (``CLR_PORT``, ``CLR_HOST``, uvloop and httptools unless told otherwise),
with a pool of the services' size, on ``CLR_DATABASE_URL``.

Run: ``CLR_DATABASE_URL=... CLR_PORT=8199 python -m bench.bare_endpoint``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from clr_events.service.serve import serve

TABLE = """
CREATE TABLE IF NOT EXISTS bench_bare_commands (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path text NOT NULL,
    body text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO bench_bare_commands (path, body) VALUES ($1, $2) RETURNING id"
POOL_MAX_SIZE = 20
"""The services' default pool size (``CLR_POOL_MAX_SIZE``)."""


def build() -> FastAPI:
    """The app: one table, one route for every path."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            os.environ["CLR_DATABASE_URL"], min_size=2, max_size=POOL_MAX_SIZE
        )
        await pool.execute(TABLE)
        app.state.pool = pool
        yield
        await pool.close()

    app = FastAPI(title="bare endpoint", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/{path:path}", status_code=201)
    async def store(path: str, request: Request) -> JSONResponse:
        body = (await request.body()).decode()
        row_id = await request.app.state.pool.fetchval(INSERT, path, body)
        return JSONResponse({"id": row_id}, status_code=201)

    return app


if __name__ == "__main__":
    serve(build, default_port=8199)
