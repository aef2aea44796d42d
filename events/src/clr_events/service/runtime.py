"""A service process: its API, plus the relays, consumers and clock jobs that run beside it.

Every instance runs the API. Background work (``CLR_BACKGROUND``, on by default) is safe
to run in several instances: consumers share partitions through their Kafka group, each
relay runs in one instance at a time (a PostgreSQL advisory lock elects it; another takes
over when it dies), and clock jobs are idempotent. A failing background task is logged
and restarted with backoff; ``/readyz`` reports it meanwhile. With ``transparency`` the
store has a transparency log (``clr_events.transparency``): one instance, elected like a
relay, signs its checkpoints and publishes them on ``<service>.checkpoints``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import Field

from clr_events.application.postgres import IdempotencyStore, PostgresUnitsOfWork
from clr_events.application.uow import EventHandler
from clr_events.consumers.dispatch import Subscriptions
from clr_events.consumers.runner import ConsumerRunner, Handler
from clr_events.kafka.probe import KafkaProbe
from clr_events.kafka.producer import new_producer
from clr_events.kafka.tail import last_positions
from clr_events.migrations import Migration, migrate
from clr_events.observability.metrics import CONTENT_TYPE, Families, render
from clr_events.observability.middleware import Observe, fastapi_telemetry
from clr_events.observability.state import runtime_families
from clr_events.outage import Outage, backoff
from clr_events.outbox.relay import PostgresRelayCheckpoint, Relay, Translator
from clr_events.pg import Connection, Pool, create_pool
from clr_events.registry import Contract
from clr_events.service import limits, openapi, problems
from clr_events.service.auth import AuthSettings, TokenVerifier
from clr_events.settings import ConnectionSettings
from clr_events.store.postgres import PostgresEventStore
from clr_events.transparency.log import (
    Checkpointer,
    CheckpointPublisher,
    TransparencyLog,
    TransparencySettings,
    signer_for,
)

log = logging.getLogger(__name__)


class ServiceSettings(ConnectionSettings):
    """Connection settings plus ``CLR_BACKGROUND`` (run relays, consumers and jobs here)."""

    background: bool = True
    pool_max_size: int = 20
    stream_cache_bytes: int = Field(default=32 << 20, ge=0)
    """How much of recently loaded streams a process keeps decoded, counted in their
    stored JSON (the decoded objects take a few times that), so a command on a long
    stream reads and decodes only its new events (``CLR_STREAM_CACHE_BYTES``; 0: none)."""
    relay_linger_seconds: float = Field(default=0.01, ge=0.0, le=1.0)
    """After a commit wakes a relay, and after each batch smaller than a full one, how
    long it waits for more before reading: several events per read, checkpoint and Kafka
    request under a steady stream of commands, instead of one each
    (``CLR_RELAY_LINGER_SECONDS``)."""


@dataclass(frozen=True)
class RelaySpec:
    """Publish the store to ``topic`` through ``translate``."""

    topic: str
    translate: Translator
    name: str | None = None


@dataclass(frozen=True)
class ConsumerSpec:
    """Consume ``topics`` as ``group`` into the application's event ``handlers`` (each in
    a unit of work joined to the consumer's transaction, effectively once), up to
    ``max_batch`` messages to a transaction (1 for a handler that appends to an event store:
    the head lock is then held one round trip)."""

    group: str
    topics: list[str]
    handlers: Mapping[type[Contract], EventHandler]
    max_batch: int = 100


@dataclass(frozen=True)
class JobSpec:
    """Run ``run`` every ``interval`` seconds (and once at start)."""

    name: str
    interval: float
    run: Callable[[Runtime], Awaitable[Any]]


@dataclass
class Runtime:
    """Pool, store and background work of one service (its schema is its name)."""

    name: str
    migrations: list[Migration] = field(default_factory=list)
    """The service's own tables (``<service>/migrations``, ``clr_events.migrations.load``)."""
    relays: list[RelaySpec] = field(default_factory=list)
    consumers: list[ConsumerSpec] = field(default_factory=list)
    jobs: list[JobSpec] = field(default_factory=list)
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    transparency: bool = False
    """Keep a transparency log of the store: signed checkpoints, proofs (``/transparency``)."""
    restart_first: float = 0.5
    """Seconds before the first restart of a failed background task (doubling)."""
    restart_max: float = 30.0
    """The longest pause between restarts."""
    healthy_after: float = 5.0
    """A restarted task running this long has recovered (logged once, backoff reset)."""
    relay_lock_check: float = 2.0
    """Seconds between checks that the session holding a relay's advisory lock lives."""

    def __post_init__(self) -> None:
        self.idempotency = IdempotencyStore(self.name)
        self._pool: Pool | None = None
        self._store: PostgresEventStore | None = None
        self._units: PostgresUnitsOfWork | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failing: dict[str, str] = {}
        self.live_relays: dict[str, Relay] = {}
        self.live_consumers: dict[str, ConsumerRunner] = {}
        self._kafka_probe: KafkaProbe | None = None
        self._tlog: TransparencyLog | None = None
        self.checkpointer: Checkpointer | None = None

    @property
    def tlog(self) -> TransparencyLog:
        """The store's transparency log (after ``start``, with ``transparency``)."""
        assert self._tlog is not None, "no transparency log"
        return self._tlog

    @property
    def pool(self) -> Pool:
        """The service's connection pool (after ``start``)."""
        assert self._pool is not None, "runtime not started"
        return self._pool

    @property
    def store(self) -> PostgresEventStore:
        """The service's event store (after ``start``)."""
        assert self._store is not None, "runtime not started"
        return self._store

    @property
    def units(self) -> PostgresUnitsOfWork:
        """The service's units of work, one per command (after ``start``)."""
        assert self._units is not None, "runtime not started"
        return self._units

    async def start(self) -> None:
        """Connect, migrate, and start the background work if enabled."""
        self._pool = await create_pool(
            self.settings.database_url,
            name=self.name,
            min_size=2,
            max_size=self.settings.pool_max_size,
        )
        self._store = PostgresEventStore(self._pool, schema=self.name)
        await self._store.migrate()
        self._units = PostgresUnitsOfWork(
            self._pool,
            self._store,
            self.name,
            max_event_bytes=limits.settings().max_event_bytes,
            idempotency=self.idempotency,
            stream_cache_bytes=self.settings.stream_cache_bytes,
        )
        await self.idempotency.migrate(self._pool)
        await migrate(self._pool, self.name, "service", self.migrations)
        if self.transparency:
            origin = TransparencySettings().origin(self.name, self.settings.instance)
            self._tlog = TransparencyLog(self._pool, self._store, self.name, origin)
            await self._tlog.migrate()
        if self.settings.background:
            if self.relays or self.consumers:
                self._kafka_probe = KafkaProbe(self.settings)
            self._stop.clear()
            for relay in self.relays:
                self._spawn(f"relay:{relay.name or relay.topic}", self._relay, relay)
            for consumer in self.consumers:
                self._spawn(f"consumer:{consumer.group}", self._consume, consumer)
            for job in self.jobs:
                self._spawn(f"job:{job.name}", self._job, job)
            if self._tlog is not None:
                self._kafka_probe = self._kafka_probe or KafkaProbe(self.settings)
                self._spawn("checkpoints", self._checkpoints, self._tlog)

    async def stop(self) -> None:
        """Stop background work, then close the store and the pool."""
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks.values(), timeout=10)
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        if self._kafka_probe is not None:
            await self._kafka_probe.close()
            self._kafka_probe = None
        if self.checkpointer is not None:
            await self.checkpointer.close()
        if self._store is not None:
            await self._store.close()
        if self._pool is not None:
            await self._pool.close()

    # ---------------------------------------------------------------- background
    def _spawn(self, name: str, body: Callable[[Any], Awaitable[None]], spec: Any) -> None:
        """Run ``body(spec)`` until stopped; restart it with backoff and jitter when it fails.

        One warning (with the traceback) per outage, one line when the body has run
        ``healthy_after`` seconds again; the failures in between are only counted.
        """

        async def supervised() -> None:
            outage = Outage(name, log)
            delay = self.restart_first
            while not self._stop.is_set():
                run = asyncio.ensure_future(body(spec))
                try:
                    done, _ = await asyncio.wait({run}, timeout=self.healthy_after)
                    if not done:  # running for a while: whatever failed before works again
                        outage.ended()
                        self.failing.pop(name, None)
                        delay = self.restart_first
                    await run
                    self.failing.pop(name, None)
                    return
                except Exception as error:
                    self.failing[name] = repr(error)
                    pause, delay = backoff(delay, maximum=self.restart_max)
                    outage.failed(error, retry_in=pause)
                    await self._sleep(pause)
                finally:
                    if not run.done():
                        run.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await run

        self._tasks[name] = asyncio.get_running_loop().create_task(supervised(), name=name)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _relay(self, spec: RelaySpec) -> None:
        name = spec.name or spec.topic
        async with self.pool.acquire() as lock:
            while not await lock.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", f"relay:{self.name}:{name}"
            ):
                await self._sleep(5.0)
                if self._stop.is_set():
                    return
            try:
                if self._producer is None:
                    self._producer = new_producer(self.settings)
                    await self._producer.start()
                checkpoint = PostgresRelayCheckpoint(self.pool, self.name, name)
                await checkpoint.migrate()
                topic = self.settings.topic(spec.topic)
                relay = Relay(
                    self.store,
                    checkpoint,
                    self._producer,
                    topic,
                    spec.translate,
                    tail=functools.partial(last_positions, self.settings, topic),
                    linger=self.settings.relay_linger_seconds,
                    schema_base=self.settings.schema_base_url,
                )
                self.live_relays[name] = relay
                self.failing.pop(f"relay:{name}", None)
                stop = asyncio.Event()
                holding = asyncio.ensure_future(self._hold(lock, stop))
                try:
                    await relay.run(stop)
                finally:
                    stop.set()
                    lost = (await asyncio.gather(holding, return_exceptions=True))[0]
                if isinstance(lost, Exception):
                    raise lost  # the lock's session is gone: restart under a new lock
            finally:
                self.live_relays.pop(name, None)
                # a lost session took its advisory lock along: nothing left to unlock
                with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                    await lock.execute(
                        "SELECT pg_advisory_unlock(hashtext($1))", f"relay:{self.name}:{name}"
                    )

    async def _hold(self, lock: Connection, stop: asyncio.Event) -> None:
        """While the relay runs: check that the session holding its advisory lock lives
        (PostgreSQL drops the lock with the session, and another instance may then take
        the relay over); set ``stop`` when the service stops or the session is lost.

        Raises:
            Exception: the lock's session is lost (the supervisor restarts the relay,
                which takes the lock again).
        """
        try:
            while not stop.is_set() and not self._stop.is_set():
                await lock.fetchval("SELECT 1", timeout=5.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.relay_lock_check)
        finally:
            stop.set()

    async def _checkpoints(self, tlog: TransparencyLog) -> None:
        """The checkpoint signer, in one instance at a time (an advisory lock, as a relay)."""
        key = f"tlog:{self.name}"
        async with self.pool.acquire() as lock:
            while not await lock.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
                await self._sleep(5.0)
                if self._stop.is_set():
                    return
            try:
                if self.checkpointer is None:
                    settings = TransparencySettings()
                    self.checkpointer = Checkpointer(
                        tlog,
                        signer_for(settings, self.name, self.settings.instance),
                        every_events=settings.every_events,
                        every_seconds=settings.every_seconds,
                        publish=CheckpointPublisher(self.settings, self.name, tlog.origin),
                        on_publish_failure=self._publishing_checkpoints,
                    )
                stop = asyncio.Event()
                holding = asyncio.ensure_future(self._hold(lock, stop))
                try:
                    await self.checkpointer.run(stop)
                finally:
                    stop.set()
                    lost = (await asyncio.gather(holding, return_exceptions=True))[0]
                if isinstance(lost, Exception):
                    raise lost
            finally:
                with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                    await lock.execute("SELECT pg_advisory_unlock(hashtext($1))", key)

    def _publishing_checkpoints(self, failure: str | None) -> None:
        if failure is None:
            self.failing.pop("checkpoints:publish", None)
        else:
            self.failing["checkpoints:publish"] = failure

    def consumer(self, spec: ConsumerSpec) -> Handler:
        """The runner's handler of a consumer: its event handlers on this service's units
        of work, caused by each event (after ``start``)."""
        return Subscriptions(spec.handlers, self.units, self.name)

    async def _consume(self, spec: ConsumerSpec) -> None:
        # the same runner across restarts: its counters and its outage carry on
        runner = self.live_consumers.get(self.settings.topic(spec.group)) or ConsumerRunner(
            self.pool,
            group=self.settings.topic(spec.group),
            topics=[self.settings.topic(topic) for topic in spec.topics],
            handler=self.consumer(spec),
            kafka=self.settings,
            schema=self.name,
            max_batch=spec.max_batch,
        )
        self.live_consumers[runner.group] = runner
        await runner.run(self._stop)

    async def _job(self, spec: JobSpec) -> None:
        while not self._stop.is_set():
            await spec.run(self)
            self.failing.pop(f"job:{spec.name}", None)
            await self._sleep(spec.interval)

    # ------------------------------------------------------------------ health
    async def unready(self) -> dict[str, str]:
        """What keeps this service from its work: PostgreSQL, Kafka (when it publishes or
        consumes here), failing background tasks; each with the reason."""
        reasons = await dependencies_unready(self.pool, self._kafka_probe)
        return {**reasons, **self.failing}

    async def metrics(self) -> Families:
        """What ``/metrics`` reports of this runtime, read now (``observability.state``)."""
        return await runtime_families(self, kafka=self._kafka_probe is not None)


