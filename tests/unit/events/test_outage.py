"""Quiet outages: one warning per outage, one line when it ends; aiokafka's repeats dropped."""

from __future__ import annotations

import asyncio
import logging

import pytest

from clr_events.outage import Outage, RepeatFilter, backoff
from clr_events.service.runtime import Runtime, ServiceSettings


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_filter_lets_the_first_of_each_kind_through_per_outage_and_counts_the_rest() -> None:
    repeat = RepeatFilter(quiet_seconds=3600)
    unable = "Unable connect to node with id %s: %s"
    assert repeat.filter(record("aiokafka.client", unable, 1, "refused"))
    assert not any(repeat.filter(record("aiokafka.client", unable, 1, "x")) for _ in range(1800))
    # another kind, and our own loggers, are not held back
    assert repeat.filter(record("aiokafka.client", "Unable to request metadata from %s", 1))
    assert all(repeat.filter(record("clr_events.outbox.relay", "relay failed")) for _ in range(3))
    assert repeat.filter(record("aiokafka.conn", "connected", level=logging.INFO))
    assert repeat.suppressed == {("aiokafka.client", unable): 1800}


def test_a_503_per_request_while_the_database_is_away_is_logged_once() -> None:
    repeat = RepeatFilter(quiet_seconds=3600)
    away = "database unavailable on %s %s: %r"
    name = "clr_events.service.problems.unavailable"
    passed = [
        repeat.filter(record(name, away, "POST", "/x", "refused", level=logging.WARNING))
        for _ in range(600)
    ]
    assert passed.count(True) == 1
    assert repeat.suppressed == {(name, away): 599}


def test_after_a_quiet_spell_the_next_outage_is_logged_with_the_count_of_the_last() -> None:
    repeat = RepeatFilter(quiet_seconds=0.0)  # every record comes after a quiet spell
    repeat.suppressed[("aiokafka.client", "Unable")] = 5
    again = record("aiokafka.client", "Unable")
    assert repeat.filter(again)
    assert "5 like it suppressed" in again.getMessage()
    assert repeat.suppressed == {}


def test_an_outage_warns_once_with_the_traceback_and_says_when_it_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage("relay:x", logging.getLogger("test.outage"))
    caplog.set_level(logging.INFO, "test.outage")
    for attempt in range(100):
        outage.failed(ConnectionError(f"attempt {attempt}"), retry_in=1.0)
    assert outage.away
    outage.ended()
    outage.ended()
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert len(lines) == 2
    assert lines[0][0] == "WARNING" and "attempt 0" in lines[0][1] and lines[0][2]
    assert "recovered" in lines[1][1] and "100 failed attempts" in lines[1][1]
    assert not outage.away


def test_backoff_doubles_to_its_maximum_with_jitter() -> None:
    delay, pauses = 0.5, []
    for _ in range(8):
        pause, delay = backoff(delay, maximum=4.0)
        pauses.append(pause)
    assert delay == 4.0
    assert 0.25 <= pauses[0] <= 0.5 and all(p <= 4.0 for p in pauses)


async def test_a_supervised_task_failing_again_and_again_logs_one_traceback_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = Runtime("quiet", settings=ServiceSettings(background=False))
    runtime.restart_first, runtime.restart_max, runtime.healthy_after = 0.001, 0.002, 0.2
    attempts = 0
    recovered = asyncio.Event()

    async def body(_: object) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 50:
            raise ConnectionRefusedError("PostgreSQL is away")
        await runtime._sleep(0.3)  # runs past healthy_after: the outage is over
        recovered.set()

    caplog.set_level(logging.INFO, "clr_events.service.runtime")
    runtime._spawn("job:quiet", body, None)
    await asyncio.wait_for(recovered.wait(), 10)
    await runtime.stop()
    assert attempts == 51
    logged = [r for r in caplog.records if r.name == "clr_events.service.runtime"]
    assert [r.levelname for r in logged] == ["WARNING", "WARNING"]
    assert logged[0].exc_info is not None and "PostgreSQL is away" in logged[0].getMessage()
    assert "recovered" in logged[1].getMessage() and "50 failed attempts" in logged[1].getMessage()
    assert runtime.failing == {}
