"""The label register reads R10's renewal deadline from the decisions: a label's window is
the one its decision carries, not the months configured here (those only stand in for
decisions recorded before decisions carried a deadline)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from clr_events.codec import to_kafka
from clr_events.contracts import label_decisions
from clr_events.envelope import Envelope
from clr_events.pg import Pool
from clr_events.registry import registry
from projections.core import Record, apply_batch, create_generation, decode_batch, generation_schema
from projections.queries import _status_sql
from projections.read_models.labels import LABEL_TOPIC, LabelRegister
from projections.settings import ProjectionSettings


def awarded(offset: int, org_id: str, **extra: Any) -> Record:
    data = {
        "org_id": org_id,
        "level": "bronze",
        "assessment_id": f"a-{org_id}",
        "assessed_on": "2023-03-05",
        "awarded_on": "2023-04-01",
        "valid_until": "2025-03-31",
        "expert_ids": ["e-1"],
        "policy_version": "test",
        "decided_by": "board",
        **extra,
    }
    record = to_kafka(
        Envelope(
            id=str(uuid.uuid4()),
            source="/label_decisions",
            type=registry.type_of(label_decisions.LabelAwarded),
            subject=f"{org_id}:bronze",
            time=datetime.now(UTC),
            data=data,
            streamversion=1,
            globalposition=offset + 1,
        )
    )
    return Record(LABEL_TOPIC, 0, offset, record.key, record.value, record.headers)


async def test_the_status_reads_the_deadline_the_decision_carries(pool: Pool) -> None:
    model = LabelRegister()
    model.name = f"labels{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as conn:
        await create_generation(conn, model, 1)
    schema = generation_schema(model, 1)
    batch = decode_batch([awarded(0, "short", renewal_deadline="2025-06-30"), awarded(1, "before")])

    async def dead_letter(_message: Any, error: BaseException) -> None:
        raise AssertionError(error)

    try:
        assert await apply_batch(pool, model, batch, dead_letter, schema=schema) == 2
        status = _status_sql("$1", ProjectionSettings())
        rows = await pool.fetch(
            f"SELECT l.org_id, {status} AS status FROM {schema}.labels l ORDER BY l.org_id",
            date(2025, 9, 1),
        )
        # "short" carries a window of three months; "before", recorded without a deadline,
        # falls back to the configured twelve
        assert [(r["org_id"], r["status"]) for r in rows] == [
            ("before", "in_renewal_window"),
            ("short", "expired"),
        ]
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
