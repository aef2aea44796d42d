"""Lag reads shared for a second: concurrent callers share one read, a failure is not kept."""

from __future__ import annotations

import asyncio

import pytest

from projections.offsets import Recent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_callers_within_the_ttl_share_one_read_and_a_later_one_reads_again() -> None:
    clock, reads = Clock(), []

    async def read() -> int:
        reads.append(clock.now)
        await asyncio.sleep(0.01)  # the others arrive while it runs
        return len(reads)

    recent: Recent[int] = Recent(1.0, clock)
    assert await asyncio.gather(*(recent.get(read) for _ in range(5))) == [1] * 5
    clock.now = 100.75
    assert await recent.get(read) == 1
    clock.now = 101.25
    assert await recent.get(read) == 2
    assert reads == [100.0, 101.25]


async def test_a_failed_read_is_not_kept() -> None:
    recent: Recent[int] = Recent(1.0, Clock())

    async def broken() -> int:
        raise ConnectionError("broker away")

    async def fine() -> int:
        return 7

    with pytest.raises(ConnectionError):
        await recent.get(broken)
    assert await recent.get(fine) == 7
