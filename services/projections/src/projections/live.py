"""The live projections: a faust-streaming app with one agent per read model.

Each agent takes batches (``batches``: faust's ``take_events`` without its idle ticks),
applies them with their checkpoint in one PostgreSQL transaction, and only then lets
faust acknowledge them: faust's offset commit trails the database and is only a hint
(``offsets.align_group``). Concurrency is 1 per agent (faust issue 606: with more,
offsets are acknowledged out of order). Transient failures (``is_transient``, shared
with every consumer) are retried without end while ``/readyz`` reports them; a message
the read model cannot apply goes to ``projections.<read model>.dlq`` (``apply_batch``
finds it) and the agent goes on.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT
from mode.utils.aiter import aiter
from mode.utils.futures import notify

from clr_events.consumers.errors import is_transient
from clr_events.observability import tracing
from clr_events.outage import Outage, backoff
from clr_events.pg import Pool
from projections.core import (
    DeadLetter,
    Decoded,
    ReadModel,
    Record,
    StaleLayoutError,
    apply_batch,
    dead_letterer,
    decode_batch,
)
from projections.settings import ProjectionSettings

log = logging.getLogger(__name__)


class LiveProjections:
    """The faust app and its agents."""

    def __init__(
        self,
        pool: Pool,
        producer: AIOKafkaProducer,
        settings: ProjectionSettings,
        models: Iterable[ReadModel],
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._settings = settings
        self.applied: Counter[str] = Counter()
        self.dead_lettered: Counter[str] = Counter()
        self.failing: dict[str, str] = {}
        self._outages: dict[str, Outage] = {}
        # faust makes a data folder even for in-memory tables: not in the working directory
        datadir = Path(tempfile.gettempdir()) / "clr-faust"
        datadir.mkdir(exist_ok=True)
        self.app = _App(
            settings.topic(settings.consumer_group),
            broker=f"kafka://{settings.kafka_bootstrap_servers}",
            broker_credentials=settings.faust_credentials(),
            web_enabled=False,
            autodiscover=False,
            store="memory://",
            datadir=str(datadir / "{conf.name}-data"),
            topic_disable_leader=True,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            broker_commit_every=100,
            broker_commit_interval=1.0,
            # a member killed without leaving is noticed after the session timeout: the
            # next instance's rebalance waits that long (faust's default is 60 s)
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=settings.session_timeout_seconds / 4,
            # static membership: an instance restarted under the same id takes its
            # partitions back at once, without a rebalance
            consumer_group_instance_id=settings.group_instance_id or None,
            fetch_options=settings.consumer_fetch_options(),
        )
        for model in models:
            self._add_agent(model)

    def _add_agent(self, model: ReadModel) -> None:
        topic = self.app.topic(
            *(self._settings.topic(name) for name in model.topics),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
        dead_letter = dead_letterer(self._producer, self._settings, model, self.dead_lettered)

        async def project(stream: Any) -> None:
            async for events in batches(
                stream, self._settings.batch_max, self._settings.batch_within_seconds
            ):
                batch = decode_batch(
                    Record(
                        e.message.topic,
                        e.message.partition,
                        e.message.offset,
                        e.message.key,
                        e.message.value,
                        list(e.message.headers or ()),
                    )
                    for e in events
                )
                await self._apply(model, batch, dead_letter)

        self.app.agent(topic, name=f"projections.{model.name}", concurrency=1)(project)

    async def _apply(self, model: ReadModel, batch: list[Decoded], dead_letter: DeadLetter) -> None:
        outage = self._outages.setdefault(model.name, Outage(f"projection {model.name}", log))
        delay = 0.1
        started = time.time_ns()
        while True:
            try:
                self.applied[model.name] += await apply_batch(self._pool, model, batch, dead_letter)
                self.failing.pop(model.name, None)
                outage.ended()
                if tracing.enabled():
                    _trace(model.name, batch, started)
                return
            except Exception as error:
                # transient (apply_batch dead-letters what the records cause), or the dead
                # letter could not be sent: the batch waits (and /readyz says why); one
                # warning per outage, one line when it ends
                if not isinstance(error, StaleLayoutError):  # not failing: being rebuilt
                    self.failing[model.name] = repr(error)
                pause, delay = backoff(delay, maximum=10.0)
                if not is_transient(error) and not outage.away:
                    log.error("%s: batch failed (not transient): %r", model.name, error)
                outage.failed(error, retry_in=pause)
                await asyncio.sleep(pause)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread, its consumer given the group consumers' fetch options
    (faust fixes ``fetch_max_wait_ms`` at 1,500 ms and leaves ``fetch_min_bytes`` at 1:
    every new event was a fetch, a batch and a transaction of its own)."""

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        options = cast(_App, self.app).fetch_options
        # read by the consumer's start(), which builds its fetcher from them (an aiokafka
        # without them fails here, rather than fetching one event at a time unnoticed)
        for name, value in options.items():
            if not hasattr(consumer, f"_{name}"):
                raise RuntimeError(f"aiokafka's consumer has no _{name} to set")
            setattr(consumer, f"_{name}", value)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class _App(faust.App):
    """A faust app whose Kafka consumer fetches with ``fetch_options``."""

    def __init__(self, *args: Any, fetch_options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_options = fetch_options

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)


