"""The webhooks of one projections instance: the table, the dispatcher, the figures."""

from __future__ import annotations

import asyncio
import contextlib

from clr_events.observability.metrics import Families
from clr_events.pg import Pool
from projections.webhooks import store
from projections.webhooks.delivery import AGE_BUCKETS
from projections.webhooks.dispatcher import Dispatcher
from projections.webhooks.settings import WebhookSettings


class Webhooks:
    """Started with the service; delivers only where the background tasks run."""

    def __init__(self, settings: WebhookSettings | None = None) -> None:
        self.settings = settings or WebhookSettings()
        self.dispatcher: Dispatcher | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self, pool: Pool, database_url: str, *, deliver: bool) -> None:
        """With ``deliver``, run the dispatcher (its table is made by the control schema's
        migrations, applied before)."""
        if not deliver:
            return
        self.dispatcher = Dispatcher(pool, database_url, self.settings.delivery())
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(
            self.dispatcher.run(self._stop), name="webhooks"
        )

    async def stop(self) -> None:
        """Stop the dispatcher and its loops."""
        if self._task is None:
            return
        self._stop.set()
        await asyncio.wait([self._task], timeout=5)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None

    @property
    def failing(self) -> str | None:
        """Why delivery is failing here (PostgreSQL away), or None."""
        return None if self.dispatcher is None else self.dispatcher.failing

    async def metrics(self, pool: Pool, families: Families) -> None:
        """Subscriptions by state, lag and failures per subscription (from PostgreSQL, the
        same on every instance); deliveries, failed attempts, deaths and the age of events
        at delivery (this instance's, while it leads)."""
        rows = await pool.fetch(
            "SELECT s.id, s.state, s.failures, (SELECT count(*) FROM projections.labels_feed f"
            " WHERE f.position > s.position AND f.position <= (SELECT coalesce(max(head), 0)"
            f" FROM projections.labels_feed_head)) AS lag FROM {store.TABLE} s ORDER BY s.id"
        )
        for state in store.STATES:
            families.gauge(
                "clr_webhook_subscriptions",
                "Webhook subscriptions by state.",
                sum(1 for r in rows if r["state"] == state),
                state=state,
            )
        for r in rows:
            sub = str(r["id"])
            families.gauge(
                "clr_webhook_lag_events",
                "Feed events a subscription has still to be delivered.",
                r["lag"],
                subscription=sub,
            )
            families.gauge(
                "clr_webhook_consecutive_failures",
                "Failed delivery attempts in a row of a subscription.",
                r["failures"],
                subscription=sub,
            )
        d = self.dispatcher
        if d is None:
            return
        families.gauge(
            "clr_webhook_dispatcher_leading",
            "1 where this instance delivers the webhooks (one instance does).",
            int(d.leading),
        )
        c = d.counters
        for r in rows:
            sub = str(r["id"])
            families.counter(
                "clr_webhook_deliveries",
                "Events delivered.",
                c.delivered[r["id"]],
                subscription=sub,
            )
            families.counter(
                "clr_webhook_failed_attempts",
                "Delivery attempts that failed.",
                c.failed[r["id"]],
                subscription=sub,
            )
            families.counter(
                "clr_webhook_dead",
                "Times a subscription was declared dead.",
                c.died[r["id"]],
                subscription=sub,
            )
        buckets = [
            (f"{bound:g}", float(count))
            for bound, count in zip(AGE_BUCKETS, c.age_counts, strict=True)
        ]
        families.histogram(
            "clr_webhook_delivery_age_seconds",
            "Seconds from an event's recording to its delivery.",
            [*buckets, ("+Inf", float(c.age_count))],
            c.age_sum,
        )
