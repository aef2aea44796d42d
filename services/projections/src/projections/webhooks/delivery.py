"""One subscription's delivery loop: the feed after its cursor, pushed to its endpoint.

The loop reads the public feed (the label register's ``feed`` table, up to its head: the
events the projections service serves at ``/api/feed``) after the subscription's cursor,
a batch at a time. A batch's events are split into lanes by subject (one label record,
``org_id:level``); lanes go out concurrently (at most ``webhook_max_in_flight``), each
lane's events one after the other, each retried until delivered. Once the whole batch is
delivered the cursor moves to its last position, written to PostgreSQL at most every
``cursor_interval_seconds`` while events keep coming and at once when the loop has caught
up: a restart re-sends at most what was delivered since the last write
(at-least-once; ``webhook-id`` is the event id, so a receiver drops repeats by it).
A failure closes a gate for the whole subscription (exponential
backoff with jitter, or the endpoint's ``Retry-After``): every lane waits for it, so a
failing endpoint is tried once per round, not once per lane.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import re
import socket
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from clr_events.outage import Outage
from clr_events.pg import Pool
from projections import queries
from projections.webhooks import signing, store
from projections.webhooks.policy import (
    RetryPolicy,
    Verdict,
    address_allowed,
    retry_after,
    target_refusal,
    verdict,
)

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
USER_AGENT = "cluster-label-registry-webhooks/1"
AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds from an event's recording to its delivery: the histogram's bounds."""
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
READ_LIMIT = 65536
"""Bytes of an endpoint's answer read at most (the rest is dropped with the connection)."""


@dataclass(frozen=True)
class DeliverySettings:
    """How the loops deliver (``CLR_WEBHOOK_*`` in ``ProjectionSettings``)."""

    allow_private_targets: bool = False
    timeout_seconds: float = 15.0
    max_in_flight: int = 16
    batch: int = 200
    idle_poll_seconds: float = 5.0
    cursor_interval_seconds: float = 0.5
    policy: RetryPolicy = field(default_factory=RetryPolicy)


class Signal:
    """Wakes waiters when something may have changed (a NOTIFY): never the truth."""

    def __init__(self) -> None:
        self._moved = asyncio.Event()
        self.generation = 0
        """Notifications so far: read it before looking, wait ``since`` it."""

    def notify(self, *_: object) -> None:
        """Wake every current waiter."""
        self.generation += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait(self, timeout: float, since: int | None = None) -> None:
        """Until the next notification (at once if one came after generation ``since``:
        none is missed between looking and waiting), or ``timeout``."""
        if since is not None and since != self.generation:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), timeout)


@dataclass
class Counters:
    """Delivery figures of this instance, by subscription (for ``/metrics``)."""

    delivered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    died: Counter[str] = field(default_factory=Counter)
    age_counts: list[int] = field(default_factory=lambda: [0] * len(AGE_BUCKETS))
    age_sum: float = 0.0
    age_count: int = 0

    def observe_age(self, seconds: float) -> None:
        """One delivery, ``seconds`` after its event was recorded."""
        self.age_sum += seconds
        self.age_count += 1
        for n, bound in enumerate(AGE_BUCKETS):
            if seconds <= bound:
                self.age_counts[n] += 1


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then keeps only the addresses delivery may call (SSRF: no
    private, loopback, link-local or reserved address unless private targets are allowed).
    The check is made on every connection, so a name that changes its address later
    (DNS rebinding) is refused too."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host``.

        Raises:
            OSError: none is allowed.
        """
        found = await self._inner.resolve(host, port, family)
        allowed = [
            r for r in found if address_allowed(r["host"], allow_private=self._allow_private)
        ]
        if not allowed:
            raise OSError(f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


def new_session(settings: DeliverySettings) -> aiohttp.ClientSession:
    """The HTTP client of every loop of this instance (keep-alive connections, the guard)."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow_private=settings.allow_private_targets),
        limit=0,
        limit_per_host=64,
    )
    return aiohttp.ClientSession(
        connector=connector, headers={"User-Agent": USER_AGENT}, auto_decompress=False
    )


@dataclass(frozen=True)
class FeedEvent:
    """A feed event as delivered: its position, webhook id, record key and exact body."""

    position: int
    message_id: str
    key: str
    type: str
    recorded: float
    body: bytes


