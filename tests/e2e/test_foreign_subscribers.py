"""Subscribers in Java (Kafka, as the ``subscriber`` principal), Node.js (Server-Sent
Events) and Go (the HTTP pull feed), each stopped part-way and resumed, end in the same
state as the Python fold of the same label events: nothing missed, nothing repeated.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from clr_dev.installation import kafka_passwords
from clr_events.envelope import Envelope
from tests.e2e import foreign, scenario
from tests.e2e.conftest import Running, System

LABELS = "label_decisions.events"
BOARD = "labelling_board"


async def label_history(system: System) -> list[str]:
    """Three label records with five decisions: awarded; awarded and corrected; awarded
    and withdrawn. Their subjects."""
    orgs = []
    for country in ("IE", "FI", "SK"):
        org, _ = await scenario.bronze_label(system, country, "DE", "2025-03-03", "2025-03-20")
        orgs.append(org)
    await system.events(LABELS, f"{orgs[2]}:bronze", at_least=1)
    corrected = await system.post(
        "label_decisions",
        f"/labels/{orgs[1]}/bronze/corrections",
        {"valid_until": "2027-02-28", "reason": "the interview was in February"},
        BOARD,
    )
    assert corrected.status_code == 201, corrected.text
    withdrawn = await system.post(
        "label_decisions",
        f"/labels/{orgs[2]}/bronze/withdrawal",
        {"reason": "ceased cluster management", "withdrawn_on": "2025-12-01"},
        BOARD,
    )
    assert withdrawn.status_code == 201, withdrawn.text
    return [f"{org}:bronze" for org in orgs]


async def every_label_event(system: System) -> tuple[list[Envelope], int]:
    """The whole label events topic, read to its end offsets as the admin (aiokafka): the
    label events, and how many records are none (poison other tests put there)."""
    consumer = AIOKafkaConsumer(
        system.topic(LABELS), **system.kafka_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        while not consumer.assignment():  # no group: every partition, once metadata is in
            await consumer.getmany(timeout_ms=200)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        await consumer.seek_to_beginning()
        envelopes: list[Envelope] = []
        refused = 0
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    envelope = foreign.label_event(r.key, r.value, r.headers)
                    if envelope is None:
                        refused += 1
                    else:
                        envelopes.append(envelope)
        return envelopes, refused
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def history(running_system: Running, kafka_bootstrap: str) -> list[str]:
    """The label decisions, in the topic and served by the feed up to the last of them."""
    r = running_system
    async with httpx.AsyncClient(timeout=30.0) as client:
        system = System(r.urls, client, kafka_bootstrap, r.secret, r.instance, r.database_url)
        subjects = await label_history(system)
        events, _ = await every_label_event(system)
        last = max(e.globalposition or 0 for e in events)

        async def fed() -> bool:
            response = await system.get("projections", "/api/feed?limit=1")
            return bool(response.json()["head"] >= last)

        await system.until(fed, "the feed to reach the last label decision")
    return subjects


def check(client: dict[str, Any], events: list[Envelope], subjects: list[str]) -> None:
    """The client's state is the Python fold of the same events, each applied once."""
    applied = [position for position, _ in client["applied"]]
    assert client["missing"] == [], "a prevposition names an event the client never saw"
    upto = max(applied)
    same = [e for e in events if (e.globalposition or 0) <= upto]
    positions = Counter(e.globalposition for e in same)
    assert Counter(applied) - positions == Counter(), "events applied twice"
    assert positions - Counter(applied) == Counter(), "events missed"
    expected = foreign.fold(same)
    assert client["labels"] == expected
    for subject in subjects:  # the scenario's own decisions are among them
        assert subject in client["labels"]
    corrected, withdrawn = expected[subjects[1]], expected[subjects[2]]
    assert (corrected["events"], corrected["valid_until"]) == (2, "2027-02-28")
    assert (withdrawn["events"], withdrawn["status"]) == (2, "withdrawn")


def twice(run: Callable[..., dict[str, Any]], state: Path) -> dict[str, Any]:
    """A part-way run, a run to the end, and one more that finds nothing new."""
    first = run(state, part=True)
    assert len(first["applied"]) <= 2  # stopped after two records
    second = run(state, part=False)
    third = run(state, part=False)
    assert third["applied"] == second["applied"] and third["labels"] == second["labels"]
    assert len(second["applied"]) > len(first["applied"])
    return second


@pytest.mark.skipif(
    not os.environ.get("CLR_KAFKA_PASSWORDS_FILE"),
    reason="needs the subscriber principal: the local stack (deploy/local/stack.sh start)",
)
async def test_a_java_kafka_consumer_as_the_subscriber_principal(
    system: System, history: list[str], tmp_path: Path
) -> None:
    command = foreign.build_java()
    group = system.topic(f"subscriber.java-{uuid.uuid4().hex[:8]}")

    def run(state: Path, *, part: bool) -> dict[str, Any]:
        args = ["--bootstrap", system.kafka, "--topic", system.topic(LABELS), "--group", group]
        args += ["--state", str(state), *(["--max-records", "2"] if part else [])]
        env = {"CLR_SUBSCRIBER_PASSWORD": kafka_passwords()["subscriber"]}
        return foreign.summary(foreign.run([*command, *args], env=env))

    client = twice(run, tmp_path / "java.json")
    events, refused = await every_label_event(system)
    check(client, events, history)
    assert client["rejected"] == refused  # poison other tests put on the topic, refused alike


async def test_a_node_server_sent_events_client(
    system: System, history: list[str], tmp_path: Path
) -> None:
    command = foreign.build_node()

    def run(state: Path, *, part: bool) -> dict[str, Any]:
        args = ["--url", system.urls["projections"], "--state", str(state)]
        args += ["--max-events", "2"] if part else []
        return foreign.summary(foreign.run([*command, *args]))

    client = twice(run, tmp_path / "node.json")
    check(client, (await every_label_event(system))[0], history)


async def test_a_go_pull_feed_client(system: System, history: list[str], tmp_path: Path) -> None:
    command = foreign.build_go()

    def run(state: Path, *, part: bool) -> dict[str, Any]:
        args = ["-url", system.urls["projections"], "-state", str(state)]
        args += ["-limit", "2", "-max-pages", "1"] if part else ["-limit", "3"]
        return foreign.summary(foreign.run([*command, *args]))

    client = twice(run, tmp_path / "go.json")
    check(client, (await every_label_event(system))[0], history)
