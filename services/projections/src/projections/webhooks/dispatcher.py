"""One instance delivers: an advisory lock elects it; it runs a loop per active subscription.

The dispatcher holds ``pg_try_advisory_lock(hashtext('webhooks'))`` on a connection of its
own, which also LISTENs on ``projections_feed`` (the feed's head moved: wake the loops) and
``webhooks`` (a subscription changed: start, stop or restart its loop). Other instances
wait and try for the lock every few seconds; PostgreSQL releases it with a dead session,
so a killed instance's deliveries are taken over. Every few seconds, and on each
``webhooks`` notification, the dispatcher compares the active subscriptions' revisions
with its loops'. A lost PostgreSQL (the lock's session, or a loop's query) stops every
loop; the dispatcher retries with backoff and jitter, one warning per outage
(``clr_events.outage``), and starts them again from their stored cursors. Kafka is never
touched here: while it is away the feed does not move and the loops wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
import asyncpg

from clr_events.outage import Outage, backoff
from clr_events.pg import Pool, named
from projections.webhooks import store
from projections.webhooks.delivery import (
    Counters,
    DeliverySettings,
    FeedCache,
    Signal,
    SubscriptionLoop,
    new_session,
)

log = logging.getLogger(__name__)

LOCK = "webhooks"
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
SYNC_SECONDS = 3.0
"""How often the subscriptions are read again without a notification."""
STANDBY_SECONDS = 5.0
"""How often a standby instance tries for the lock."""


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Dispatcher:
    """Runs the delivery loops while this instance holds the lock."""

    def __init__(self, pool: Pool, database_url: str, settings: DeliverySettings) -> None:
        self._pool = pool
        self._database_url = database_url
        self._settings = settings
        self.counters = Counters()
        self.leading = False
        self.failing: str | None = None
        self._loops: dict[str, tuple[int, asyncio.Task[None]]] = {}
        self._feed = Signal()
        self._changed = Signal()
        self._outage = Outage("webhook delivery", log)

    async def run(self, stop: asyncio.Event) -> None:
        """Lead (or stand by) until ``stop``; PostgreSQL lost: retry with backoff."""
        delay = RETRY_FIRST
        while not stop.is_set():
            try:
                await self._lead(stop)
            except Exception as error:  # PostgreSQL away (or a loop's unexpected failure)
                self.failing = repr(error)
                pause, delay = backoff(delay, maximum=RETRY_MAX)
                self._outage.failed(error, retry_in=pause)
                await _wait(stop, pause)
                continue
            delay = RETRY_FIRST

    async def _lead(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._database_url, **named(self._database_url, "projections")
        )
        session = new_session(self._settings)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOCK):
                self._healthy()
                await _wait(stop, STANDBY_SECONDS)
                if stop.is_set():
                    return
            self.leading = True
            cache = FeedCache(self._pool)
            await conn.add_listener("projections_feed", self._feed.notify)
            await conn.add_listener(store.CHANNEL, self._changed.notify)
            while not stop.is_set():
                await self._sync(session, cache)
                self._healthy()
                await conn.fetchval("SELECT 1", timeout=5.0)  # the lock's session lives
                await self._changed.wait(SYNC_SECONDS)
        finally:
            self.leading = False
            await self._stop_all()
            await session.close()
            with contextlib.suppress(Exception):
                await conn.close(timeout=2.0)

    def _healthy(self) -> None:
        self.failing = None
        self._outage.ended()

    async def _sync(self, session: aiohttp.ClientSession, cache: FeedCache) -> None:
        """Loops for the active subscriptions at their current revisions; a loop that
        failed (not an endpoint: those are retried inside) is re-raised here."""
        for sub_id, (_, task) in list(self._loops.items()):
            if task.done():
                del self._loops[sub_id]
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
        wanted = await store.revisions(self._pool)
        for sub_id, (revision, task) in list(self._loops.items()):
            if wanted.get(sub_id) != revision:
                del self._loops[sub_id]
                await _cancel(task)
        missing = [s for s in wanted if s not in self._loops]
        if not missing:
            return
        for row in await store.runnable(self._pool):
            if row["id"] not in missing:
                continue
            loop = SubscriptionLoop(
                self._pool, row, session, self._settings, self._feed, cache, self.counters
            )
            task = asyncio.get_running_loop().create_task(loop.run(), name=f"webhook:{row['id']}")
            task.add_done_callback(lambda _: self._changed.notify())
            self._loops[row["id"]] = (row["revision"], task)

    async def _stop_all(self) -> None:
        loops, self._loops = self._loops, {}
        for _, task in loops.values():
            await _cancel(task)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
