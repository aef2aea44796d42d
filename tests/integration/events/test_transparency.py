"""The transparency log of a store on the real PostgreSQL and Kafka: the checkpoint loop
signs, stores and publishes; proofs over HTTP verify; a Kafka outage does not stop the
signing, a lost PostgreSQL session does not stop the loop; a rewritten store is refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from clr_events.consumers.errors import is_transient
from clr_events.kafka.topics import TopicSpec, ensure_topics
from clr_events.pg import Pool, application_name
from clr_events.service.runtime import Runtime, ServiceSettings, create_app
from clr_events.store.base import NewEvent
from clr_events.store.hashing import chain, content_digest
from clr_events.store.postgres import PostgresEventStore
from clr_events.transparency import http as transparency
from clr_events.transparency.log import LogTamperedError
from clr_events.transparency.merkle import verify_consistency, verify_inclusion
from clr_events.transparency.note import Checkpoint, VerifierKey, open_checkpoint
from tests.integration.events.kafka_helpers import read_topic


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tlog_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CLR_TLOG_EVERY_EVENTS", "5")
    monkeypatch.setenv("CLR_TLOG_EVERY_SECONDS", "0.3")
    monkeypatch.setenv("CLR_TLOG_KEY_DIR", str(tmp_path / "keys"))
    return tmp_path


@contextlib.asynccontextmanager
async def running(schema: str, database_url: str, kafka: str) -> AsyncIterator[Runtime]:
    """A service runtime of ``schema`` with its transparency log, started, and stopped after
    (within 30 s)."""
    settings = ServiceSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka, pool_max_size=6
    )
    runtime = Runtime(schema, settings=settings, transparency=True, restart_first=0.2)
    runtime.healthy_after = 1.0
    await runtime.start()
    try:
        yield runtime
    finally:
        await asyncio.wait_for(runtime.stop(), 30)


@pytest.fixture
async def topic(schema: str, kafka_bootstrap: str) -> AsyncIterator[str]:
    name = f"{schema}.checkpoints"
    await ensure_topics(
        ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap), [TopicSpec(name, 1)]
    )
    yield name


async def append(runtime: Runtime, count: int) -> None:
    await append_to(runtime.store, count)


async def append_to(store: PostgresEventStore, count: int) -> None:
    for i in range(count):
        await store.append(f"s-{uuid.uuid4().hex[:6]}", 0, [NewEvent("T", {"i": i})])


async def until_size(runtime: Runtime, size: int, *, published: bool, timeout: float) -> None:
    """Until a checkpoint of at least ``size`` is stored (and, if ``published``, sent);
    failing with what the runtime reports failing."""
    tlog = runtime.tlog
    query = f"SELECT max(tree_size) FROM {tlog.schema}.tlog_checkpoints" + (
        " WHERE published" if published else ""
    )
    deadline = asyncio.get_running_loop().time() + timeout
    while (await _stored(tlog.pool, query)) < size:
        assert asyncio.get_running_loop().time() < deadline, runtime.failing
        await asyncio.sleep(0.1)


async def _stored(pool: Pool, query: str) -> int:
    """The largest checkpoint stored; 0 when the runtime's pool hands out a session a test
    killed (asyncpg may still be consuming its termination: a transient error, as the
    services treat it)."""
    try:
        return int(await pool.fetchval(query) or 0)
    except Exception as error:
        if not is_transient(error):
            raise
        return 0


async def until_signed(runtime: Runtime, size: int, timeout: float = 20.0) -> None:
    await until_size(runtime, size, published=False, timeout=timeout)


async def until_published(runtime: Runtime, size: int, timeout: float = 20.0) -> None:
    await until_size(runtime, size, published=True, timeout=timeout)


async def test_checkpoints_are_signed_stored_published_and_proved(
    schema: str, database_url: str, kafka_bootstrap: str, topic: str, tlog_env: Path
) -> None:
    async with running(schema, database_url, kafka_bootstrap) as runtime:
        await append(runtime, 12)
        await until_signed(runtime, 12)
        (vkey_text,) = await runtime.tlog.keys()
        key = VerifierKey.parse(vkey_text)
        assert key.name == runtime.tlog.origin == f"cluster-label-registry/{schema}"
        assert (tlog_env / "keys" / "default" / f"{schema}.key").stat().st_mode & 0o777 == 0o600
        stored = await runtime.tlog.checkpoints()
        assert stored and stored[-1].tree_size == 12
        for checkpoint in stored:
            opened, _ = open_checkpoint(checkpoint.note, key)
            assert (opened.size, opened.root) == (checkpoint.tree_size, checkpoint.root_hash)

        records = await read_topic(kafka_bootstrap, topic, len(stored), 20.0, lambda r: True)
        published = [orjson.loads(r.value) for r in records]
        assert [p["tree_size"] for p in published] == [c.tree_size for c in stored]
        assert all(r.key == runtime.tlog.origin.encode() for r in records)

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=create_app(runtime, title="t", description="", routers=[transparency.router])
            ),
            base_url="http://t",
        ) as client:
            note = (await client.get("/transparency/checkpoint")).text
            latest, _ = open_checkpoint(note, key)
            assert latest.size == 12
            events = await runtime.store.read_all()
            for event in events:
                answer = (
                    await client.get(
                        "/transparency/proofs/inclusion", params={"position": event.position}
                    )
                ).json()
                proof = [base64.b64decode(p) for p in answer["proof"]]
                leaf = base64.b64decode(answer["leaf_hash"])
                assert leaf == __import__("hashlib").sha256(b"\x00" + event.hash).digest()
                assert verify_inclusion(event.position - 1, 12, leaf, proof, latest.root)
            first = stored[0]
            answer = (
                await client.get(
                    "/transparency/proofs/consistency", params={"first": first.tree_size}
                )
            ).json()
            assert verify_consistency(
                first.tree_size,
                12,
                first.root_hash,
                latest.root,
                [base64.b64decode(p) for p in answer["proof"]],
            )
            beyond = await client.get(
                "/transparency/proofs/inclusion", params={"position": 13, "tree_size": 12}
            )
            assert beyond.status_code == 422, beyond.text
            assert beyond.headers["content-type"] == "application/problem+json"
            order = await client.get(
                "/transparency/proofs/consistency", params={"first": 12, "second": 5}
            )
            assert order.status_code == 422


async def test_signing_goes_on_while_kafka_is_away_and_publishing_catches_up(
    schema: str, database_url: str, kafka_bootstrap: str, topic: str, tlog_env: Path
) -> None:
    async with running(schema, database_url, f"127.0.0.1:{closed_port()}") as away:
        await append(away, 7)
        await until_signed(away, 7)
        await asyncio.sleep(0.5)
        assert "checkpoints:publish" in away.failing
        unready = await away.unready()
        assert "checkpoints:publish" in unready and "kafka" in unready
    async with running(schema, database_url, kafka_bootstrap) as back:
        records = await read_topic(kafka_bootstrap, topic, 1, 20.0, lambda r: True)
        assert orjson.loads(records[-1].value)["tree_size"] == 7
        assert "checkpoints:publish" not in back.failing


async def test_the_loop_survives_losing_its_postgresql_sessions(
    schema: str, database_url: str, kafka_bootstrap: str, topic: str, tlog_env: Path, pool: Pool
) -> None:
    writer = PostgresEventStore(pool, schema=schema)  # another process's appends
    try:
        async with running(schema, database_url, kafka_bootstrap) as runtime:
            await append_to(writer, 5)
            await until_signed(runtime, 5)
            killed = await pool.fetchval(  # the runtime's sessions (named by its pool)
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                application_name(schema),
            )
            assert killed > 0
            await append_to(writer, 6)
            await until_signed(runtime, 11)
    finally:
        await writer.close()


async def test_a_store_at_rest_is_read_every_poll_not_at_once_again(
    schema: str, database_url: str, kafka_bootstrap: str, topic: str, tlog_env: Path
) -> None:
    # given a signed and published store, well past the time a signature is due (0.3 s)
    async with running(schema, database_url, kafka_bootstrap) as runtime:
        await append(runtime, 7)
        await until_signed(runtime, 7)
        checkpointer = runtime.checkpointer
        assert checkpointer is not None
        reads: list[str] = []

        class Counting:
            """The log's pool, counting the checkpointer's reads."""

            def __init__(self, pool: Pool) -> None:
                self.pool = pool

            def __getattr__(self, name: str) -> Any:
                return getattr(self.pool, name)

            async def fetchrow(self, query: str, *args: Any) -> Any:
                reads.append("head" if "event_store_head" in query else query)
                return await self.pool.fetchrow(query, *args)

            async def fetch(self, query: str, *args: Any) -> Any:
                reads.append("unpublished" if "tlog_checkpoints" in query else query)
                return await self.pool.fetch(query, *args)

        checkpointer.log.pool = Counting(checkpointer.log.pool)  # type: ignore[assignment]
        # when nothing is appended for two seconds
        await asyncio.sleep(2.0)
        # then the head is read once a poll (0.2 s), the checkpoints not at all (before: the
        # head and the checkpoints a hundred times a second each, a few % of a core a
        # service and hundreds of queries a second at rest)
        assert 5 <= reads.count("head") <= 12, reads.count("head")
        assert reads.count("unpublished") <= 1
        # and what is appended next is still signed and published
        await append(runtime, 1)
        await until_signed(runtime, 8)
        await until_published(runtime, 8)


async def test_a_store_rewritten_under_a_checkpoint_is_refused(
    schema: str, database_url: str, kafka_bootstrap: str, topic: str, tlog_env: Path, pool: Pool
) -> None:
    async with running(schema, database_url, kafka_bootstrap) as runtime:
        await append(runtime, 6)
        await until_signed(runtime, 6)
    await rewrite_consistently(pool, schema, position=3, data='{"i":99}')
    assert (await pool.fetchval(f"SELECT count(*) FROM {schema}.tlog_checkpoints")) > 0
    async with running(schema, database_url, kafka_bootstrap) as again:
        for _ in range(100):
            if "checkpoints" in again.failing:
                break
            await asyncio.sleep(0.1)
        assert "no longer match the checkpoint" in again.failing["checkpoints"]
        assert again.checkpointer is not None
        with pytest.raises(LogTamperedError):
            await again.checkpointer.resume()


async def rewrite_consistently(pool: Pool, schema: str, *, position: int, data: str) -> None:
    """An insider's rewrite: change one event, recompute every later hash and the head."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            f"UPDATE {schema}.event_store SET data = $1::json WHERE position = $2", data, position
        )
        rows = await conn.fetch(
            f"SELECT position, stream_id, version, event_id, type, schema_version, data::text,"
            f" metadata::text, recorded_at FROM {schema}.event_store ORDER BY position"
        )
        previous = bytes(32)
        for row in rows:
            digest = content_digest(row[1], row[3], row[4], row[5], row[6], row[7], row[8])
            previous = chain(previous, row[0], row[2], digest)
            await conn.execute(
                f"UPDATE {schema}.event_store SET hash = $1 WHERE position = $2", previous, row[0]
            )
        await conn.execute(f"UPDATE {schema}.event_store_head SET hash = $1", previous)


def test_checkpoint_text_is_the_c2sp_form() -> None:
    text = Checkpoint("example.org/log", 12, bytes(32)).text()
    assert text == "example.org/log\n12\n" + base64.b64encode(bytes(32)).decode() + "\n"
