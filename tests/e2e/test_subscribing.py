"""A subscriber's checks, end to end on the real broker and the running services: gapless
public versions per key, switching between Kafka and the feed both ways with a consumer
stopped part-way, the snapshot topic as CloudEvents with a feed position to start from,
cursors beyond the head, and every ``dataschema`` served (and a Schema Registry client
finding the schemas)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from cloudevents.v1.kafka import KafkaMessage, from_binary
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from jsonschema import Draft202012Validator

from clr_events.codec import from_kafka
from clr_events.subscriber import Chain, offsets_after, position_of
from tests.e2e import scenario
from tests.e2e.conftest import System

LABELS = "label_decisions.events"
CURRENT = "label_decisions.current"
BOARD = "labelling_board"
ORGS = 8
SOURCE = b"/label_decisions"

Record = dict[str, Any]
"""A label event as the feed serves it (a structured CloudEvent)."""


_made: list[str] = []


async def history(system: System) -> list[str]:
    """Label events of every kind across several partitions, one private refusal among
    them, made once per session; the organisations."""
    if not _made:
        _made.extend(await _history(system))
    return _made


async def _history(system: System) -> list[str]:
    orgs = [await scenario.organisation(system, "FR", "2024-01-10") for _ in range(ORGS)]
    person = await scenario.expert(system, "BE", ["benchmarking_expert"], "2024-01-02")
    await scenario.known_to_assessments(system, orgs, [person])
    for org in orgs:
        await scenario.bronze(system, org, person, "2025-06-03", "2025-06-20")
    await system.until(lambda: labelled(system, orgs), "every award decided")
    # a second benchmarking two years early: refused, privately (a hole in the versions)
    await scenario.bronze(system, orgs[0], person, "2025-07-01", "2025-07-10")
    await system.until(lambda: refused(system, orgs[0]), "the refusal")
    for org in orgs[:4]:
        corrected = await system.post(
            "label_decisions",
            f"/labels/{org}/bronze/corrections",
            {"valid_until": "2027-05-31", "reason": "the interview was in May"},
            BOARD,
        )
        assert corrected.status_code == 201, corrected.text
    withdrawn = await system.post(
        "label_decisions",
        f"/labels/{orgs[1]}/bronze/withdrawal",
        {"reason": "ceased cluster management", "withdrawn_on": "2026-01-15"},
        BOARD,
    )
    assert withdrawn.status_code == 201, withdrawn.text
    # the last event on Kafka: the relay publishes in store order, so all before it are too
    key = f"{orgs[1]}:bronze".encode()
    await system.records(
        LABELS, lambda r: r.key == key and dict(r.headers).get("ce_type") == WITHDRAWN
    )
    return orgs


WITHDRAWN = b"label_decisions.LabelWithdrawn.v1"


async def labelled(system: System, orgs: list[str]) -> bool:
    for org in orgs:
        response = await system.get("label_decisions", f"/labels/{org}")
        if response.status_code != 200 or not response.json().get("labels"):
            return False
    return True


async def refused(system: System, org: str) -> bool:
    response = await system.get("label_decisions", f"/labels/{org}/bronze/history", "auditor")
    return any(e["type"] == "LabelRefused" for e in response.json()["events"])


async def whole_feed(system: System, after: int = 0, limit: int = 1000) -> list[Record]:
    """The feed from ``after`` to its head."""
    events: list[Record] = []
    while True:
        response = await system.get("projections", f"/api/feed?after={after}&limit={limit}")
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        if page["next"] >= page["head"] or not page["events"]:
            return events
        after = page["next"]


async def settled_feed(system: System) -> list[Record]:
    """The whole feed once it holds every event on Kafka (nothing pending above the head)."""
    on_kafka = len({dict(r.headers)["ce_id"] for r in await system.records(LABELS, real)})

    async def complete() -> list[Record] | None:
        events = await whole_feed(system)
        return events if len({e["id"] for e in events}) >= on_kafka else None

    found: list[Record] = await system.until(complete, "the feed to hold every event")
    return found


def real(record: Any) -> bool:
    """A record the registry published (not the poison test's)."""
    return dict(record.headers).get("ce_source") == SOURCE


def consumer(system: System) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **system.kafka_options(), enable_auto_commit=False, auto_offset_reset="earliest"
    )


