"""PostgreSQL lost: ``make backup`` taken while the services ran, ``make restore`` after
they were stopped (every chain verified); a service started before the topics are brought
back in line takes commands but publishes nothing (its topic is ahead of its store); then
the topics brought back in line with the restored stores (deploy/runbooks/restore.md):
the registry is as it was at the backup, with what was accepted meanwhile, and takes
commands again.

Its own installation: its database is replaced and its topics deleted.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.backup import republish
from clr_events.kafka.producer import new_producer
from clr_events.settings import ConnectionSettings
from projections.core import CONTROL, forget_offsets
from projections.read_models.all import READ_MODELS
from projections.rebuild import rebuild
from tests.e2e import scenario
from tests.e2e.conftest import PORT_BASE, System
from tests.e2e.test_disaster import lost_and_created_again, read_model_rows
from tests.integration.events.kafka_helpers import read_topic

ROOT = Path(__file__).resolve().parents[2]
PORTS = {
    "collaboration": PORT_BASE + 75,
    "training_certification": PORT_BASE + 76,
    "projections": PORT_BASE + 77,
}


def backup_command(database_url: str, *args: str) -> str:
    """``python -m clr_events.backup ...`` (what make backup and make restore run)."""
    done = subprocess.run(
        [sys.executable, "-m", "clr_events.backup", *args],
        env={**os.environ, "CLR_DATABASE_URL": database_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_restored_backup_verifies_every_chain_and_the_registry_goes_on_from_it(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_restore")
    secret = secrets.token_hex(32)
    env = service_env(settings, secret)
    url = settings.database_url
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    running = await asyncio.to_thread(supervisor.start, tmp_path / "a", ports=PORTS, env=env)
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:

            def system() -> System:
                return System(running.urls, client, kafka_bootstrap, secret, "", "")

            async def in_directory(orgs: list[str]) -> bool:
                found = await pool.fetchval(
                    f"SELECT count(*) FROM {CONTROL}.organisations_orgs"
                    " WHERE org_id = ANY($1) AND validated_on IS NOT NULL",
                    orgs,
                )
                return bool(found == len(orgs))

            # given a registry backed up while it runs
            kept = [await scenario.organisation(system()) for _ in range(3)]
            await scenario.expert(system(), "DE", ["benchmarking_expert"], "2024-01-02")
            await system().until(lambda: in_directory(kept), "the directory")
            heads = {
                schema: await pool.fetchval(f"SELECT position FROM {schema}.event_store_head")
                for schema in ("collaboration", "training_certification")
            }
            printed = await asyncio.to_thread(backup_command, url, "backup", str(tmp_path / "b"))
            at = heads["collaboration"]
            assert f"collaboration: collaboration.dump, event store at position {at}" in printed
            rows = await read_model_rows(pool)

            # when more happens, PostgreSQL's data is lost, and the backup is restored
            lost = [await scenario.organisation(system()) for _ in range(2)]
            await system().until(lambda: in_directory(kept + lost), "the later ones")
            await asyncio.to_thread(running.stop)
            restored = await asyncio.to_thread(backup_command, url, "restore", str(tmp_path / "b"))

            # then every store is back at its backed-up head, its chain verified
            for schema, head in heads.items():
                assert f"{schema} restored: chain verified, {head} events" in restored
            assert (
                await pool.fetchval(
                    "SELECT count(*) FROM collaboration.organisations WHERE org_id = ANY($1)", lost
                )
                == 0
            )

            # and a service started on its restored store before the topics are brought in
            # line takes a command, but its relay publishes nothing: the topic holds other
            # events at the positions the store's new ones take
            alone = await asyncio.to_thread(
                supervisor.start,
                tmp_path / "behind",
                ports={"collaboration": PORTS["collaboration"]},
                env=env,
            )
            try:
                behind = System(alone.urls, client, kafka_bootstrap, secret, "", "")
                waiting = await scenario.organisation(behind, validated_on=None)

                async def refused() -> bool:
                    answer = await client.get(alone.urls["collaboration"] + "/readyz")
                    return answer.status_code == 503 and "TopicAheadError" in answer.text

                await behind.until(refused, "the relay to refuse its topic")
            finally:
                await asyncio.to_thread(alone.stop)
            topic = settings.topic("collaboration.events")
            ours = await read_topic(
                kafka_bootstrap, topic, 1, 3.0, lambda r: r.key == waiting.encode()
            )
            assert ours == []

            # and with the topics brought in line with the stores (the runbook), the read
            # side is as it was at the backup, with the command accepted meanwhile, and the
            # registry takes commands again
            await lost_and_created_again(base, settings)
            await republish(url)
            await forget_offsets(pool, READ_MODELS.values())
            running = await asyncio.to_thread(
                supervisor.start, tmp_path / "c", ports=PORTS, env=env
            )
            producer = new_producer(settings)
            await producer.start()
            try:
                for model in READ_MODELS.values():
                    await rebuild(pool, producer, settings, model, progress=lambda _: None)
            finally:
                await producer.stop()
            found = await read_model_rows(pool)
            assert {t: [r for r in v if waiting not in r] for t, v in found.items()} == rows
            directory = await pool.fetchval(
                f"SELECT count(*) FROM {CONTROL}.organisations_orgs WHERE org_id = $1", waiting
            )
            assert directory == 1  # accepted while its relay refused: published since
            later = await scenario.organisation(system())
            await system().until(lambda: in_directory([later]), "a new organisation listed")
            head = await pool.fetchval("SELECT position FROM collaboration.event_store_head")
            assert head == heads["collaboration"] + 3  # waiting; later registered, validated
    finally:
        await asyncio.to_thread(running.stop)
        await pool.close()
        await uninstall(base, settings)
