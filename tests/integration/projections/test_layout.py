"""A read model whose layout version changed is rebuilt before the code writes to it, on the
real PostgreSQL and Kafka: the live agents wait meanwhile, the rebuilt generation has the
same rows and the new layout, and code of the earlier layout stops writing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from clr_events.kafka.producer import new_producer
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from projections.core import (
    CONTROL,
    StaleLayoutError,
    apply_batch,
    dead_letterer,
    decode_batch,
    ensure_generation,
    generation_schema,
    layout_of,
    live_layout,
)
from projections.layouts import rebuild_stale, stale
from tests.conftest import TopicFactory
from tests.integration.projections.test_apply_batch import Notes, registered


class NotesV2(Notes):
    """The same read model with a new layout (say a column was added)."""

    layout = 2


@pytest.fixture
async def notes(pool: Pool, new_topic: TopicFactory) -> AsyncIterator[Notes]:
    model = Notes()
    model.topics = (await new_topic("layout"),)
    yield model
    for generation in (1, 2, 3):
        await pool.execute(f"DROP SCHEMA IF EXISTS {generation_schema(model, generation)} CASCADE")
    for table in (*model.tables, "checkpoint"):
        await pool.execute(f"DROP VIEW IF EXISTS {CONTROL}.{model.name}_{table}")
    await pool.execute(f"DELETE FROM {CONTROL}.read_models WHERE name = $1", model.name)
    await pool.execute(f"DELETE FROM {CONTROL}.rebuilds WHERE name = $1", model.name)


async def test_a_changed_layout_is_rebuilt_to_the_same_rows_and_only_then_written(
    pool: Pool, notes: Notes, kafka_bootstrap: str
) -> None:
    settings = ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap)
    (topic,) = notes.topics
    producer = new_producer(settings)
    await producer.start()
    try:
        # given three events on the topic, applied live by code of layout 1
        records = [registered(n, f"o-{n}") for n in range(4)]
        for record in records[:3]:
            await producer.send_and_wait(
                topic, record.value, key=record.key, headers=list(record.headers)
            )
        assert await ensure_generation(pool, notes) == 1
        batch = decode_batch([dataclasses.replace(r, topic=topic) for r in records[:3]])
        dead = dead_letterer(producer, settings, notes, Counter())
        assert await apply_batch(pool, notes, batch, dead) == 3
        assert await live_layout(pool, notes) == 1

        # when code of layout 2 starts
        v2 = NotesV2()
        v2.name, v2.topics = notes.name, notes.topics
        assert layout_of(v2) == 2
        assert await ensure_generation(pool, v2) == 1  # no new generation by itself
        assert [m.name for m in await stale(pool, [v2])] == [notes.name]
        fourth = decode_batch([dataclasses.replace(records[3], topic=topic)])
        with pytest.raises(StaleLayoutError):  # its agents wait for the rebuild
            await apply_batch(pool, v2, fourth, dead)
        rebuilt = await rebuild_stale(pool, producer, settings, [v2], asyncio.Event())

        # then the read model was rebuilt once, to the same rows, and is of layout 2
        assert rebuilt == [notes.name]
        assert await live_layout(pool, v2) == 2
        assert await stale(pool, [v2]) == []
        generation = await pool.fetchval(
            f"SELECT generation FROM {CONTROL}.read_models WHERE name = $1", notes.name
        )
        assert generation == 2
        rows = await pool.fetch(f"SELECT * FROM {CONTROL}.{notes.name}_notes ORDER BY position")
        assert [tuple(r) for r in rows] == [(1, "o-0"), (2, "o-1"), (3, "o-2")]
        # the new code writes on; the earlier code's layout is stale now
        assert await apply_batch(pool, v2, fourth, dead) == 1
        with pytest.raises(StaleLayoutError):
            await apply_batch(pool, notes, fourth, dead)
        # and a second instance starting with layout 2 has nothing to rebuild
        assert await rebuild_stale(pool, producer, settings, [v2], asyncio.Event()) == []
    finally:
        await producer.stop()
