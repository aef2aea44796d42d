"""A local webhook receiver for the tests and the benchmark: records every request, and
answers per path as told (ok, fail, timeout, slow, gone).

``python -m tests.e2e.receiver --port N`` runs one in its own process (the benchmark's, so
that receiving does not share a process with the load generator): it answers 200 and
serves what arrived at ``GET /_arrivals?from=K`` as ``[path, webhook-id,
correlationid, wall-clock time]`` rows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web


@dataclass
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    """``mode[path]``: ``ok`` (200), ``fail`` (500), ``timeout`` (no answer for a minute),
    ``slow`` (200 after ``slow_seconds``), ``gone`` (410). Only 200s count as delivered."""

    port: int
    mode: dict[str, str] = field(default_factory=dict)
    slow_seconds: float = 0.4
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """The endpoint URL of ``path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str) -> list[Received]:
        """The requests on ``path`` answered 200, in arrival order."""
        return [r for r in self.requests if r.path == path and r.status == 200]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        mode = self.mode.get(request.path, "ok")
        status = {"ok": 200, "slow": 200, "fail": 500, "gone": 410, "timeout": 599}[mode]
        if mode == "timeout":
            await asyncio.sleep(60)
        if mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        self.requests.append(
            Received(
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
                time.time(),
                status,
            )
        )
        self.arrived.set()
        return web.Response(status=status)

    async def _arrivals(self, request: web.Request) -> web.Response:
        start = int(request.query.get("from", "0"))
        rows = [
            [
                r.path,
                r.headers.get("webhook-id"),
                orjson.loads(r.body).get("correlationid"),
                r.at,
            ]
            for r in self.requests[start:]
        ]
        return web.Response(body=orjson.dumps(rows), content_type="application/json")

    async def start(self) -> None:
        """Listen on 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        app.router.add_get("/_arrivals", self._arrivals)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


async def _serve(port: int) -> None:
    receiver = Receiver(port)
    await receiver.start()
    await asyncio.Event().wait()


def main() -> None:
    """Run a receiver until killed."""
    parser = argparse.ArgumentParser(description="A local webhook receiver (answers 200).")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
