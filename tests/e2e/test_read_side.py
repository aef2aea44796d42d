"""The read side end to end: a command in; the page, the API, the feed and Kafka out."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from projections.queries import PUBLIC_COLUMNS
from tests.e2e import scenario
from tests.e2e.conftest import System

LABELS = "label_decisions.events"


async def public(system: System, path: str) -> Any:
    response = await system.get("projections", path)
    assert response.status_code == 200, response.text
    return response.json()


async def snapshots(system: System, org: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every ``label_decisions.current`` value keyed by the organisation, oldest first."""
    key = org.encode()
    records = await system.records(
        "label_decisions.current", lambda r: r.key == key, timeout=timeout
    )
    return [orjson.loads(r.value) for r in records]


async def test_an_award_reaches_the_list_counts_page_feed_and_snapshot_then_a_withdrawal(
    system: System,
) -> None:
    # given an organisation in Malta with a Bronze label from a June 2025 benchmarking
    org, _ = await scenario.bronze_label(system, "MT", "IE", "2025-06-03", "2025-06-20")
    (awarded,) = await system.events(LABELS, f"{org}:bronze", at_least=1)
    position = awarded.globalposition

    # then the public list shows it with the public columns, valid to June 2027 (R3)
    async def listed() -> Any:
        body = await public(system, f"/api/labels?country=MT&q={org}")
        return body if body["total"] == 1 else None

    body = await system.until(listed, "the label in the public list")
    (row,) = body["items"]
    assert row["name"] == f"Cluster {org}" and row["level"] == "bronze"
    assert row["valid_until"] == "2027-06-30" and row["status"] == "valid"
    assert row["website"] == f"https://{org}.example.eu"
    assert set(PUBLIC_COLUMNS) <= set(row)

    # and the CSV export has the same row under the public columns
    exported = await system.get("projections", f"/exports/labels.csv?q={org}")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert exported.headers["content-type"].startswith("text/csv")
    assert [r["org_id"] for r in rows] == [org] and rows[0]["valid_until"] == "2027-06-30"

    # and the page reaches a slow connection compressed (httpx asks for gzip)
    page = await system.get("projections", f"/?q={org}")
    assert page.headers["content-encoding"] == "gzip" and f"Cluster {org}" in page.text

    # and counts as of a day count it only inside its validity
    before = await public(system, "/api/counts?on=2025-06-01")
    during = await public(system, "/api/counts?on=2025-07-01")
    was = before["by_country"].get("MT", {}).get("bronze", 0)
    assert during["by_country"]["MT"]["bronze"] == was + 1

    # and the feed carries the same event at the same position as Kafka, in an unbroken chain
    async def in_feed() -> Any:
        page = await public(system, f"/api/feed?after={position - 1}&limit=1")
        return page if page["events"] else None

    page = await system.until(in_feed, "the award in the feed")
    (event,) = page["events"]
    assert event["id"] == awarded.id and event["globalposition"] == position
    assert event["type"] == "label_decisions.LabelAwarded.v1"
    assert event["data"] == awarded.data
    everything = await public(system, "/api/feed?after=0&limit=1000")
    positions = [e["globalposition"] for e in everything["events"]]
    assert positions == sorted(positions) and positions[-1] <= everything["head"]
    for earlier, later in zip(everything["events"], everything["events"][1:], strict=False):
        assert later["prevposition"] == earlier["globalposition"]

    # and the live stream starts from a position like the paged feed
    url = system.urls["projections"] + f"/api/feed/stream?after={position - 1}"
    async with system.client.stream("GET", url) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        while not (line := await anext(lines)).startswith("id: "):
            pass
        assert line == f"id: {position}"

    # and the compacted snapshot topic has the organisation's labels as of that position
    (snapshot, *_) = await snapshots(system, org)
    assert snapshot["position"] == position
    assert [(x["level"], x["status"]) for x in snapshot["labels"]] == [("bronze", "valid")]

    # when the board withdraws the label from February 2026
    withdrawn = await system.post(
        "label_decisions",
        f"/labels/{org}/bronze/withdrawal",
        {"reason": "ceased cluster management", "withdrawn_on": "2026-02-01"},
        "labelling_board",
    )
    assert withdrawn.status_code == 201, withdrawn.text

    # then it leaves the list of valid labels but stays in the history and in past counts
    async def gone() -> bool:
        return bool((await public(system, f"/api/labels?q={org}"))["total"] == 0)

    await system.until(gone, "the withdrawn label out of the valid list")
    listed_withdrawn = await public(system, f"/api/labels?q={org}&status=withdrawn")
    assert listed_withdrawn["total"] == 1
    january = await public(system, "/api/counts?on=2026-01-31")
    february = await public(system, "/api/counts?on=2026-02-01")
    assert (
        january["by_country"]["MT"]["bronze"]
        == february["by_country"].get("MT", {"bronze": 0})["bronze"] + 1
    )
    page_html = await system.get("projections", f"/organisations/{org}")
    assert page_html.status_code == 200
    assert "ceased cluster management" in page_html.text and "withdrawn" in page_html.text
    history = await public(system, f"/api/organisations/{org}")
    assert [h["kind"] for h in history["history"]] == ["awarded", "withdrawn"]
    raw = (await system.get("projections", f"/api/organisations/{org}")).text
    assert "score" not in raw and "indicator" not in raw  # R11


async def test_a_poison_message_is_dead_lettered_and_the_next_event_still_projected(
    system: System,
) -> None:
    # given a record on the label topic that is not a CloudEvent
    poison = f"poison-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(**system.kafka_options())
    await producer.start()
    try:
        await producer.send_and_wait(system.topic(LABELS), b"not json", key=poison.encode())
    finally:
        await producer.stop()

    # when a good decision follows
    org, _ = await scenario.bronze_label(system, "EE", "LV", "2025-09-03", "2025-09-20")

    # then the good one is projected and the poison waits in the read model's dead letters
    await scenario.listed(system, org)
    key = poison.encode()
    dead = await system.records("projections.labels.dlq", lambda r: r.key == key, timeout=10)
    (record,) = dead
    headers = dict(record.headers)
    assert headers["dlq_error_type"] == b"EnvelopeError"
    assert headers["dlq_topic"] == system.topic(LABELS).encode()
