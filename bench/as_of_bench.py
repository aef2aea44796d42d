"""Reads on a past day and as recorded at a past moment, beside today's read (measured,
never asserted).

A synthetic label register (``--orgs`` organisations, each with an award and a renewal;
every third renewed again late, inside its window, which opens a new validity segment;
every tenth corrected) is applied through the label register's own ``apply`` into a
scratch database. Then, interleaved over ``--repeats`` rounds, the queries behind
``/api/labels``, ``/api/counts`` and ``/api/organisations/{id}`` run three ways: the
default (today, as recorded now: the current label rows, the reference), on a past day
(the governing validity segments), and on that day as recorded at a past moment (the
segment versions recorded by then); the list also as every past day was read before,
from today's rows (fast and wrong). The counts' default is today: its ratio to a past day
reflects the data (more segments hold the past day), not another query. Medians in
milliseconds and their ratio to the default. Results go to bench/results/as_of_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from clr_events.codec import to_kafka
from clr_events.contracts import collaboration, label_decisions
from clr_events.envelope import Envelope
from clr_events.pg import Connection
from clr_events.registry import Contract, registry
from clr_events.settings import ConnectionSettings
from projections import queries
from projections.core import Record, apply_batch, decode_batch, ensure_generation
from projections.queries import ListFilter
from projections.read_models.all import READ_MODELS
from projections.read_models.labels import LABEL_TOPIC, LabelRegister
from projections.settings import ProjectionSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "as_of_bench.json"
T0 = datetime(2020, 1, 1, tzinfo=UTC)
PAST = date(2016, 1, 1)


def _record(
    topic: str,
    offset: int,
    position: int,
    model: type[Contract],
    subject: str,
    data: dict[str, Any],
) -> Record:
    kafka = to_kafka(
        Envelope(
            id=str(uuid.uuid4()),
            source="/bench",
            type=registry.type_of(model),
            subject=subject,
            time=T0 + timedelta(seconds=position),
            data=data,
            streamversion=1,
            globalposition=position,
            prevposition=position - 1,
        )
    )
    return Record(topic, 0, offset, kafka.key, kafka.value, kafka.headers)


def _validity(until: date) -> dict[str, str]:
    return {"valid_until": str(until), "renewal_deadline": str(until + timedelta(days=365))}


def history(orgs: int) -> list[Record]:
    """The synthetic history, in position order."""
    records: list[Record] = []

    def add(topic: str, model: type[Contract], subject: str, data: dict[str, Any]) -> None:
        position = len(records) + 1
        records.append(_record(topic, len(records), position, model, subject, data))

    for i in range(orgs):
        org = f"org-{i:06}"
        profile = {"org_id": org, "name": f"Cluster {i}", "sector": "Energy"}
        profile["country"] = ["DE", "FR", "IT"][i % 3]
        add("collaboration.events", collaboration.OrganisationRegistered, f"org:{org}", profile)
        day = date(2012, 1, 1) + timedelta(days=i % 2000)
        until = day + timedelta(days=730)
        key = {"org_id": org, "level": "bronze"}
        decided = {**key, "expert_ids": ["e-1"], "policy_version": "t", "decided_by": "bench"}
        subject = f"{org}:bronze"
        award = {"assessment_id": f"a-{i}", "assessed_on": str(day), "awarded_on": str(day)}
        add(LABEL_TOPIC, label_decisions.LabelAwarded, subject,
            {**decided, **award, **_validity(until)})  # fmt: skip
        previous, until = until, until + timedelta(days=1095)
        renewal = {
            "assessment_id": f"b-{i}",
            "assessed_on": str(previous - timedelta(days=60)),
            "renewed_on": str(previous - timedelta(days=30)),
            "previous_valid_until": str(previous),
        }
        add(LABEL_TOPIC, label_decisions.LabelRenewed, subject,
            {**decided, **renewal, **_validity(until)})  # fmt: skip
        if i % 3 == 0:  # renewed late, in its window: a new segment
            late, previous, until = until + timedelta(days=90), until, until + timedelta(days=1095)
            renewal = {
                "assessment_id": f"c-{i}",
                "assessed_on": str(late),
                "renewed_on": str(late),
                "previous_valid_until": str(previous),
            }
            add(LABEL_TOPIC, label_decisions.LabelRenewed, subject,
                {**decided, **renewal, **_validity(until)})  # fmt: skip
        if i % 10 == 0:
            correction = {"previous_valid_until": str(until), "reason": "x", "corrected_by": "x"}
            add(LABEL_TOPIC, label_decisions.LabelRecordCorrected, subject,
                {**key, **correction, **_validity(until - timedelta(days=31))})  # fmt: skip
    return records


async def _from_current_rows(read: Awaitable[Any]) -> Any:
    """``read`` answered from the current label rows whatever the day: what every read on
    a past day did before (fast, and wrong: today's dates on any day)."""
    current = queries._current
    queries._current = lambda on, recorded_at: True  # noqa: ARG005
    try:
        return await read
    finally:
        queries._current = current


async def _refuse(_message: Any, error: BaseException) -> None:
    raise error


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orgs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    base = ConnectionSettings().database_url
    name = f"clr_bench_asof_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base)
    await admin.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        model = LabelRegister()
        for each in READ_MODELS.values():  # the organisation page reads the directory too
            await ensure_generation(pool, each)
        records = history(args.orgs)
        started = time.perf_counter()
        for i in range(0, len(records), 2000):
            await apply_batch(pool, model, decode_batch(records[i : i + 2000]), _refuse)
        applied_s = time.perf_counter() - started
        moment = T0 + timedelta(seconds=len(records) // 2)
        settings = ProjectionSettings()
        today = date.today()
        org = f"org-{args.orgs // 2:06}"
        cases: dict[str, Callable[[Connection], Awaitable[Any]]] = {
            "list: default": lambda c: queries.label_list(c, ListFilter(today), settings),
            "list: on a past day": lambda c: queries.label_list(c, ListFilter(PAST), settings),
            "list: on it, from today's rows (before)": lambda c: _from_current_rows(
                queries.label_list(c, ListFilter(PAST), settings)
            ),
            "list: on it, as recorded at": lambda c: queries.label_list(
                c, ListFilter(PAST, recorded_at=moment), settings
            ),
            "counts: default": lambda c: queries.counts(c, today),
            "counts: on a past day": lambda c: queries.counts(c, PAST),
            "counts: on it, as recorded at": lambda c: queries.counts(c, PAST, moment),
            "organisation: default": lambda c: queries.organisation(c, org, today, settings),
            "organisation: on a past day": lambda c: queries.organisation(c, org, PAST, settings),
            "organisation: on it, as recorded at": lambda c: queries.organisation(
                c, org, PAST, settings, moment
            ),
        }
        timings: dict[str, list[float]] = {case: [] for case in cases}
        async with pool.acquire() as proxy:
            conn: Connection = proxy
            for run in cases.values():  # warm up: plans and caches
                await run(conn)
            for _ in range(args.repeats):
                for case, run in cases.items():
                    started = time.perf_counter()
                    await run(conn)
                    timings[case].append((time.perf_counter() - started) * 1000)
        medians = {case: statistics.median(t) for case, t in timings.items()}
        lines = [
            f"as-of reads over {args.orgs} labels ({len(records)} events applied in"
            f" {applied_s:.1f} s, {len(records) / applied_s:,.0f} events/s); medians of"
            f" {args.repeats}, interleaved",
            f"{'read':42} {'ms':>8} {'x default':>10}",
        ]
        for case, ms in medians.items():
            reference = medians[case.split(":")[0] + ": default"]
            lines.append(f"{case:42} {ms:8.2f} {ms / reference:10.2f}")
        print("\n".join(lines))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "orgs": args.orgs,
                    "events": len(records),
                    "applied_seconds": applied_s,
                    "median_ms": medians,
                    "at": datetime.now(UTC).isoformat(),
                },
                indent=2,
            )
        )
        print("\nwritten: bench/results/as_of_bench.json")
    finally:
        await pool.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