async def dependencies_unready(
    pool: Pool, kafka: KafkaProbe | None, timeout: float = 1.0
) -> dict[str, str]:
    """``postgresql`` and ``kafka`` (when a probe is given) with the reason each is not
    reachable; empty when both are."""
    reasons: dict[str, str] = {}
    try:
        await pool.fetchval("SELECT 1", timeout=timeout)
    except Exception as error:  # the database is away (refused, reset, timed out)
        reasons["postgresql"] = repr(error)
    if kafka is not None and (reason := await kafka.check()) is not None:
        reasons["kafka"] = reason
    return reasons


class Background(Protocol):
    """What ``create_app`` runs beside the API: ``Runtime``, or a service's own."""

    failing: dict[str, str]

    @property
    def pool(self) -> Pool:
        """The service's connection pool."""
        ...

    async def start(self) -> None:
        """Connect, migrate, start background work."""
        ...

    async def stop(self) -> None:
        """Stop background work and disconnect."""
        ...

    async def metrics(self) -> Families:
        """What ``/metrics`` reports of this service's state, read now."""
        ...

    async def unready(self) -> dict[str, str]:
        """What keeps the service from its work, with the reason (empty: ready)."""
        ...


def create_app(
    runtime: Background, *, title: str, description: str, routers: list[APIRouter]
) -> FastAPI:
    """The service's FastAPI app: routes, problem details, health, metrics, lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=title,
        description=description,
        version="1",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
    )
    app.state.runtime = runtime
    app.state.token_verifier = TokenVerifier(AuthSettings())
    problems.install(app)
    app.add_middleware(limits.BodyLimit)
    if os.environ.get("CLR_HTTP_METRICS", "1") != "0":  # 0: for the overhead benchmark
        # outside the body limit, so a refused body is counted too
        app.add_middleware(Observe, service=getattr(runtime, "name", title))
    openapi.install(app)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        unready = await runtime.unready()
        if unready:
            return problems.problem_response(
                request,
                503,
                "Not ready",
                "; ".join(f"{name}: {reason}" for name, reason in unready.items()),
                unready=unready,
                headers={"Retry-After": "1"},
            )
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(render(await runtime.metrics()), media_type=CONTENT_TYPE)

    return app
