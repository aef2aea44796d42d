"""The webhook dispatcher while PostgreSQL cannot be reached: it retries with backoff (no
spinning), logs one warning for the outage (not one per attempt), says why it fails, and
stops promptly."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from clr_events.pg import Pool
from projections.webhooks.delivery import DeliverySettings
from projections.webhooks.dispatcher import Dispatcher


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: refused


async def test_an_unreachable_postgresql_is_retried_with_backoff_and_logged_once(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    dispatcher = Dispatcher(pool, url, DeliverySettings())
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="projections.webhooks"):
        task = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(4.0)
        assert dispatcher.failing is not None and not dispatcher.leading
        stop.set()
        await asyncio.wait_for(task, 5.0)
    warnings = [r for r in caplog.records if r.name.startswith("projections.webhooks")]
    assert len(warnings) == 1 and "webhook delivery failed" in warnings[0].getMessage()
    # 0.5 s doubling (50-100 % of it): at most 1 + 4 attempts in 4 s, at least 2
    attempts = dispatcher._outage.failures
    assert 2 <= attempts <= 6, attempts
