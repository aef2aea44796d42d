"""A read model rebuilt from offset zero beside the live one, swapped in while serving."""

from __future__ import annotations

import asyncio

import asyncpg

from clr_events.kafka.producer import new_producer
from clr_events.settings import ConnectionSettings
from projections.read_models.all import READ_MODELS
from projections.rebuild import rebuild
from tests.e2e import scenario
from tests.e2e.conftest import System


async def test_the_label_register_is_rebuilt_beside_the_live_one_and_swapped_in(
    system: System,
) -> None:
    # given labels in the register and the page answering
    org, person = await scenario.bronze_label(system, "SI", "HR", "2025-05-03", "2025-05-20")
    await scenario.listed(system, org)
    before = (await system.get("projections", "/api/counts?on=2025-12-31")).json()
    feed_before = (await system.get("projections", "/api/feed?limit=1000")).json()
    assert feed_before["head"] > 0 and feed_before["events"]
    generation = {
        m["name"]: m["generation"]
        for m in (await system.get("projections", "/read-models")).json()["read_models"]
    }["labels"]

    # when the label register is rebuilt while the page keeps being asked
    settings = ConnectionSettings(
        database_url=system.database_url,
        kafka_bootstrap_servers=system.kafka,
        instance=system.instance,
    )
    pool = await asyncpg.create_pool(system.database_url, min_size=1, max_size=4)
    producer = new_producer(settings)
    await producer.start()
    answers: list[int] = []
    done = asyncio.Event()

    async def keep_asking() -> None:
        while not done.is_set():
            answers.append((await system.get("projections", "/?level=bronze")).status_code)
            await asyncio.sleep(0.05)

    asker = asyncio.create_task(keep_asking())
    progress: list[str] = []
    try:
        result = await rebuild(
            pool,
            producer,
            settings,
            READ_MODELS["labels"],
            batch=50,
            processes_from=0,  # in two processes (the default) however short the history
            progress=progress.append,
        )
    finally:
        done.set()
        await asker
        await producer.stop()
        await pool.close()

    # then the new generation is live, with the same figures, and the page never failed
    assert result.generation == generation + 1 and result.messages > 0
    models = (await system.get("projections", "/read-models")).json()
    live = {m["name"]: m for m in models["read_models"]}["labels"]
    assert live["generation"] == generation + 1
    assert next(r["state"] for r in models["rebuilds"] if r["name"] == "labels") == "swapped"
    after = (await system.get("projections", "/api/counts?on=2025-12-31")).json()
    assert after == before
    # the feed, its head settled once at the swap, is the same
    assert (await system.get("projections", "/api/feed?limit=1000")).json() == feed_before
    assert answers and set(answers) == {200}
    assert progress[-1].startswith("labels: generation")
    assert "labels: up to the end offsets of the start in 2 processes" in progress

    # and one process with one lane (a transaction at a time) builds the very same rows as
    # two processes of two lanes (the default) did
    lanes_rows = await rows_of(system.database_url)
    pool = await asyncpg.create_pool(system.database_url, min_size=1, max_size=4)
    producer = new_producer(ConnectionSettings(kafka_bootstrap_servers=system.kafka))
    await producer.start()
    try:
        again = await rebuild(
            pool,
            producer,
            settings,
            READ_MODELS["labels"],
            batch=50,
            lanes=1,
            processes=1,
            progress=progress.append,
        )
    finally:
        await producer.stop()
        await pool.close()
    assert again.generation == generation + 2
    assert await rows_of(system.database_url) == lanes_rows

    # and the live agent keeps feeding the new generation
    second = await scenario.organisation(system, "SI", validated_on="2024-01-10")
    await scenario.known_to_assessments(system, [second], [person])
    await scenario.bronze(system, second, person, "2025-10-03", "2025-10-20")
    await scenario.listed(system, second)


async def rows_of(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the active label register, through its views, in a stable order (but the
    snapshot outbox's: the live publisher drains it)."""
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: sorted(
                (tuple(r) for r in await conn.fetch(f"SELECT * FROM projections.labels_{table}")),
                key=repr,
            )
            for table in (*READ_MODELS["labels"].tables, "checkpoint")
            if table != "current_outbox"
        }
    finally:
        await conn.close()
