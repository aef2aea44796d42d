"""Composition root of the projections service: read models, live agents, snapshot topic, web."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from faust.contrib.asgi import faust_app_running

from clr_events.kafka.probe import KafkaProbe
from clr_events.kafka.producer import new_producer
from clr_events.observability.metrics import Families
from clr_events.observability.state import readiness
from clr_events.outage import Outage, backoff
from clr_events.pg import Pool, create_pool
from clr_events.service import problems
from clr_events.service.runtime import create_app, dependencies_unready
from projections import api, schema_registry, web
from projections.core import ensure_generation
from projections.current import CurrentPublisher
from projections.headers import PublicHeaders
from projections.layouts import rebuild_stale, stale
from projections.live import LiveProjections
from projections.names import Names
from projections.offsets import Offsets, Recent, align_group, lag
from projections.read_models.all import READ_MODELS
from projections.settings import ProjectionSettings
from projections.webhooks import api as webhooks_api
from projections.webhooks.component import Webhooks

log = logging.getLogger(__name__)


class FeedSignal:
    """Wakes Server-Sent Events streams when the feed's head moves (LISTEN, never the truth)."""

    def __init__(self) -> None:
        self._moved = asyncio.Event()

    def notify(self, *_: object) -> None:
        """A NOTIFY arrived."""
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait(self, timeout: float) -> None:
        """Until the head may have moved, or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), timeout)


class ProjectionsRuntime:
    """Pools, producer, faust app and the snapshot publisher of one instance.

    Two pools: ``pool`` for the agents, the snapshot publisher and the operations, and
    ``reads`` for the public reads, whose statements PostgreSQL cancels after
    ``query_timeout_seconds`` (a batch being applied is never cut short by it).
    """

    name = "projections"
    """The service's name (in its metrics and logs)."""

    def __init__(self, settings: ProjectionSettings | None = None) -> None:
        self.settings = settings or ProjectionSettings()
        self.failing: dict[str, str] = {}
        self.feed_signal = FeedSignal()
        self._pool: Pool | None = None
        self._reads: Pool | None = None
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self.live: LiveProjections | None = None
        self.current: CurrentPublisher | None = None
        self.offsets: Offsets | None = None
        self._lags: Recent[dict[str, int]] = Recent(self.settings.lag_cache_seconds)
        self._kafka_probe: KafkaProbe | None = None
        self.webhooks = Webhooks()
        self.names = Names(self.settings.training_certification_url)

    @property
    def pool(self) -> Pool:
        """The connection pool (after ``start``)."""
        assert self._pool is not None, "runtime not started"
        return self._pool

    @property
    def reads(self) -> Pool:
        """The public reads' pool, with the statement timeout (after ``start``)."""
        assert self._reads is not None, "runtime not started"
        return self._reads

    async def start(self) -> None:
        """Read models ready, then (with ``CLR_BACKGROUND``) the agents and the publisher."""
        s = self.settings
        self._pool = await create_pool(
            s.database_url, name=self.name, min_size=2, max_size=s.pool_max_size
        )
        self._stack.push_async_callback(self._pool.close)
        self._reads = await create_pool(
            s.database_url,
            name=self.name,
            min_size=1,
            max_size=s.query_pool_max_size,
            server_settings={"statement_timeout": str(int(s.query_timeout_seconds * 1000))},
        )
        self._stack.push_async_callback(self._reads.close)
        self._stack.push_async_callback(self.names.close)
        for model in READ_MODELS.values():
            await ensure_generation(self._pool, model)
        listener = await self._pool.acquire()
        await listener.add_listener("projections_feed", self.feed_signal.notify)
        self._stack.push_async_callback(self._pool.release, listener)
        self._stack.push_async_callback(
            listener.remove_listener, "projections_feed", self.feed_signal.notify
        )
        await self.webhooks.start(self._pool, s.database_url, deliver=s.background)
        self._stack.push_async_callback(self.webhooks.stop)
        self.offsets = Offsets(s)
        await self.offsets.start()
        self._stack.push_async_callback(self.offsets.stop)
        if not s.background:
            return
        self._kafka_probe = KafkaProbe(s)
        self._stack.push_async_callback(self._kafka_probe.close)
        producer = new_producer(s)
        await producer.start()
        self._stack.push_async_callback(producer.stop)
        await align_group(
            self._pool, self.offsets, s, s.topic(s.consumer_group), READ_MODELS.values()
        )
        self.live = LiveProjections(self._pool, producer, s, READ_MODELS.values())
        self.failing = self.live.failing
        await self._stack.enter_async_context(faust_app_running(self.live.app, stop_timeout=15))
        self.current = CurrentPublisher(self._pool, producer, s)
        self._stop.clear()
        task = asyncio.get_running_loop().create_task(self.current.run(self._stop))
        self._stack.push_async_callback(self._join, task)
        if await stale(self._pool, READ_MODELS.values()):
            task = asyncio.get_running_loop().create_task(self._rebuild_stale(producer))
            self._stack.push_async_callback(self._join, task)

    async def _rebuild_stale(self, producer: AIOKafkaProducer) -> None:
        """Rebuild the read models whose layout changed (``projections.layouts``),
        retrying with backoff; ``/readyz`` names a failure meanwhile."""
        outage = Outage("layout rebuild", log)
        delay = 1.0
        while not self._stop.is_set():
            try:
                await rebuild_stale(
                    self.pool, producer, self.settings, READ_MODELS.values(), self._stop
                )
                self.failing.pop("layout", None)
                outage.ended()
                return
            except Exception as error:
                self.failing["layout"] = repr(error)
                pause, delay = backoff(delay, maximum=60.0)
                outage.failed(error, retry_in=pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause)

    async def _join(self, task: asyncio.Task[None]) -> None:
        self._stop.set()
        await asyncio.wait([task], timeout=5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def stop(self) -> None:
        """Stop everything started, in reverse."""
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()

    async def unready(self) -> dict[str, str]:
        """PostgreSQL, Kafka (with the agents here) and failing agents, with the reason."""
        reasons = await dependencies_unready(self.pool, self._kafka_probe)
        if self.current is not None and self.current.failing is not None:
            reasons["current"] = self.current.failing
        if self.webhooks.failing is not None:
            reasons["webhooks"] = self.webhooks.failing
        return {**reasons, **self.failing}

    async def lags(self) -> dict[str, int]:
        """Messages each read model has still to apply (at most ``lag_cache_seconds`` old)."""
        offsets = self.offsets
        assert offsets is not None

        async def read() -> dict[str, int]:
            return {
                name: await lag(self.pool, offsets, m, self.settings)
                for name, m in READ_MODELS.items()
            }

        return await self._lags.get(read)

    async def metrics(self) -> Families:
        """Readiness, projection lag, applied events, dead letters, snapshots published."""
        families = Families()
        unready = await self.unready()
        readiness(families, unready, kafka=self._kafka_probe is not None)
        if "postgresql" not in unready and "kafka" not in unready:
            with contextlib.suppress(Exception):  # away since: readiness says so
                for name, value in (await self.lags()).items():
                    families.gauge(
                        "clr_projection_lag_messages",
                        "Messages on a read model's topics it has still to apply.",
                        value,
                        read_model=name,
                    )
        if self.live is not None:
            for name in READ_MODELS:
                families.counter(
                    "clr_projection_applied",
                    "Events applied to a read model in this process.",
                    self.live.applied[name],
                    read_model=name,
                )
                families.counter(
                    "clr_projection_dead_letters",
                    "Messages a read model sent to its dead-letter topic in this process.",
                    self.live.dead_lettered[name],
                    read_model=name,
                )
        if self.current is not None:
            families.counter(
                "clr_current_snapshots_published",
                "Snapshots published to label_decisions.current by this process.",
                self.current.published,
            )
        families.gauge(
            "clr_background_tasks_failing",
            "Background tasks of this process failing now.",
            len(self.failing),
        )
        with contextlib.suppress(Exception):  # the database away: readiness says so
            await self.webhooks.metrics(self.pool, families)
        return families


def build() -> FastAPI:
    """The projections service."""
    runtime = ProjectionsRuntime()
    app = create_app(
        runtime,
        title="Cluster label registry: public read side",
        description="The public registry: label list, counts as of any day, expiring labels,"
        " expert register, organisation pages, exports, and the public feed of label events.",
        routers=[api.router, web.router, schema_registry.router, webhooks_api.router],
    )
    retry_after = str(max(1, math.ceil(runtime.settings.query_timeout_seconds)))

    @app.exception_handler(asyncpg.QueryCanceledError)
    async def _too_long(request: Request, error: asyncpg.QueryCanceledError) -> JSONResponse:
        log.warning("read cancelled on %s: %s", request.url.path, error)
        return problems.problem_response(
            request,
            503,
            "The read took too long",
            "the registry is busy; try again shortly",
            headers={"Retry-After": retry_after},
        )

    # inside the gzip middleware: the ETag is computed over the uncompressed body
    app.add_middleware(PublicHeaders, max_age=runtime.settings.cache_max_age_seconds)
    # pages, lists and exports go compressed; Server-Sent Events (excluded by default) do not
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    return app