def feed_event(document: str) -> FeedEvent:
    """The feed's structured CloudEvent as a webhook message (its bytes sent as they are)."""
    event: dict[str, Any] = orjson.loads(document)
    position = int(event["globalposition"])
    event_id = str(event.get("id", ""))
    try:
        recorded = datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        recorded = time.time()
    return FeedEvent(
        position=position,
        message_id=event_id if _MESSAGE_ID.match(event_id) else f"pos_{position}",
        key=str(event.get("subject", "")),
        type=str(event.get("type", "")),
        recorded=recorded,
        body=document.encode(),
    )


async def feed_after(pool: Pool, after: int, limit: int) -> tuple[int, list[FeedEvent]]:
    """(the feed's head, its events after ``after`` up to the head, in position order)."""
    async with pool.acquire() as conn:
        head, documents = await queries.feed_page(conn, after, limit)
    return head, [feed_event(d) for d in documents]


class FeedCache:
    """The feed's recent events, read once for every loop of the instance.

    Holds every feed event after ``start`` up to ``end`` (at most ``capacity``, the oldest
    dropped first). A loop at or above ``start`` is served from memory; when it has read
    everything held, one query (one at a time: loops arriving meanwhile use its result)
    reads what came after ``end``. A loop further behind (a replay, a new subscription
    from 0) reads PostgreSQL directly. The feed below its head never changes, so what is
    held stays true.
    """

    def __init__(self, pool: Pool, capacity: int = 20_000) -> None:
        self._pool = pool
        self._capacity = capacity
        self._events: list[FeedEvent] = []
        self._positions: list[int] = []
        self.start: int | None = None
        self.end = 0
        self._reads = 0
        self._lock = asyncio.Lock()

    async def after(self, position: int, limit: int) -> list[FeedEvent]:
        """Up to ``limit`` events after ``position``, up to the feed's head (or what was
        the head a moment ago)."""
        if self.start is None:
            self.start = self.end = position
        if position < self.start:
            return (await feed_after(self._pool, position, limit))[1]
        if position >= self.end:
            await self._read_more()
        first = bisect.bisect_right(self._positions, position)
        return self._events[first : first + limit]

    async def _read_more(self) -> None:
        asked = self._reads
        async with self._lock:
            if self._reads != asked:
                return  # another loop read while this one waited
            head, events = await feed_after(self._pool, self.end, 1000)
            self._reads += 1
            self._events += events
            self._positions += [e.position for e in events]
            self.end = max(self.end, head if len(events) < 1000 else events[-1].position)
            if len(self._events) > self._capacity:
                drop = len(self._events) - self._capacity
                self.start = self._positions[drop - 1]
                del self._events[:drop], self._positions[:drop]


class StoppedError(Exception):
    """The loop ends: the subscription is dead, or changed under it (another revision)."""


