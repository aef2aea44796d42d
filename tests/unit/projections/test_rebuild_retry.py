"""A rebuild's batch that fails transiently is retried; any other failure ends the rebuild
(``apply_batch`` has already dead-lettered what the records cause)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from projections import rebuild
from projections.read_models.experts import ExpertRegister


def failing(*errors: BaseException) -> Any:
    left = list(errors)

    async def apply_batch(*_: Any, **__: Any) -> int:
        if left:
            raise left.pop(0)
        return 3

    return apply_batch


async def no_wait(_: float) -> None:
    """asyncio.sleep without the wait."""


async def test_a_transient_failure_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
    monkeypatch.setattr(rebuild, "apply_batch", failing(lost, TimeoutError()))
    monkeypatch.setattr(asyncio, "sleep", no_wait)
    applied = await rebuild._apply_retrying(None, ExpertRegister(), [], None, "s")  # type: ignore[arg-type]
    assert applied == 3


async def test_another_failure_or_one_that_outlasts_the_retries_ends_the_rebuild(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asyncio, "sleep", no_wait)
    monkeypatch.setattr(rebuild, "apply_batch", failing(RuntimeError("a bug")))
    with pytest.raises(RuntimeError):
        await rebuild._apply_retrying(None, ExpertRegister(), [], None, "s")  # type: ignore[arg-type]
    endless = failing(*(TimeoutError() for _ in range(rebuild._RETRIES + 1)))
    monkeypatch.setattr(rebuild, "apply_batch", endless)
    with pytest.raises(TimeoutError):
        await rebuild._apply_retrying(None, ExpertRegister(), [], None, "s")  # type: ignore[arg-type]