def _trace(read_model: str, batch: list[Decoded], started: int) -> None:
    """A consumer span per traced event of a batch applied to a read model (a child of
    the event's creation context), from the batch's start to its commit."""
    for item in batch:
        if item.event is None or not tracing.sampled_header(item.event.envelope.traceparent):
            continue
        envelope = item.event.envelope
        tracing.TRACER.start_span(
            f"project {read_model}",
            context=tracing.context_of(envelope.traceparent, envelope.tracestate),
            kind=tracing.SpanKind.CONSUMER,
            start_time=started,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": item.message.topic,
                "messaging.destination.partition.id": str(item.message.partition),
                "messaging.kafka.offset": item.message.offset,
                "messaging.message.id": envelope.id,
                "cloudevents.event_type": envelope.type,
                "clr.read_model": read_model,
            },
        ).end()


_STREAM_API = ("add_processor", "_enable_passive", "_processors", "_active_agens", "ack")


def batches(stream: Any, max_: int, within: float) -> AsyncIterator[list[Any]]:
    """The stream's events in batches: up to ``max_``, taken ``within`` seconds of the
    first, acknowledged once the caller asks for the next batch. A batch the caller
    abandons (the agent cancelled or closed mid-apply, its transaction rolled back) is not
    acknowledged, nor is anything the stream reads after the batches closed, so the
    group's committed offset never passes an event no read model applied: faust's own
    ``take_events`` acknowledges both.

    faust's ``Stream.take_events`` (faust-streaming 0.15.3), but an idle stream costs
    nothing: it waits for a first event with no timeout, where faust's wakes every
    ``within`` seconds, events or none (three agents at 0.02 s kept an idle instance at
    6 % of a core on a slow machine). Registered with the stream like faust's own, which
    closes it when the stream stops.

    Raises:
        RuntimeError: this faust's stream lacks what the batches rely on.
    """
    missing = [name for name in _STREAM_API if not hasattr(stream, name)]
    if missing:
        raise RuntimeError(f"faust's stream has no {', '.join(missing)}: see projections.live")
    agen = _batches(stream, max_, within)
    stream._active_agens.add(agen)
    return agen


async def _batches(stream: Any, max_: int, within: float) -> AsyncGenerator[list[Any], None]:
    events: list[Any] = []
    started, full, consumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    consuming: asyncio.Future[None] | None = None

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:  # the caller is applying a batch: wait for it
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("a batch found no current event")
            events.append(event)
            started.set()
            if len(events) >= max_:
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # never more than max_ in one batch
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("adding to a batch failed: %r", error)
            await stream.crash(error)
        return value

    stream.enable_acks = False  # acknowledged here, once the batch is applied
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(started)  # idle: no timeout, no wake-ups
            await stream.wait_for_stopped(full, timeout=within)
            if not events:
                continue
            consuming = asyncio.get_running_loop().create_future()
            applied = False
            try:
                yield list(events)
                applied = True  # the caller asked for the next batch: this one is applied
            finally:
                taken = list(events)
                events.clear()
                started.clear()
                if applied:  # a batch abandoned mid-apply (cancelled, closed) stays unacked
                    for event in taken:
                        await stream.ack(event)
                notify(consuming)
                full.clear()
                consumed.set()
    finally:
        # acks stay off: whatever the stream still reads once the batches are closed (its
        # reader runs until the stream stops) was applied by nobody, and acknowledging it
        # would let the group's committed offset pass it
        stream._processors.remove(add_to_buffer)
