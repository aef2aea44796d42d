"""Lanes apply concurrently: the rebuild's count of applied events loses none of them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from projections import rebuild
from projections.read_models.labels import LabelRegister


async def test_every_lanes_applied_events_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    async def apply_batch(_pool: Any, _model: Any, chunk: list[Any], *_: Any, **__: Any) -> int:
        await asyncio.sleep(0)  # the other lane applies meanwhile
        return len(chunk)

    monkeypatch.setattr(rebuild, "apply_batch", apply_batch)
    state = rebuild._State([rebuild._Lane(), rebuild._Lane()])
    for number, lane in enumerate(state.lanes):
        for batch in range(3):
            lane.queue.put_nowait(([object()] * 10, {("t", number): batch}))  # type: ignore[list-item]
    tasks = [
        asyncio.create_task(rebuild._apply_lane(None, LabelRegister(), "s", None, lane, state))  # type: ignore[arg-type]
        for lane in state.lanes
    ]
    for _ in range(100):  # the queued batches are applied within a few turns of the loop
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    assert state.batches == 6

    assert state.messages == 60
    assert state.applied == 60
