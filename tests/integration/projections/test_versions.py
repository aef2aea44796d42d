"""The read models keep every recorded state of a validity period (transaction time):
one version per event, none for an event republished under a new offset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from clr_events.codec import to_kafka
from clr_events.contracts import label_decisions, training_certification
from clr_events.envelope import Envelope
from clr_events.pg import Pool
from clr_events.registry import Contract, registry
from projections.core import Record, apply_batch, create_generation, decode_batch, generation_schema
from projections.read_models.experts import ExpertRegister
from projections.read_models.labels import LABEL_TOPIC, LabelRegister

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPERTS_TOPIC = "training_certification.events"


def record(
    topic: str, offset: int, position: int, model: type[Contract], subject: str, **data: Any
) -> Record:
    kafka = to_kafka(
        Envelope(
            id=str(uuid.uuid4()),
            source="/test",
            type=registry.type_of(model),
            subject=subject,
            time=T0 + timedelta(days=position),
            data=data,
            streamversion=position,
            globalposition=position,
        )
    )
    return Record(topic, 0, offset, kafka.key, kafka.value, kafka.headers)


async def dead_letter(_message: Any, error: BaseException) -> None:
    raise AssertionError(error)


async def test_label_segments_keep_a_version_per_decision(pool: Pool) -> None:
    model = LabelRegister()
    model.name = f"labels{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as conn:
        await create_generation(conn, model, 1)
    schema = generation_schema(model, 1)
    key = {"org_id": "o-1", "level": "bronze"}
    decided = {"assessment_id": "a-1", "expert_ids": [], "policy_version": "t", "decided_by": "t"}
    award = record(
        LABEL_TOPIC,
        0,
        1,
        label_decisions.LabelAwarded,
        "o-1:bronze",
        **key,
        **decided,
        assessed_on="2023-03-05",
        awarded_on="2023-04-01",
        valid_until="2025-03-31",
        renewal_deadline="2026-03-31",
    )
    expired = record(
        LABEL_TOPIC,
        1,
        2,
        label_decisions.LabelExpired,
        "o-1:bronze",
        **key,
        valid_until="2025-03-31",
        expired_on="2025-04-01",
    )
    late = record(
        LABEL_TOPIC,
        2,
        3,
        label_decisions.LabelRenewed,
        "o-1:bronze",
        **key,
        **{**decided, "assessment_id": "a-2"},
        assessed_on="2025-05-05",
        renewed_on="2025-06-01",
        previous_valid_until="2025-03-31",
        valid_until="2028-03-31",
        renewal_deadline="2029-03-31",
    )
    corrected = record(
        LABEL_TOPIC,
        3,
        4,
        label_decisions.LabelRecordCorrected,
        "o-1:bronze",
        **key,
        previous_valid_until="2028-03-31",
        valid_until="2027-12-31",
        renewal_deadline="2028-12-31",
        reason="typo",
        corrected_by="board",
    )
    republished = Record(LABEL_TOPIC, 0, 4, late.key, late.value, late.headers)
    try:
        batch = decode_batch([award, expired, late, corrected])
        assert await apply_batch(pool, model, batch, dead_letter, schema=schema) == 4
        await apply_batch(pool, model, decode_batch([republished]), dead_letter, schema=schema)
        rows = await pool.fetch(
            f"SELECT seq, position, recorded_at, valid_from::text, valid_until::text,"
            f" renewal_deadline::text, awarded_on::text, renewed_on::text"
            f" FROM {schema}.segment_versions ORDER BY position"
        )
        assert [tuple(r.values()) for r in rows] == [
            (1, 1, T0 + timedelta(days=1), "2023-04-01", "2025-03-31", "2026-03-31",
             "2023-04-01", None),
            (2, 3, T0 + timedelta(days=3), "2025-06-01", "2028-03-31", "2029-03-31",
             "2023-04-01", "2025-06-01"),
            (2, 4, T0 + timedelta(days=4), "2025-06-01", "2027-12-31", "2028-12-31",
             "2023-04-01", "2025-06-01"),
        ]  # fmt: skip
        history = await pool.fetch(f"SELECT recorded_at FROM {schema}.history ORDER BY position")
        assert [r["recorded_at"] for r in history] == [T0 + timedelta(days=d) for d in (1, 2, 3, 4)]
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def test_certification_periods_keep_a_version_per_event(pool: Pool) -> None:
    model = ExpertRegister()
    model.name = f"experts{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as conn:
        await create_generation(conn, model, 1)
    schema = generation_schema(model, 1)
    who = {"person_id": "p-1", "role": "trainer"}
    tc = training_certification

    def certified(offset: int, position: int, since: str, until: str) -> Record:
        return record(
            EXPERTS_TOPIC,
            offset,
            position,
            tc.ExpertCertified,
            "person:p-1",
            **who,
            valid_from=since,
            valid_until=until,
            certified_by="admin",
        )

    first = certified(0, 1, "2015-06-01", "2018-06-01")
    batch = [
        first,
        record(EXPERTS_TOPIC, 1, 2, tc.CertificationRenewed, "person:p-1", **who,
               valid_until="2019-06-01"),
        certified(2, 3, "2020-01-10", "2023-01-10"),
        record(EXPERTS_TOPIC, 3, 4, tc.CertificationRevoked, "person:p-1", **who,
               revoked_on="2021-06-01", reason="r"),
        Record(EXPERTS_TOPIC, 0, 4, first.key, first.value, first.headers),  # republished
    ]  # fmt: skip
    try:
        await apply_batch(pool, model, decode_batch(batch), dead_letter, schema=schema)
        rows = await pool.fetch(
            f"SELECT seq, position, valid_from::text, valid_until::text, revoked_on::text"
            f" FROM {schema}.certification_versions ORDER BY position"
        )
        assert [tuple(r.values()) for r in rows] == [
            (1, 1, "2015-06-01", "2018-06-01", None),
            (1, 2, "2015-06-01", "2019-06-01", None),
            (2, 3, "2020-01-10", "2023-01-10", None),
            (2, 4, "2020-01-10", "2023-01-10", "2021-06-01"),
        ]
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
