"""Time, done right: every read on a past day (valid time) and as recorded at a past moment
(transaction time) agrees with a replay of the label events; every recorded decision is
re-decided alike, and a tampered one is named.

The replay here is the subscriber's: the public events from Kafka, folded by
``clr_events.labels`` (R10's one home), each counted only if recorded by the moment asked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
from aiokafka import ConsumerRecord

from clr_events.codec import from_kafka
from clr_events.envelope import Envelope
from clr_events.labels import (
    LabelStatus,
    Periods,
    awarded,
    corrected,
    renewed,
    status_on,
    withdrawn,
)
from clr_events.settings import ConnectionSettings
from label_decisions import redecide
from label_decisions.domain.policy import POLICY_2026_1, POLICY_2026_2
from tests.e2e import scenario
from tests.e2e.conftest import System
from tests.e2e.test_label_status import correct

LABELS = "label_decisions.events"
LEVELS = ("bronze", "silver", "gold")


def _day(value: Any) -> date:
    return date.fromisoformat(value)


def _maybe(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)


def replay(events: list[Envelope], moment: datetime | None) -> dict[str, Periods]:
    """Each record's periods from the public events recorded by ``moment`` (None: all)."""
    periods: dict[str, Periods] = {}
    unique = {e.globalposition: e for e in events}
    for position in sorted(p for p in unique if p is not None):
        e = unique[position]
        if moment is not None and e.time > moment:
            continue
        d, key, name = e.data, str(e.subject), e.type.split(".")[1]
        p = periods.get(key, ())
        if name == "LabelAwarded":
            p = awarded(
                p, _day(d["awarded_on"]), _day(d["valid_until"]), _maybe(d["renewal_deadline"])
            )
        elif name == "LabelRenewed":
            p = renewed(
                p, _day(d["renewed_on"]), _day(d["valid_until"]), _maybe(d["renewal_deadline"])
            )
        elif name == "LabelWithdrawn":
            p = withdrawn(p, _day(d["withdrawn_on"]))
        elif name == "LabelRecordCorrected":
            p = corrected(p, _day(d["valid_until"]), _maybe(d["renewal_deadline"]))
        periods[key] = p
    return periods


def query(**params: Any) -> str:
    return urlencode({k: v.isoformat() for k, v in params.items() if v is not None})


async def statuses(
    system: System, org: str, on: date, moment: datetime | None
) -> tuple[str | None, str | None, str | None]:
    """The Bronze status on ``on`` as recorded at ``moment``: (label decisions, the public
    organisation page, the public list); None: no label."""
    q = query(on=on, recorded_at=moment)
    decided = (await system.get("label_decisions", f"/labels/{org}?{q}")).json()["labels"]
    page = (await system.get("projections", f"/api/organisations/{org}?{q}")).json()["labels"]
    listed = (await system.get("projections", f"/api/labels?q={org}&status=all&{q}")).json()
    return (
        next((r["status"] for r in decided if r["level"] == "bronze"), None),
        next((r["status"] for r in page if r["level"] == "bronze"), None),
        next((r["status"] for r in listed["items"] if r["level"] == "bronze"), None),
    )


async def all_label_events(system: System) -> tuple[int, list[Envelope]]:
    """(the feed's head, every public label event up to it, from Kafka).

    The events are the feed's (by id): the topic also holds the poison records other
    tests publish (some of them valid contracts with a real record's key and a position
    already taken), which the projections dead-letter and a replay must skip likewise.
    """
    head = (await system.get("projections", "/api/feed?limit=1")).json()["head"]
    fed: set[str] = set()
    after = 0
    while after < head:
        page = (await system.get("projections", f"/api/feed?after={after}&limit=1000")).json()
        if not page["events"]:
            break
        fed |= {e["id"] for e in page["events"] if e["globalposition"] <= head}
        after = page["next"]
    keep = {i.encode() for i in fed}

    def in_feed(record: ConsumerRecord[bytes, bytes]) -> bool:
        return any(k == "ce_id" and v in keep for k, v in record.headers)

    wanted = len(fed)
    for _ in range(5):  # duplicates (at-least-once) can reach the count early
        records = await system.records(LABELS, in_feed, at_least=wanted)
        events = {e.id: e for e in (from_kafka(r.key, r.value, r.headers) for r in records)}
        missing = fed - events.keys()
        if not missing:
            return head, list(events.values())
        wanted += len(missing)
    raise AssertionError(f"events {sorted(missing)} of the feed are not on Kafka")


