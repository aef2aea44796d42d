"""Two instances of one service, as an operator scales it: both serve commands, one relay
publishes (an advisory lock elects it), and when that instance stops the other takes over.

Its own installation: the instances start and stop while the session's system runs on.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.envelope import Envelope
from clr_events.settings import ConnectionSettings
from tests.e2e.conftest import PORT_BASE, System
from tests.e2e.scenario import organisation

FIRST, SECOND = PORT_BASE + 11, PORT_BASE + 12


async def test_two_instances_publish_each_event_once_and_the_second_takes_over_the_relay(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_instances")
    secret = secrets.token_hex(32)
    env = service_env(settings, secret)
    first = await asyncio.to_thread(
        supervisor.start, tmp_path / "first", ports={"collaboration": FIRST}, env=env
    )
    second: supervisor.Running | None = None
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:

            def system(running: supervisor.Running) -> System:
                return System(
                    running.urls, client, kafka_bootstrap, secret, settings.instance, database_url
                )

            async def published(at_least: int) -> list[Envelope]:
                """Every event on the topic (every subject), once ``at_least`` are there."""
                return await system(first).events("collaboration.events", "", at_least=at_least)

            # alone, the first instance's relay publishes: it holds the relay's lock
            await organisation(system(first))
            assert len(await published(2)) == 2  # registered, validated
            second = await asyncio.to_thread(
                supervisor.start, tmp_path / "second", ports={"collaboration": SECOND}, env=env
            )
            # commands through both instances: still one relay, every event once
            for n in range(6):
                await organisation(system(first if n % 2 else second))
            assert len(await published(14)) == 14
            # the relay's instance stops; the other takes the lock and publishes on
            await asyncio.to_thread(first.stop)
            orgs = [await organisation(system(second)) for _ in range(3)]
            events = await published(20)
    finally:
        for running in (first, second):
            if running is not None:
                await asyncio.to_thread(running.stop)
        await uninstall(base, settings)

    assert {e.subject for e in events} >= {f"organisation:{org_id}" for org_id in orgs}
    positions = sorted((e.globalposition, e.prevposition) for e in events)
    assert len(positions) == len({p for p, _ in positions}) == 20  # each event exactly once
    # the topic's chain (prevposition) is unbroken: no event skipped across the takeover
    assert [previous for _, previous in positions] == [0] + [p for p, _ in positions[:-1]]
    for subject in {e.subject for e in events}:  # per-aggregate order
        versions = [e.streamversion for e in events if e.subject == subject]
        assert versions == sorted(versions) == list(range(1, len(versions) + 1))
