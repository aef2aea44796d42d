"""A local webhook receiver for the tests and the benchmark: records every request, and
answers per path as told (ok, fail, timeout, slow, gone)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

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
                time.perf_counter(),
                status,
            )
        )
        self.arrived.set()
        return web.Response(status=status)

    async def start(self) -> None:
        """Listen on 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
