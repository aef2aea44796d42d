"""A Kafka cluster of three brokers (``CLR_KAFKA_BROKERS=3``) loses one to ``kill -9`` under
a steady load and gets it back: no outage (every command answered 201, every service ready
throughout) and nothing lost (every event of the store on its topic, the read model equal
to the store).

A PostgreSQL and a three-broker Kafka of the test's own (``deploy/local/stack.sh`` with its
own state folder in /tmp and ports beside the session's), stopped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.codec import from_kafka
from clr_events.settings import ConnectionSettings
from projections.core import CONTROL
from tests.e2e import scenario
from tests.e2e.conftest import System

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack.sh"
BASE = int(os.environ.get("CLR_E2E_PORT_BASE", "18100"))
PORTS = {name: BASE + 90 + n for n, name in enumerate(supervisor.SERVICES)}


@dataclass
class Cluster:
    """The test's PostgreSQL and three brokers."""

    state: Path

    @property
    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "CLR_STATE_DIR": str(self.state),
            "CLR_PG_PORT": str(BASE + 80),
            "CLR_KAFKA_PORT": str(BASE + 82),  # nodes on + 82, + 84, + 86
            "CLR_KAFKA_CONTROLLER_PORT": str(BASE + 83),  # controllers on + 83, + 85, + 87
            "CLR_KAFKA_BROKERS": "3",
        }

    def run(self, command: str) -> str:
        done = subprocess.run(
            [str(STACK), command],
            env=self.environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"stack.sh {command} failed:\n{done.stderr}")
        return done.stdout

    def settings(self) -> dict[str, str]:
        """``stack.sh env`` as variables."""
        return {
            name: value
            for line in self.run("env").splitlines()
            if line.startswith("export ")
            for name, _, value in [line.removeprefix("export ").partition("=")]
        }

    def kill(self, node: int) -> None:
        """``kill -9`` of broker ``node``."""
        pid = int((self.state / "kafka" / f"node{node}" / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    state = Path(tempfile.mkdtemp(prefix="clr-brokers-"))
    state.chmod(0o755)  # the postgres user keeps its data inside
    shared = Path(os.environ.get("CLR_STATE_DIR", ROOT / ".local")) / "kafka" / "libs"
    if (shared / ".complete").exists():
        shutil.copytree(shared, state / "kafka" / "libs")  # the jars only: no download
    found = Cluster(state)
    try:
        found.run("start")
        yield found
    finally:
        try:
            found.run("stop")
        finally:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
async def base(cluster: Cluster) -> AsyncIterator[ConnectionSettings]:
    values = cluster.settings()
    yield ConnectionSettings(
        database_url=values["CLR_DATABASE_URL"],
        kafka_bootstrap_servers=values["CLR_KAFKA_BOOTSTRAP_SERVERS"],
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_username="admin",
        kafka_password=SecretStr(values["CLR_KAFKA_PASSWORD"]),
    )


async def replication(settings: ConnectionSettings, topic: str) -> tuple[set[int], str]:
    """The replicas per partition of a topic, and its min.insync.replicas."""
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"min.insync.replicas": None})]
        )
        ((*_, entries),) = response.resources
        (value,) = [entry[1] for entry in entries if entry[0] == "min.insync.replicas"]
        return {len(p["replicas"]) for p in described["partitions"]}, value
    finally:
        await admin.close()


async def event_ids(settings: ConnectionSettings, topic: str) -> Counter[str]:
    """How often each event id is on a topic."""
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**settings.kafka_options(), enable_auto_commit=False)
    await consumer.start()
    found: Counter[str] = Counter()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    found[from_kafka(r.key, r.value, r.headers).id] += 1
    finally:
        await consumer.stop()
    return found


async def test_a_broker_killed_under_load_costs_no_outage_and_loses_nothing(
    cluster: Cluster, base: ConnectionSettings, tmp_path: Path
) -> None:
    settings = await install(base, "clr_brokers")
    topic = settings.topic("collaboration.events")
    assert await replication(base, topic) == ({3}, "2")
    secret = secrets.token_hex(32)
    env = {
        **service_env(settings, secret),
        "CLR_KAFKA_PASSWORDS_FILE": str(cluster.state / "kafka" / "passwords"),
    }
    running = await asyncio.to_thread(
        supervisor.start, tmp_path / "logs", ports=PORTS, env=env, timeout=180
    )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            system = System(running.urls, client, settings.kafka_bootstrap_servers, secret, "", "")
            written: list[str] = []
            unready: list[str] = []
            stop = asyncio.Event()

            async def writer() -> None:
                while not stop.is_set():  # scenario.organisation asserts each 201
                    written.append(await scenario.organisation(system))

            async def watcher() -> None:
                while not stop.is_set():
                    for name, url in running.urls.items():
                        answer = await client.get(f"{url}/readyz")
                        if answer.status_code != 200:
                            unready.append(f"{name}: {answer.text}")
                    await asyncio.sleep(0.5)

            async def until_written(count: int) -> None:
                await system.until(lambda: asyncio.sleep(0, len(written) >= count), "load")

            tasks = [asyncio.create_task(writer()) for _ in range(2)]
            tasks.append(asyncio.create_task(watcher()))
            try:
                await until_written(10)
                await asyncio.to_thread(cluster.kill, 2)  # a broker dies under load
                await until_written(40)
                await asyncio.to_thread(cluster.run, "start")  # and comes back
                await until_written(60)
            finally:
                stop.set()
                await asyncio.gather(*tasks)

            # no outage: every command was answered 201 (the writers assert it) and every
            # service stayed ready
            assert unready == []

            # nothing lost: every event of the store is on the topic
            stored = {
                str(row[0])
                for row in await pool.fetch("SELECT event_id FROM collaboration.event_store")
            }
            assert len(stored) == 2 * len(written)  # registered, validated

            async def published() -> bool:
                return stored <= set(await event_ids(base, topic))

            await system.until(published, "every stored event on the topic", timeout=120)

            # and the read model has every organisation the store has
            async def directory() -> bool:
                found = await pool.fetchval(
                    f"SELECT count(*) FROM {CONTROL}.organisations_orgs"
                    " WHERE org_id = ANY($1) AND validated_on IS NOT NULL",
                    written,
                )
                return bool(found == len(written))

            await system.until(directory, "every organisation in the directory", timeout=120)
    finally:
        await asyncio.to_thread(running.stop)
        await pool.close()
        await uninstall(base, settings)
