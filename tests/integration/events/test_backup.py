"""Backup and restore of a database's schemas with pg_dump and pg_restore, on the real
PostgreSQL (a database of its own: a restore replaces every schema it holds)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from clr_events.backup import BackupError, backup, republish, restore, restore_order
from clr_events.consumers.runner import CheckpointStore
from clr_events.outbox.relay import PostgresRelayCheckpoint
from clr_events.pg import Pool
from clr_events.store.base import NewEvent
from clr_events.store.postgres import PostgresEventStore


@pytest.fixture
async def database(pool: Pool, database_url: str) -> AsyncIterator[str]:
    """A fresh database's URL, dropped afterwards."""
    name = f"t_backup_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE DATABASE {name}")
    yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    await pool.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def append(store: PostgresEventStore, *streams: str) -> None:
    for stream in streams:
        await store.append(stream, None, [NewEvent("test.Happened.v1", {"s": stream})])


def test_a_schema_is_restored_after_those_its_views_read() -> None:
    reads = {"projections": {"rm_a", "rm_b"}, "rm_b": {"svc"}}
    assert restore_order(["projections", "rm_a", "rm_b", "svc"], reads) == [
        "rm_a",
        "svc",
        "rm_b",
        "projections",
    ]


async def test_a_restore_brings_back_every_schema_and_verifies_every_chain(
    database: str, tmp_path: Path
) -> None:
    # given a service's store, relay and consumer checkpoints, and a schema of views on it
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    assert pool is not None
    try:
        store = PostgresEventStore(pool, schema="svc")
        await store.migrate()
        await append(store, "a", "b", "c")
        relay = PostgresRelayCheckpoint(pool, "svc", "svc.events")
        await relay.migrate()
        await relay.save(3, 3, {"a": 1, "b": 1})
        async with pool.acquire() as conn:
            await CheckpointStore("svc").migrate(conn)
            await CheckpointStore("svc").save(conn, "svc.other", "other.events", 0, 41)
        await pool.execute(
            "CREATE SCHEMA reader; CREATE VIEW reader.v AS SELECT * FROM svc.event_store"
        )

        # when it is backed up, then changes (more events, a schema lost) and is restored
        manifest = await backup(database, tmp_path / "b1")
        assert manifest["restore_order"] == ["svc", "reader"]
        assert manifest["schemas"]["svc"]["event_store"]["position"] == 3
        assert manifest["schemas"]["reader"]["event_store"] is None
        await append(store, "d", "e")
        await relay.save(5, 5)
        await pool.execute("DROP SCHEMA reader CASCADE")
        await store.close()
        restored = await restore(database, tmp_path / "b1")

        # then each schema is as backed up, with its checkpoints, and the chain verified
        assert [(r.schema, r.events) for r in restored] == [("svc", 3), ("reader", None)]
        assert await pool.fetchval("SELECT count(*) FROM reader.v") == 3
        assert await relay.load() == (3, 3)
        async with pool.acquire() as conn:
            assert await CheckpointStore("svc").load(conn, "svc.other", "other.events", 0) == 41
        store = PostgresEventStore(pool, schema="svc")
        assert (await store.verify()).ok
        await append(store, "f")  # and the store takes appends again, on the chain
        assert (await store.verify()).checked == 4

        # a restore of one schema restores the schemas whose views read it as well
        again = await restore(database, tmp_path / "b1", ["svc"])
        assert [r.schema for r in again] == ["svc", "reader"]

        # after the topics were lost: relays from position zero, consumers from the start
        assert await republish(database) == {"svc": 4}
        assert await relay.load() == (0, 0)
        assert not await relay.counted()  # counted from the store again
        async with pool.acquire() as conn:
            assert await CheckpointStore("svc").load(conn, "svc.other", "other.events", 0) == -1
        await store.close()
    finally:
        await pool.close()


async def test_a_restore_refuses_an_altered_archive_or_a_chain_that_is_not_the_one_backed_up(
    database: str, tmp_path: Path
) -> None:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    assert pool is not None
    try:
        store = PostgresEventStore(pool, schema="svc")
        await store.migrate()
        await append(store, "a", "b")
        await store.close()
    finally:
        await pool.close()
    folder = tmp_path / "b"
    await backup(database, folder)
    with pytest.raises(BackupError, match="not empty"):
        await backup(database, folder)

    # a running service holds its relays' advisory locks: no restore, no republish
    running = await asyncpg.connect(database)
    try:
        await running.execute("SELECT pg_advisory_lock(hashtext('relay:svc:svc.events'))")
        with pytest.raises(BackupError, match="stop the services first"):
            await restore(database, folder)
        with pytest.raises(BackupError, match="stop the services first"):
            await republish(database)
    finally:
        await running.close()

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schemas"]["svc"]["event_store"]["hash"] = "00" * 32
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="not the one backed up"):
        await restore(database, folder)

    with (folder / "svc.dump").open("ab") as archive:
        archive.write(b"x")
    with pytest.raises(BackupError, match="not the file backed up"):
        await restore(database, folder)
