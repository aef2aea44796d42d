"""Records no validation saw, put straight on every consumed topic: each consumer group that
cannot apply one dead-letters it (with ``dlq_*`` headers saying where it came from and
why) and goes on, the next real event on the same partition is applied by every group, and
every service is ready again with nothing left to read.

The consumers and what they read (``ConsumerSpec``s and the projections' read models):

====================================  ==============================================
collaboration.events                  assessments.reference, projections.labels,
                                      projections.organisations
training_certification.events         assessments.reference, projections.experts
label_decisions.events                collaboration.labels, projections.labels
assessments.decisions                 label_decisions.decisions
====================================  ==============================================

Each poison record carries the key of a real event produced after it (an organisation,
an expert, their Bronze label), so it lands on the partition that event follows it on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from clr_events.codec import KafkaRecord, to_kafka
from clr_events.contracts import assessments, collaboration, label_decisions
from clr_events.contracts import training_certification as training
from clr_events.envelope import Envelope
from clr_events.registry import Contract, registry
from tests.e2e import scenario
from tests.e2e.conftest import System
from tests.integration.events.kafka_helpers import produce

NUL = "\x00"
LONG = secrets.token_hex(8000)
"""16,000 characters that do not compress: a key over PostgreSQL's index row limit."""

GROUPS = {
    "collaboration.events": (
        "assessments.reference",
        "projections.labels",
        "projections.organisations",
    ),
    "training_certification.events": ("assessments.reference", "projections.experts"),
    "label_decisions.events": ("collaboration.labels", "projections.labels"),
    "assessments.decisions": ("label_decisions.decisions",),
}


@dataclass(frozen=True)
class Poison:
    """A record for a topic, the groups that must dead-letter it, and the error they name."""

    what: str
    topic: str
    record: KafkaRecord
    groups: tuple[str, ...]
    error: str
    partition: int = -1
    offset: int = -1


def cloud_event(
    contract: type[Contract], key: str, data: dict[str, Any], position: int = 1
) -> KafkaRecord:
    """A binary-mode CloudEvent with ``data`` as it is: nothing validated it."""
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/poison",
        type=registry.type_of(contract),
        subject=key,
        time=datetime.now(UTC),
        data=data,
        streamversion=position,
        globalposition=position,
    )
    return to_kafka(envelope)


def broken(topic: str, key: str, like: KafkaRecord) -> list[Poison]:
    """Not JSON (with the headers of a CloudEvent), and JSON that is no CloudEvent: every
    group reading the topic refuses both."""
    groups = GROUPS[topic]
    return [
        Poison(
            "not JSON",
            topic,
            KafkaRecord(key.encode(), b"\xff\x00 not json", like.headers),
            groups,
            "EnvelopeError",
        ),
        Poison(
            "not a CloudEvent",
            topic,
            KafkaRecord(key.encode(), orjson.dumps({"org_id": key}), []),
            groups,
            "EnvelopeError",
        ),
    ]


def registered(key: str, **changes: Any) -> KafkaRecord:
    data = {"org_id": "o", "name": "Cluster", "country": "DE", "sector": "Energy", **changes}
    return cloud_event(collaboration.OrganisationRegistered, key, data)


def person(key: str, **changes: Any) -> KafkaRecord:
    data = {"person_id": "p", "name": "An Expert", "country": "DE", "affiliation_org_ids": []}
    return cloud_event(training.PersonRegistered, key, {**data, **changes})


def awarded(key: str, org_id: str, position: int = 1, **changes: Any) -> KafkaRecord:
    data = {
        "org_id": org_id,
        "level": "bronze",
        "assessment_id": "a",
        "assessed_on": "2025-06-03",
        "awarded_on": "2025-06-20",
        "valid_until": "2027-06-30",
        "expert_ids": [],
        "policy_version": "p",
        "decided_by": "poison",
        **changes,
    }
    return cloud_event(label_decisions.LabelAwarded, key, data, position)


def approved(key: str, **changes: Any) -> KafkaRecord:
    data = {
        "assessment_id": f"a-{uuid.uuid4().hex[:8]}",
        "org_id": key,
        "kind": "bronze_benchmarking",
        "level": "bronze",
        "conducted_on": "2025-06-03",
        "approved_on": "2025-06-20",
        "approver": "poison",
        "expert_ids": [],
        "criteria_version": "c",
        "profile_validated_on": None,
        "indicator_count": 36,
        **changes,
    }
    return cloud_event(assessments.ApprovedForDecision, key, data)


