"""A read model's dead letter replayed after the fix, on the real PostgreSQL and Kafka:
applied once to the active generation, past the checkpoint, and never twice."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from clr_events.consumers.dlq import replay
from clr_events.kafka.producer import new_producer
from clr_events.kafka.topics import TopicSpec, ensure_topics
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from projections import dlq
from projections.core import (
    CONTROL,
    apply_batch,
    dead_letterer,
    decode_batch,
    ensure_generation,
    generation_schema,
)
from projections.read_models import all as read_models
from tests.integration.projections.test_apply_batch import Notes, registered


@pytest.fixture
async def notes(pool: Pool) -> AsyncIterator[Notes]:
    """A read model with an active generation, known to the replay command by its name."""
    model = Notes()
    await ensure_generation(pool, model)
    read_models.READ_MODELS[model.name] = model
    yield model
    del read_models.READ_MODELS[model.name]
    await pool.execute(f"DROP SCHEMA IF EXISTS {generation_schema(model, 1)} CASCADE")
    await pool.execute(f"DELETE FROM {CONTROL}.read_models WHERE name = $1", model.name)
    await pool.execute(
        f"DELETE FROM {CONTROL}.dlq_replays WHERE consumer_group = $1", f"projections.{model.name}"
    )


async def test_a_refused_record_replayed_after_the_fix_is_applied_once(
    pool: Pool, notes: Notes, kafka_bootstrap: str
) -> None:
    # given a record the read model refused, dead-lettered by the live path
    settings = ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap)
    group = f"projections.{notes.name}"
    await ensure_topics(settings, [TopicSpec(f"{group}.dlq")])
    producer = new_producer(settings)
    await producer.start()
    try:
        dead_letter = dead_letterer(producer, settings, notes, Counter())
        batch = decode_batch([registered(0, "o-1"), registered(1, "refused"), registered(2, "o-3")])
        assert await apply_batch(pool, notes, batch, dead_letter) == 2
    finally:
        await producer.stop()
    schema = generation_schema(notes, 1)

    async def positions() -> list[int]:
        rows = await pool.fetch(f"SELECT position FROM {schema}.notes ORDER BY position")
        return [r["position"] for r in rows]

    assert await positions() == [1, 3]

    # when the read model is fixed and its dead letters are replayed (twice)
    await pool.execute(f"ALTER TABLE {schema}.notes DROP CONSTRAINT notes_org_id_check")
    target = dlq.replay_target(group, settings)
    first = await replay(pool, settings, target, report=lambda _: None)
    second = await replay(pool, settings, target, report=lambda _: None)

    # then the refused record is in the read model once, and the second run did nothing
    assert (first.replayed, first.failed, second.replayed, second.already) == ([0], {}, [], [0])
    assert await positions() == [1, 2, 3]
    marked = await pool.fetch(
        f'SELECT topic, partition, "offset" FROM {CONTROL}.dlq_replays WHERE consumer_group = $1',
        group,
    )
    assert [tuple(r) for r in marked] == [("test.events", 0, 1)]


async def test_an_unknown_read_model_is_named_as_such() -> None:
    with pytest.raises(LookupError, match="no read model"):
        dlq.replay_target(f"projections.{uuid.uuid4().hex}", ConnectionSettings())
