"""The snapshot publisher outlives a lost database or broker: it retries, it does not die."""

from __future__ import annotations

import asyncio
import logging

import pytest

from projections import current
from projections.current import CurrentPublisher
from projections.settings import ProjectionSettings


class Flaky(CurrentPublisher):
    """Fails ``failures`` rounds as a lost PostgreSQL does, then publishes one snapshot."""

    def __init__(self, failures: int, stop: asyncio.Event) -> None:
        super().__init__(None, None, ProjectionSettings())  # type: ignore[arg-type]  # unused
        self.failures = failures
        self.rounds = 0
        self.stop = stop
        self.failing_seen: list[str | None] = []

    async def publish_due(self, limit: int = 500) -> int:
        self.rounds += 1
        self.failing_seen.append(self.failing)
        if self.rounds <= self.failures:
            raise ConnectionResetError("connection was closed in the middle of operation")
        if self.rounds == self.failures + 1:
            return 1
        self.stop.set()
        return 0


async def test_a_failing_round_is_retried_with_backoff_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(current, "RETRY_FIRST", 0.001)
    monkeypatch.setattr(current, "RETRY_MAX", 0.002)
    caplog.set_level(logging.INFO, "projections.current")
    stop = asyncio.Event()
    publisher = Flaky(20, stop)
    await asyncio.wait_for(publisher.run(stop), 10)
    assert publisher.rounds == 22
    assert publisher.failing_seen[1] is not None and "ConnectionResetError" in (
        publisher.failing_seen[1] or ""
    )
    assert publisher.failing is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "snapshot publisher failed" in messages[0]
    assert "recovered" in messages[1] and "20 failed attempts" in messages[1]