def poison_for(org: str, expert: str) -> list[Poison]:
    """Every kind of poison, on every consumed topic, keyed like the real events to come."""
    org_key, person_key, label_key = f"organisation:{org}", f"person:{expert}", f"{org}:bronze"
    collab, people = "collaboration.events", "training_certification.events"
    labels, decisions = "label_decisions.events", "assessments.decisions"
    partnership = {
        "partnership_id": "p",
        "name": "P",
        "strand": "ESCP-4i",
        "call_id": "c",
        "member_org_ids": [],
        "start_on": "2025-01-01",
    }
    return [
        *broken(collab, org_key, registered(org_key)),
        Poison(
            "U+0000 in a name and a country",
            collab,
            registered(org_key, name=f"Cluster{NUL}", country=f"D{NUL}"),
            GROUPS[collab],
            "CharacterNotInRepertoireError",
        ),
        Poison(
            "an organisation id over the index limit",
            collab,
            registered(org_key, org_id=LONG),
            GROUPS[collab],
            "ProgramLimitExceededError",
        ),
        Poison(
            "a duration too large for its integer column",
            collab,
            cloud_event(
                collaboration.PartnershipFormed, org_key, {**partnership, "duration_months": 2**40}
            ),
            ("projections.organisations",),
            "DataError",
        ),
        Poison(
            "a string where a number belongs",
            collab,
            cloud_event(
                collaboration.PartnershipFormed,
                org_key,
                {**partnership, "duration_months": "thirty-six"},
            ),
            GROUPS[collab],
            "ValidationError",
        ),
        *broken(people, person_key, person(person_key)),
        Poison(
            "U+0000 in a name and a country",
            people,
            person(person_key, name=f"An{NUL}", country=f"D{NUL}"),
            GROUPS[people],
            "CharacterNotInRepertoireError",
        ),
        Poison(
            "a person id over the index limit",
            people,
            person(person_key, person_id=LONG),
            GROUPS[people],
            "ProgramLimitExceededError",
        ),
        Poison(
            "a string where a list belongs",
            people,
            person(person_key, affiliation_org_ids=12),
            GROUPS[people],
            "ValidationError",
        ),
        *broken(labels, label_key, awarded(label_key, org)),
        Poison(
            "U+0000 in an organisation id",
            labels,
            awarded(label_key, f"{org}{NUL}"),
            GROUPS[labels],
            "CharacterNotInRepertoireError",
        ),
        Poison(
            "an organisation id over the index limit",
            labels,
            awarded(label_key, LONG),
            GROUPS[labels],
            "ProgramLimitExceededError",
        ),
        Poison(
            "a position too large for its bigint column",
            labels,
            awarded(label_key, org, position=10**20),
            GROUPS[labels],
            "DataError",
        ),
        Poison(
            "a string where a date belongs",
            labels,
            awarded(label_key, org, valid_until="soon"),
            GROUPS[labels],
            "ValidationError",
        ),
        *broken(decisions, org, approved(org)),
        Poison(
            "U+0000 in an organisation id",
            decisions,
            approved(org, org_id=f"{org}{NUL}"),
            GROUPS[decisions],
            "CharacterNotInRepertoireError",
        ),
        Poison(
            "a string where a number belongs",
            decisions,
            approved(org, indicator_count="many"),
            GROUPS[decisions],
            "ValidationError",
        ),
    ]


def header(record: ConsumerRecord[bytes, bytes], name: str) -> bytes:
    value: bytes = dict(record.headers or ()).get(name, b"")
    return value


def origin(record: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int]:
    """Where a dead letter's original was: topic, partition, offset."""
    topic, partition, offset = (
        header(record, f"dlq_{n}") for n in ("topic", "partition", "offset")
    )
    return topic.decode(), int(partition or -1), int(offset or -1)


def from_places(
    places: set[tuple[str, int, int]],
) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    """Dead letters whose originals were at one of ``places``."""
    return lambda r: origin(r) in places


def real(key: str, source: bytes) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    """Records with the key, sent by the service (not by this test)."""
    return lambda r: r.key == key.encode() and header(r, "ce_source") == source