async def test_reads_on_a_day_and_as_recorded_at_agree_with_a_replay(system: System) -> None:
    # given a Bronze label awarded on 2024-04-02, valid until 2026-03-31
    org, _ = await scenario.bronze_label(system, "FR", "BE", "2024-03-05", "2024-04-02")
    (award,) = await system.events(LABELS, f"{org}:bronze", at_least=1)
    # when the board corrects its past validity: it ended on 2025-09-30
    await correct(system, org, date(2025, 9, 30))
    events = await system.events(LABELS, f"{org}:bronze", at_least=2)
    correction = max(events, key=lambda e: e.globalposition or 0)

    async def projected() -> bool:
        body = (await system.get("projections", f"/api/organisations/{org}")).json()
        return bool(body["labels"]) and body["labels"][0]["valid_until"] == "2025-09-30"

    await system.until(projected, "the correction on the public page")

    # then on every day, now and as recorded before the correction, every read says what
    # a replay of the events says
    days = [
        date(2005, 1, 1),
        date(2024, 4, 1),
        date(2024, 4, 2),
        date(2025, 9, 30),
        date(2025, 10, 1),
        date(2026, 3, 31),
        date(2026, 4, 1),
        date(2027, 4, 1),
        date.today(),
    ]
    before_anything = award.time - timedelta(microseconds=1)
    for moment in (None, award.time, correction.time, before_anything):
        periods = replay(events, moment).get(f"{org}:bronze", ())
        for day in days:
            expected = status_on(periods, day)
            want = None if expected is LabelStatus.NONE else expected.value
            assert await statuses(system, org, day, moment) == (want,) * 3, (day, moment)
    # the correction shows only from its recording on
    on = date(2026, 1, 15)
    assert await statuses(system, org, on, award.time) == ("valid",) * 3
    assert await statuses(system, org, on, correction.time) == ("in_renewal_window",) * 3
    assert await statuses(system, org, date(2005, 1, 1), None) == (None,) * 3

    # and the counts and the list agree with a replay of every label event
    head, everything = await all_label_events(system)
    assert correction.globalposition is not None and head >= correction.globalposition
    for moment in (None, award.time, correction.time):
        records = replay(everything, moment)
        for day in (date(2015, 1, 1), date(2024, 6, 1), date(2026, 1, 15)):
            valid = Counter(
                key.rsplit(":", 1)[1]
                for key, p in records.items()
                if status_on(p, day) is LabelStatus.VALID
            )
            q = query(on=day, recorded_at=moment)
            counts = (await system.get("projections", f"/api/counts?{q}")).json()
            assert counts["valid"]["by_level"] == {lv: valid[lv] for lv in LEVELS}, (day, moment)
            listed = (await system.get("projections", f"/api/labels?limit=1&{q}")).json()
            assert listed["total"] == sum(valid.values()), (day, moment)


