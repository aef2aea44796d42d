"""A read model whose layout changed is rebuilt when the service starts.

Each read model has a layout version (``layout``, see ``core.layout_of``) kept beside its
active generation. When an instance starts with code whose layout differs, the live
generation was made for other tables: that instance's live agents wait for it
(``core.StaleLayoutError``), the public reads go on from the live generation, and one
instance (a PostgreSQL advisory lock elects it) rebuilds the read model beside it into a
generation of the new layout and swaps it in (``projections.rebuild``); the swap records
the new layout, and the agents go on. The others wait for the swap. Instances still
running the earlier code stop writing once the new layout is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from projections.core import ReadModel, layout_of, live_layout
from projections.rebuild import rebuild

log = logging.getLogger(__name__)


async def stale(pool: Pool, models: Iterable[ReadModel]) -> list[ReadModel]:
    """The read models whose active generation has another layout than the code's."""
    return [m for m in models if await live_layout(pool, m) not in (None, layout_of(m))]


async def rebuild_stale(
    pool: Pool,
    producer: AIOKafkaProducer,
    settings: ConnectionSettings,
    models: Iterable[ReadModel],
    stop: asyncio.Event,
    *,
    wait: float = 2.0,
    processes: int = 1,
) -> list[str]:
    """Rebuild each of ``models`` whose layout is stale, or wait while another instance
    does; returns the names of those rebuilt here. Ends early when ``stop`` is set.

    Raises:
        Exception: a rebuild failed (the caller retries).
    """
    rebuilt: list[str] = []
    for model in models:
        key = f"projections:layout:{model.name}"
        while not stop.is_set() and await live_layout(pool, model) != layout_of(model):
            async with pool.acquire() as lock:
                if await lock.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
                    try:
                        if await live_layout(lock, model) != layout_of(model):
                            log.warning(
                                "%s: layout %s is live, this code's is %s: rebuilding",
                                model.name,
                                await live_layout(lock, model),
                                layout_of(model),
                            )
                            await rebuild(
                                pool,
                                producer,
                                settings,
                                model,
                                processes=processes,
                                progress=log.info,
                            )
                            rebuilt.append(model.name)
                    finally:
                        await lock.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
                    continue
            with contextlib.suppress(TimeoutError):  # another instance rebuilds it
                await asyncio.wait_for(stop.wait(), wait)
    return rebuilt