class SubscriptionLoop:
    """Delivers one subscription's events until it is dead, changed or cancelled.

    Anything but an endpoint's failure (PostgreSQL away, above all) leaves ``run`` as an
    exception: the dispatcher restarts every loop from its stored cursor, with backoff.
    """

    def __init__(
        self,
        pool: Pool,
        row: dict[str, Any],
        session: aiohttp.ClientSession,
        settings: DeliverySettings,
        feed: Signal,
        cache: FeedCache,
        counters: Counters,
    ) -> None:
        self._pool = pool
        self._session = session
        self._settings = settings
        self._feed = feed
        self._cache = cache
        self._counters = counters
        self.id: str = row["id"]
        self.url: str = row["url"]
        self.revision: int = row["revision"]
        self.position: int = row["position"]
        self._types = frozenset(row["types"]) if row["types"] else None
        self._secret: str = row["secret"]
        self._previous: str | None = row["previous_secret"]
        self._previous_until: datetime | None = row["previous_secret_expires_at"]
        self.failures: int = row["failures"]
        self._failing_since: datetime | None = row["failing_since"]
        self._to_clear = False
        self._saved = self.position
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._not_before = 0.0
        self._round_started = float("-inf")
        self._outage = Outage(f"webhook {self.id} ({self.url})", log)

    def secrets(self) -> list[str]:
        """The signing secrets in use: the current one, and the previous during its overlap."""
        now = datetime.now(UTC)
        if self._previous and self._previous_until is not None and self._previous_until > now:
            return [self._secret, self._previous]
        return [self._secret]

    async def run(self) -> None:
        """Deliver batch after batch; returns when the subscription is dead or changed."""
        refusal = target_refusal(self.url, allow_private=self._settings.allow_private_targets)
        if refusal is not None:
            await store.died(self._pool, self.id, self.revision, f"target refused: {refusal}")
            return
        try:
            while True:
                seen = self._feed.generation
                events = await self._cache.after(self.position, self._settings.batch)
                if not events:
                    await self._save()  # caught up: the cursor is written before waiting
                    await self._feed.wait(self._settings.idle_poll_seconds, since=seen)
                    continue
                wanted = [e for e in events if self._types is None or e.type in self._types]
                await self._deliver_all(wanted)
                self.position = events[-1].position
                self._unsaved += len(wanted)
                if time.monotonic() - self._saved_at >= self._settings.cursor_interval_seconds:
                    await self._save()
        except StoppedError:
            return

    async def _save(self) -> None:
        """Write the cursor (and clear the failure state after a recovery).

        Raises:
            StoppedError: the subscription changed meanwhile (its revision).
        """
        if self.position == self._saved and not self._to_clear:
            return
        if not await store.advance(
            self._pool, self.id, self.revision, self.position, self._unsaved, self._to_clear
        ):
            raise StoppedError
        self._saved, self._unsaved, self._to_clear = self.position, 0, False
        self._saved_at = time.monotonic()

    async def _deliver_all(self, events: list[FeedEvent]) -> None:
        lanes: dict[str, list[FeedEvent]] = defaultdict(list)
        for event in events:
            lanes[event.key].append(event)
        slots = asyncio.Semaphore(self._settings.max_in_flight)

        async def lane(queue: list[FeedEvent]) -> None:
            async with slots:
                for event in queue:
                    await self._deliver(event)

        try:
            async with asyncio.TaskGroup() as group:
                for queue in lanes.values():
                    group.create_task(lane(queue))
        except BaseExceptionGroup as failures:
            # a lane's own failure (PostgreSQL away) goes first; else a lane stopped
            others = failures.subgroup(lambda e: not isinstance(e, StoppedError))
            if others is not None:
                raise others.exceptions[0] from failures
            raise StoppedError from None

    async def _deliver(self, event: FeedEvent) -> None:
        """Until delivered.

        Raises:
            StoppedError: the endpoint is dead (410, or failing too long), or the subscription
                changed meanwhile.
        """
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            started = time.monotonic()
            status, error, asked = await self._attempt(event)
            outcome = Verdict.RETRY if status is None else verdict(status)
            if outcome is Verdict.DELIVERED:
                self._delivered(event)
                return
            self._counters.failed[self.id] += 1
            if outcome is Verdict.GONE:
                await self._die("the endpoint answered 410 Gone")
            if started < self._round_started:
                continue  # in flight when this round's failure was counted: counted once
            await self._failed(status, error, asked)

    def _delivered(self, event: FeedEvent) -> None:
        self._counters.delivered[self.id] += 1
        self._counters.observe_age(max(0.0, time.time() - event.recorded))
        if self.failures:
            self.failures, self._failing_since, self._to_clear = 0, None, True
            self._outage.ended()

    async def _failed(self, status: int | None, error: str, asked: float | None) -> None:
        now = datetime.now(UTC)
        self.failures += 1
        self._failing_since = self._failing_since or now
        policy = self._settings.policy
        failing_for = (now - self._failing_since).total_seconds()
        if policy.dead(self.failures, failing_for):
            await self._die(
                f"{self.failures} attempts failed over {failing_for:.0f} s; last: {error}"
            )
        delay = policy.delay(self.failures, asked)
        self._round_started = time.monotonic()
        self._not_before = self._round_started + delay
        self._outage.failed(ConnectionError(error), retry_in=delay)
        if not await store.failed(
            self._pool,
            self.id,
            self.revision,
            failures=self.failures,
            failing_since=self._failing_since,
            status=status,
            error=error,
            retry_in=delay,
        ):
            raise StoppedError

    async def _die(self, reason: str) -> None:
        self._counters.died[self.id] += 1
        log.warning("webhook %s (%s) is dead: %s", self.id, self.url, reason)
        await store.died(self._pool, self.id, self.revision, reason)
        raise StoppedError

    async def _attempt(self, event: FeedEvent) -> tuple[int | None, str, float | None]:
        """One POST: (status or None, what went wrong, a Retry-After in seconds)."""
        headers = signing.headers(self.secrets(), event.message_id, int(time.time()), event.body)
        headers["Content-Type"] = CONTENT_TYPE
        timeout = self._settings.timeout_seconds
        try:
            async with self._session.post(
                self.url,
                data=event.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                await response.content.read(READ_LIMIT)
                asked = retry_after(
                    response.status, response.headers.get("Retry-After"), time.time()
                )
                return response.status, f"HTTP {response.status}", asked
        except TimeoutError:
            return None, f"no answer within {timeout:g} s", None
        except Exception as error:  # refused, reset, a bad name: the endpoint's failure
            return None, f"{type(error).__name__}: {error}", None