async def test_bad_moments_are_refused_as_problems(system: System) -> None:
    for service, path in (
        ("label_decisions", "/labels/o-1"),
        ("projections", "/api/labels"),
        ("projections", "/api/counts"),
        ("projections", "/api/organisations/o-1"),
    ):
        for bad in ("yesterday", "1989-12-31", "2024-02-30", "2101-01-01T00:00:00Z", "1700000000"):
            response = await system.get(service, f"{path}?recorded_at={bad}")
            assert response.status_code == 422, (service, bad, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")


async def test_every_policy_version_is_served_with_the_fingerprint_decisions_record(
    system: System,
) -> None:
    current = (await system.get("label_decisions", "/policy")).json()
    assert current["version"] == POLICY_2026_2.version
    assert current["fingerprint"] == POLICY_2026_2.fingerprint
    assert current["versions"] == ["2026.1", "2026.2"]
    older = (await system.get("label_decisions", "/policy/2026.1")).json()
    assert older["fingerprint"] == POLICY_2026_1.fingerprint
    assert older["levels"]["bronze"]["renewal_earliest_months"] is None
    missing = await system.get("label_decisions", "/policy/1999.9")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")

    org, _ = await scenario.bronze_label(system, "IT", "ES", "2024-03-05", "2024-04-02")
    (award,) = await system.events(LABELS, f"{org}:bronze", at_least=1)
    assert award.data["policy_fingerprint"] == POLICY_2026_2.fingerprint
    assert "approval" not in award.data  # the inputs stay private (R11)


async def test_redecide_finds_no_difference_and_names_a_tampered_decision(system: System) -> None:
    # given a history with an award, a refusal and a correction
    org, person = await scenario.bronze_label(system, "NL", "DE", "2024-03-05", "2024-04-02")
    await scenario.bronze(system, org, person, "2024-04-10", "2024-04-12")  # too early: refused

    async def refused() -> bool:
        history = await system.get("label_decisions", f"/labels/{org}/bronze/history", "auditor")
        return history.status_code == 200 and len(history.json()["events"]) == 2

    await system.until(refused, "the refusal")  # a private event: only the history shows it
    await correct(system, org, date(2026, 2, 28))
    await system.events(LABELS, f"{org}:bronze", at_least=2)

    # then every recorded decision is re-decided alike
    report = await redecide.redecide_store(system.database_url)
    assert report.ok, report.differences
    assert report.redecided == report.decisions >= 2
    assert await asyncio.to_thread(redecide.main, ["--database-url", system.database_url]) == 0
    nowhere = ["--database-url", system.database_url, "--schema", "no_such_store"]
    assert await asyncio.to_thread(redecide.main, nowhere) == 2

    # and on a copy of the store with one decision altered, that decision is named
    scratch = f"scratch_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(system.database_url)
    try:
        await conn.execute(
            f"CREATE SCHEMA {scratch}; CREATE TABLE {scratch}.event_store AS"
            " SELECT * FROM label_decisions.event_store"
        )
        position = await conn.fetchval(
            f"SELECT max(position) FROM {scratch}.event_store WHERE type = 'LabelAwarded'"
        )
        await conn.execute(
            f"UPDATE {scratch}.event_store SET data = jsonb_set(data::jsonb, '{{valid_until}}',"
            " '\"2031-12-31\"')::json WHERE position = $1",
            position,
        )
        tampered = await redecide.redecide_store(system.database_url, scratch)
        first, *later = tampered.differences
        assert (first.position, first.field, first.recorded) == (
            position,
            "valid_until",
            "2031-12-31",
        )
        # a later decision on the same record rested on the altered validity: named too
        assert all(d.position > position and d.stream_id == first.stream_id for d in later), later
        argv = ["--database-url", system.database_url, "--schema", scratch]
        assert await asyncio.to_thread(redecide.main, argv) == 1

        # and decisions recorded without their inputs are re-decided from the approvals the
        # service received on assessments.decisions
        await conn.execute(
            f"UPDATE {scratch}.event_store SET data = (data::jsonb - 'approval')::json"
            f" WHERE position <> $1",
            position,
        )
        kafka = ConnectionSettings(
            database_url=system.database_url,
            kafka_bootstrap_servers=system.kafka,
            instance=system.instance,
        )
        received = await redecide.redecide_store(
            system.database_url, scratch, await redecide.inputs_from_kafka(kafka)
        )
        assert received.inputs_from_kafka == received.decisions - 1 >= 1
        assert received.without_inputs == 0
        assert received.differences[0].position == position
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
        await conn.close()


async def test_experts_on_a_day_and_as_recorded_at_come_from_every_certification(
    system: System,
) -> None:
    # given an expert certified in 2015 (for 36 months), certified again in 2020
    name = f"Expert {uuid.uuid4().hex[:8]}"
    person = await scenario.expert(system, "MT", ["benchmarking_expert"], "2015-06-01", name=name)
    again = {"role": "benchmarking_expert", "on": "2020-01-10"}
    path = f"/people/{person}/certifications"
    response = await system.post("training_certification", path, again, scenario.TRAINING)
    assert response.status_code == 201, response.text
    # and whose certification was then revoked from 2021-06-01
    revoke = {"role": "benchmarking_expert", "on": "2021-06-01", "reason": "R9 check"}
    response = await system.post(
        "training_certification", f"{path}/revocations", revoke, scenario.TRAINING
    )
    assert response.status_code == 201, response.text
    events = await system.events("training_certification.events", f"person:{person}", at_least=5)
    revoked_at = max(e.time for e in events if e.type.endswith("CertificationRevoked.v1"))
    before = revoked_at - timedelta(microseconds=1)

    async def certified(on: date, moment: datetime | None) -> tuple[bool, bool]:
        """(training_certification, projections): is the person listed? Where listed, with
        the name opened (names are sealed in the store and kept in no read model)."""
        q = query(on=on, recorded_at=moment)
        own = await system.get("training_certification", f"/experts?country=MT&limit=1000&{q}")
        public = await system.get("projections", f"/api/experts?country=MT&{q}")
        assert own.status_code == public.status_code == 200, (own.text, public.text)
        listed = [
            [e for e in answer.json()["items"] if e["person_id"] == person]
            for answer in (own, public)
        ]
        assert all(e["name"] == name for found in listed for e in found), listed
        return bool(listed[0]), bool(listed[1])

    async def projected() -> bool:
        # listed on a day of the second certification and not after its revocation: the
        # revocation applied after both certifications (never listed at all is no proof)
        return await certified(date(2021, 1, 1), None) == (True, True) and await certified(
            date(2021, 7, 1), None
        ) == (False, False)

    await system.until(projected, "the revocation in the expert register")
    # then the first certification still answers for its own days
    assert await certified(date(2016, 1, 1), None) == (True, True)
    assert await certified(date(2019, 1, 1), None) == (False, False)
    assert await certified(date(2021, 1, 1), None) == (True, True)
    # and as recorded before the revocation, the expert was certified in 2022
    assert await certified(date(2022, 1, 1), before) == (True, True)
    assert await certified(date(2022, 1, 1), revoked_at) == (False, False)