async def consume(
    reader: AIOKafkaConsumer,
    ends: dict[TopicPartition, int],
    apply: Callable[[TopicPartition, Record], bool],
) -> None:
    """Feed every record up to ``ends`` to ``apply``; a partition whose ``apply`` answers
    False is paused there (the consumer stops part-way on it)."""
    done = {tp for tp, end in ends.items() if await reader.position(tp) >= end}
    deadline = asyncio.get_running_loop().time() + 60
    while len(done) < len(ends):
        assert asyncio.get_running_loop().time() < deadline, f"stuck short of {ends}"
        batches = await reader.getmany(timeout_ms=1000)
        for tp, records in batches.items():
            for record in records:
                if tp in done:
                    break
                headers = dict(record.headers)
                # not the registry's (the poison tests'): skipped, yet it may end the partition
                ours = headers.get("ce_source") == SOURCE
                if (ours and not apply(tp, headers)) or record.offset + 1 >= ends[tp]:
                    reader.pause(tp)
                    done.add(tp)


async def test_kafka_to_feed_and_back_with_a_consumer_stopped_part_way(system: System) -> None:
    orgs = await history(system)
    feed = await settled_feed(system)
    everything = {e["globalposition"] for e in feed}
    topic = system.topic(LABELS)

    # every key's public versions run 1, 2, 3 without a gap; the store's versions do not
    per_key: dict[str, list[int]] = {}
    for event in feed:
        per_key.setdefault(event["subject"], []).append(event["publicversion"])
    assert all(v == list(range(1, len(v) + 1)) for v in per_key.values()), per_key
    first = [e for e in feed if e["subject"] == f"{orgs[0]}:bronze"]
    assert [e["publicversion"] for e in first] == [1, 2]
    assert [e["streamversion"] for e in first] == [1, 3]  # the refusal, private, was 2

    # Kafka -> feed: a consumer stops on one partition right before the median event
    reader = consumer(system)
    await reader.start()
    try:
        await reader.end_offsets([TopicPartition(topic, 0)])  # loads the topic's metadata
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        assert len(partitions) > 1
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        median = sorted(everything)[len(everything) // 2]
        chain = Chain()
        applied: set[int] = set()

        def apply(_tp: TopicPartition, headers: Record) -> bool:
            position, previous = position_of(headers)
            if position == median:
                return False  # stopped here: this partition's rest is never read
            if not chain.seen(position):
                applied.add(position)
                chain.applied(position, previous)
            return True

        await consume(reader, ends, apply)
    finally:
        await reader.stop()

    highest = max(applied)
    assert highest > median, "the stopped partition must leave a hole below the highest"
    # the old advice (after= the highest applied) would lose these
    assert everything - applied - {p for p in everything if p > highest}
    assert chain.safe_point < median
    for event in await whole_feed(system, after=chain.safe_point):
        if not chain.seen(event["globalposition"]):
            applied.add(event["globalposition"])
            chain.applied(event["globalposition"], event["prevposition"])
    assert applied == everything
    assert chain.safe_point == max(everything)

    # feed -> Kafka: a reader of the feed stops half-way and goes on from Kafka
    half = await system.get("projections", f"/api/feed?after=0&limit={len(feed) // 2}")
    taken = half.json()
    cursor = taken["next"]
    from_feed = {e["globalposition"] for e in taken["events"]}
    chain = Chain(start=cursor)
    reader = consumer(system)
    await reader.start()
    try:
        offsets = await offsets_after(reader, topic, cursor, source=SOURCE.decode())
        firsts = await reader.beginning_offsets(list(offsets))
        ends = await reader.end_offsets(list(offsets))
        assert any(offsets[tp] > firsts[tp] for tp in offsets), "nothing skipped on Kafka"
        for tp, offset in offsets.items():
            reader.seek(tp, offset)
        from_kafka_: set[int] = set()

        def resume(_tp: TopicPartition, headers: Record) -> bool:
            position, previous = position_of(headers)
            if not chain.seen(position):
                from_kafka_.add(position)
                chain.applied(position, previous)
            return True

        await consume(reader, ends, resume)
    finally:
        await reader.stop()
    assert from_feed | from_kafka_ == everything
    assert not from_feed & from_kafka_
    assert chain.safe_point == max(everything)


async def test_a_cursor_beyond_the_feed_is_a_problem_naming_the_head(system: System) -> None:
    head = (await system.get("projections", "/api/feed?limit=1")).json()["head"]
    beyond = 10**12
    for path in (f"/api/feed?after={beyond}", f"/api/feed/stream?after={beyond}"):

        async def refused(path: str = path) -> Any:
            answer = await system.get("projections", path)
            return answer if answer.status_code == 409 else None  # else the read side lags

        response = await system.until(refused, "the cursor refused once the read side is done")
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "urn:cluster-label-registry:problem:cursor-ahead"
        assert problem["head"] >= head and problem["after"] == beyond
        assert "Retry-After" in response.headers


async def current_records(system: System) -> list[Any]:
    """The snapshot topic to its end, as CloudEvents (the SDK decodes each record)."""
    records = await system.records(CURRENT, lambda _: True, at_least=1)
    return [from_binary(KafkaMessage(dict(r.headers), r.key, r.value)) for r in records]


async def test_a_new_subscriber_starts_from_the_snapshots_and_the_feed_position(
    system: System,
) -> None:
    orgs = await history(system)
    await settled_feed(system)
    head: int = (await system.get("projections", "/api/feed?limit=1")).json()["head"]

    async def caught_up() -> bool:
        records = await current_records(system)
        return max(int(e["feedposition"]) for e in records) == head

    # once the snapshots have caught up, the topic's highest feed position is the head
    await system.until(caught_up, "the snapshot topic's feed position to reach the head")
    # then decisions still in flight while a new subscriber reads the snapshot topic
    for org in orgs[4:]:
        corrected = await system.post(
            "label_decisions",
            f"/labels/{org}/bronze/corrections",
            {"valid_until": "2027-04-30", "reason": "the interview was in April"},
            BOARD,
        )
        assert corrected.status_code == 201, corrected.text
    snapshots = await current_records(system)
    for event in snapshots:
        assert event["specversion"] == "1.0"
        assert event["type"] == "label_decisions.CurrentLabels.v1"
        assert event["source"] == "/projections"
        assert event["subject"] == event.get_data()["org_id"]
        assert event["dataschema"].endswith("/label_decisions/CurrentLabels.v1.json")

    # the recipe: fold the snapshots, then the feed after the highest feed position,
    # skipping an organisation's events at or below its snapshot's position
    start = max(int(e["feedposition"]) for e in snapshots)
    assert start > 0
    loaded = {e["subject"]: e.get_data() for e in snapshots}
    recipe: dict[tuple[str, str], Any] = {}
    for org, snapshot in loaded.items():
        for label in snapshot["labels"]:
            recipe[(org, label["level"])] = (
                label["valid_until"],
                label["withdrawn_on"] is not None,
            )

    async def corrected_in_feed() -> list[Record] | None:
        events = await whole_feed(system)
        april = [e for e in events if e["data"].get("valid_until") == "2027-04-30"]
        return events if len(april) == len(orgs[4:]) else None

    feed: list[Record] = await system.until(corrected_in_feed, "the corrections in the feed")
    rest = await whole_feed(system, after=start)
    # the feed is not read again: at most the decisions made since the snapshots caught up
    assert len(rest) <= len(orgs[4:])
    for event in rest:
        org = event["data"]["org_id"]
        if org in loaded and event["globalposition"] <= loaded[org]["position"]:
            continue
        fold(recipe, event)
    everything: dict[tuple[str, str], Any] = {}
    for event in feed:
        fold(everything, event)
    assert recipe == everything

    # and, settled, one record per organisation that ever had a label, withdrawn ones too
    last = {e["data"]["org_id"]: e["globalposition"] for e in feed}

    async def published() -> dict[str, Any] | None:
        latest = {e["subject"]: e.get_data() for e in await current_records(system)}
        current = all(latest.get(o, {}).get("position") == p for o, p in last.items())
        return latest if current else None

    latest = await system.until(published, "a snapshot of every organisation", timeout=90)
    assert set(latest) == set(last)
    assert latest[orgs[1]]["labels"][0]["status"] == "withdrawn"


def fold(state: dict[tuple[str, str], Any], event: Record) -> None:
    """A label record's validity and whether it is withdrawn, from its decisions."""
    data, kind = event["data"], event["type"].split(".")[1]
    key = (data["org_id"], data["level"])
    valid_until, withdrawn = state.get(key, (None, False))
    if kind in ("LabelAwarded", "LabelRenewed", "LabelRecordCorrected"):
        valid_until = data["valid_until"]
    if kind == "LabelAwarded":
        withdrawn = False
    if kind == "LabelWithdrawn":
        withdrawn = True
    state[key] = (valid_until, withdrawn)


async def test_every_dataschema_resolves_and_a_schema_registry_client_finds_them(
    system: System,
) -> None:
    await history(system)
    records = await system.records(LABELS, real, at_least=ORGS)
    envelopes = [from_kafka(r.key, r.value, r.headers) for r in records]
    base = system.urls["projections"]
    checked: dict[str, Draft202012Validator] = {}
    for envelope in envelopes:
        url = envelope.dataschema
        assert url is not None and url.startswith(f"{base}/schemas/"), url
        if url not in checked:
            response = await system.client.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"] == "application/schema+json"
            checked[url] = Draft202012Validator(response.json())
        checked[url].validate(envelope.data)
    assert len(checked) >= 3  # awards, corrections, withdrawals

    client = SchemaRegistryClient({"url": f"{base}/schema-registry"})
    subjects = await asyncio.to_thread(client.get_subjects)
    assert "label_decisions.LabelAwarded.v1" in subjects
    assert "label_decisions.CurrentLabels.v1" in subjects
    assert "assessments.ApprovedForDecision.v1" not in subjects  # restricted
    latest = await asyncio.to_thread(client.get_latest_version, "label_decisions.LabelAwarded.v1")
    assert latest.version == 1 and latest.schema.schema_type == "JSON"
    assert latest.schema.schema_str is not None and latest.schema_id is not None
    awarded = (await system.client.get(checked_url(checked, "LabelAwarded"))).json()
    assert orjson.loads(latest.schema.schema_str) == awarded
    by_id = await asyncio.to_thread(client.get_schema, latest.schema_id)
    assert by_id.schema_str == latest.schema.schema_str
    assert await asyncio.to_thread(client.get_subjects_by_schema_id, latest.schema_id) == [
        "label_decisions.LabelAwarded.v1"
    ]
    assert await asyncio.to_thread(client.get_versions, "label_decisions.LabelAwarded.v1") == [1]
    one = await asyncio.to_thread(client.get_version, "label_decisions.LabelAwarded.v1", 1)
    assert one.schema_id == latest.schema_id
    assert await asyncio.to_thread(client.get_compatibility) == "FULL_TRANSITIVE"

    for call, code in (
        (lambda: client.get_version("label_decisions.LabelAwarded.v1", 2), 40402),
        (lambda: client.get_latest_version("assessments.ApprovedForDecision.v1"), 40401),
        (lambda: client.get_schema(1), 40403),
    ):
        with pytest.raises(SchemaRegistryError) as raised:
            await asyncio.to_thread(call)
        assert raised.value.error_code == code
    invalid = await system.get(
        "projections", "/schema-registry/subjects/label_decisions.LabelAwarded.v1/versions/x"
    )
    assert invalid.status_code == 422 and invalid.json()["error_code"] == 42202


def checked_url(checked: dict[str, Any], name: str) -> str:
    return next(url for url in checked if url.endswith(f"/{name}.v1.json"))