async def test_poison_on_every_topic_is_dead_lettered_and_the_next_event_applied(
    system: System,
) -> None:
    # given poison on every consumed topic, ahead of an organisation, an expert and a label
    org, expert = scenario.fresh("org"), scenario.fresh("expert")
    placed: list[Poison] = []
    for topic in GROUPS:
        items = [p for p in poison_for(org, expert) if p.topic == topic]
        landed = await produce(system.kafka, system.topic(topic), [p.record for p in items])
        placed += [
            replace(p, partition=m.partition, offset=m.offset)
            for p, m in zip(items, landed, strict=True)
        ]

    # when the real events follow: an organisation, an expert, and a Bronze label
    await scenario.organisation(system, "CY", validated_on="2024-01-10", org_id=org)
    await scenario.expert(system, "LU", ["benchmarking_expert"], "2024-01-02", person_id=expert)
    await scenario.known_to_assessments(system, [org], [expert])  # assessments.reference
    await scenario.bronze(system, org, expert, "2025-06-03", "2025-06-20")

    # then every group applied the real event after its poison
    await scenario.listed(system, org)  # label_decisions.decisions, projections.labels

    async def applied_everywhere() -> bool:
        profile = (await system.get("collaboration", f"/organisations/{org}")).json()
        page = await system.get("projections", f"/api/organisations/{org}")
        experts = (await system.get("projections", "/api/experts?country=LU")).json()
        return (
            [label["level"] for label in profile["labels"]] == ["bronze"]  # collaboration.labels
            and page.status_code == 200  # projections.organisations
            and expert in str(experts["items"])  # projections.experts
        )

    await system.until(applied_everywhere, "every group to apply the real events")
    (row,) = (await system.get("projections", f"/api/labels?q={org}")).json()["items"]
    assert row["name"] == f"Cluster {org}"  # the label register's organisation columns

    # and each real event came after the poison on its partition
    for topic, key, source in (
        ("collaboration.events", f"organisation:{org}", b"/collaboration"),
        ("training_certification.events", f"person:{expert}", b"/training_certification"),
        ("label_decisions.events", f"{org}:bronze", b"/label_decisions"),
        ("assessments.decisions", org, b"/assessments"),
    ):
        (first, *_) = await system.records(topic, real(key, source))
        before = [p for p in placed if p.topic == topic]
        assert {p.partition for p in before} == {first.partition}
        assert max(p.offset for p in before) < first.offset

    # and every group dead-lettered what it cannot apply, saying where from and why
    for group in {g for groups in GROUPS.values() for g in groups}:
        expected = {
            (system.topic(p.topic), p.partition, p.offset): p for p in placed if group in p.groups
        }

        letters = await system.records(
            f"{group}.dlq", from_places(set(expected)), at_least=len(expected)
        )
        found = {origin(r): r for r in letters}
        assert found.keys() == expected.keys(), group
        for where, letter in found.items():
            poison = expected[where]
            assert header(letter, "dlq_group") == system.topic(group).encode()
            assert header(letter, "dlq_error_type") == poison.error.encode(), (group, poison.what)
            assert header(letter, "dlq_error")
            assert (letter.key, letter.value) == (poison.record.key, poison.record.value)

    # and every service is ready, and every read model has read everything
    async def ready() -> bool:
        for service in system.urls:
            if (await system.get(service, "/readyz")).status_code != 200:
                return False
        models = (await system.get("projections", "/read-models")).json()["read_models"]
        return all(m["lag_messages"] == 0 for m in models)

    await system.until(ready, "every service ready and no read model behind")

    # and the replay command lists them (dry run); replayed unfixed, they stay refused
    dry = await replay_command(system, "assessments.reference", "--dry-run")
    assert dry.count("would replay") == sum("assessments.reference" in p.groups for p in placed)
    again = await replay_command(system, "projections.organisations", expect=1)
    assert again.count("still refused") == sum(
        "projections.organisations" in p.groups for p in placed
    )
    assert (await system.get("projections", "/readyz")).status_code == 200


async def replay_command(system: System, group: str, *args: str, expect: int = 0) -> str:
    """Run ``python -m clr_events.consumers.dlq replay`` on the session's installation."""
    env = {
        **os.environ,
        "CLR_DATABASE_URL": system.database_url,
        "CLR_KAFKA_BOOTSTRAP_SERVERS": system.kafka,
        "CLR_INSTANCE": system.instance,
        "CLR_JWT_SECRET": system.secret,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clr_events.consumers.dlq",
        "replay",
        "--group",
        group,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode(errors="replace")
    assert process.returncode == expect, text
    return text
