"""A realistic history, created through the services' real HTTP APIs (never rows).

About 1,300 cluster organisations in 48 countries; ~150 experts trained and certified
(with renewals, so they stay certified); Bronze benchmarkings from 2012 on, renewed inside
the window, late, or not at all; Silver paths (two benchmarkings 18 to 24 months apart
and an audit) and Gold assessments (some short of the threshold, so refused); a few
withdrawals; partnerships, cooperation agreements and matchmaking events. Expiries
follow by the label service's clock. Seeded, so two runs tell the same story.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx

from clr_events.countries import EU_MEMBER_STATES
from clr_events.months import add_months
from clr_events.service.auth import AuthSettings, mint
from clr_events.service.inputs import today_utc

EU = list(EU_MEMBER_STATES)
OTHERS = [
    "NO",
    "IS",
    "TR",
    "RS",
    "ME",
    "MK",
    "AL",
    "BA",
    "UA",
    "MD",
    "AM",
    "GE",
    "IL",
    "TN",
    "MA",
    "CH",
    "GB",
    "CA",
    "JP",
    "KR",
    "US",
]
COUNTRIES = EU + OTHERS[:21]
WEIGHTS = {"DE": 14, "ES": 10, "FR": 8, "IT": 7, "PL": 5, "AT": 4, "SE": 4, "DK": 3, "NO": 3}
SECTORS = [
    "Advanced manufacturing",
    "Agri-food",
    "Health and life sciences",
    "Energy",
    "Digital industries",
    "Mobility and transport",
    "Aerospace and defence",
    "Textiles",
    "Construction",
    "Creative industries",
    "Maritime",
    "Tourism",
    "Environmental technology",
]
THIRD_COUNTRIES = ["US", "JP", "CA", "KR", "BR", "IN", "MX", "SG", "AU", "ZA"]


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.phase = ""

    def step(self, phase: str, n: int = 1) -> None:
        self.phase, self.done = phase, self.done + n
        share = min(1.0, self.done / max(1, self.total))
        bar = "#" * int(share * 30)
        sys.stderr.write(
            f"\r  [{bar:<30}] {share:6.1%} {self.done:>6} calls"
            f" {time.monotonic() - self.started:6.1f} s  {phase:<28}"
        )
        sys.stderr.flush()


@dataclass
class Demo:
    """The generator's state: the client, the ids it made, and what it has done."""

    urls: dict[str, str]
    client: httpx.AsyncClient
    headers: dict[str, str]
    progress: Progress
    rng: random.Random
    today: date
    orgs: list[tuple[str, str]] = field(default_factory=list)
    experts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    affiliations: dict[str, str] = field(default_factory=dict)
    labelled: list[str] = field(default_factory=list)
    refusals: int = 0

    async def call(self, service: str, path: str, body: Any, phase: str) -> dict[str, Any]:
        """One command; anything but success stops the demo with the problem."""
        for attempt in range(5):
            response = await self.client.post(
                self.urls[service] + path, json=body, headers=self.headers
            )
            if response.status_code != 409 or attempt == 4:
                break
            await asyncio.sleep(0.2 * (attempt + 1))
        self.progress.step(phase)
        if response.status_code >= 300:
            raise RuntimeError(f"{service} {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result


async def gather_limited(jobs: Iterable[Awaitable[Any]], limit: int = 12) -> None:
    """Run the jobs, ``limit`` at a time."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[Any]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(run(job) for job in jobs))


def _day(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange(max(1, (end - start).days)))


async def _organisation(demo: Demo, n: int, first_assessment: date | None) -> None:
    rng = demo.rng
    org_id = f"demo-org-{n:04}"
    country = demo.orgs[n][1]
    figures = {
        "management_fte": round(rng.uniform(0.5, 12), 1),
        "committed_members": rng.randrange(15, 400),
        "member_types": rng.sample(["sme", "large_company", "research", "university", "public"], 3),
        "english_website": True,
    }
    await demo.call(
        "collaboration",
        "/organisations",
        {
            "org_id": org_id,
            "name": f"{rng.choice(SECTORS).split()[0]} Cluster {country}-{n:04}",
            "country": country,
            "region": None,
            "website": f"https://cluster-{n:04}.example.eu",
            "sector": rng.choice(SECTORS),
            "eccp_profile_id": f"eccp-{n:05}",
            "figures": figures,
        },
        "organisations",
    )
    if first_assessment is not None or rng.random() < 0.6:
        anchor = first_assessment or _day(rng, date(2014, 1, 1), demo.today)
        validated = max(date(2013, 1, 1), anchor - timedelta(days=rng.randrange(30, 400)))
        await demo.call(
            "collaboration",
            f"/organisations/{org_id}/validation",
            {"validated_on": validated.isoformat()},
            "profile validations",
        )


async def _expert(demo: Demo, n: int, roles: list[str], country: str) -> None:
    person_id = f"demo-expert-{n:03}"
    affiliation = demo.rng.choice(demo.orgs)[0] if demo.rng.random() < 0.3 else None
    await demo.call(
        "training_certification",
        "/people",
        {
            "person_id": person_id,
            "name": f"Expert {n:03}",
            "country": country,
            "affiliation_org_ids": [affiliation] if affiliation else [],
        },
        "experts",
    )
    if affiliation:
        demo.affiliations[person_id] = affiliation
    steps = [
        (
            f"/people/{person_id}/enrolments",
            {"course_id": "demo-benchmarking-2011", "on": "2011-02-01"},
        ),
        (
            f"/people/{person_id}/completions",
            {"course_id": "demo-benchmarking-2011", "on": "2011-05-01"},
        ),
    ]
    for path, body in steps:
        await demo.call("training_certification", path, body, "training")
    for role in roles:
        await demo.call(
            "training_certification",
            f"/people/{person_id}/certifications",
            {"role": role, "on": "2011-06-01"},
            "certifications",
        )
        until = date(2014, 6, 1)
        while until < add_months(demo.today, 12):
            # a month before it ends, or today for one ending within the coming year: a
            # renewal is a fact, never dated after today
            renewed_on = min(until - timedelta(days=30), demo.today)
            await demo.call(
                "training_certification",
                f"/people/{person_id}/certifications/renewals",
                {"role": role, "on": renewed_on.isoformat()},
                "certification renewals",
            )
            until = add_months(until, 36)
        demo.experts.setdefault(role, []).append((person_id, country))


def _pick(
    demo: Demo, role: str, org_id: str, country: str | None = None, not_country: str | None = None
) -> str:
    candidates = [
        p
        for p, c in demo.experts[role]
        if demo.affiliations.get(p) != org_id
        and (country is None or c == country)
        and (not_country is None or c != not_country)
    ]
    return demo.rng.choice(candidates)


async def _bronze(demo: Demo, org_id: str, on: date) -> str:
    rng = demo.rng
    greens = rng.randrange(8, 30)
    reds = rng.randrange(0, 36 - greens)
    ratings = ["green"] * greens + ["red"] * reds + ["yellow"] * (36 - greens - reds)
    rng.shuffle(ratings)
    recorded = await demo.call(
        "assessments",
        "/assessments/bronze",
        {
            "org_id": org_id,
            "expert_id": _pick(demo, "benchmarking_expert", org_id),
            "conducted_on": on.isoformat(),
            "mode": rng.choice(["on_site", "on_site", "video"]),
            "ratings": ratings,
        },
        "Bronze benchmarkings",
    )
    await _approve(
        demo, recorded["assessment_id"], on, "ESCA" if on.year < 2021 else "EUCLES board"
    )
    return str(recorded["assessment_id"])


async def _approve(demo: Demo, assessment_id: str, on: date, approver: str) -> None:
    approved_on = min(demo.today, on + timedelta(days=demo.rng.randrange(10, 50)))
    await demo.call(
        "assessments",
        f"/assessments/{assessment_id}/approval",
        {"approved_on": approved_on.isoformat(), "approver": approver},
        "approvals",
    )


async def _label_path(demo: Demo, org_id: str, country: str, first: date) -> None:
    """One organisation's assessments, in time order (its decisions follow that order)."""
    rng = demo.rng
    path = rng.random()
    on = first
    if path < 0.12 and on < add_months(demo.today, -26):  # Silver
        b1 = await _bronze(demo, org_id, on)
        second = add_months(on, rng.randrange(19, 24))
        b2 = await _bronze(demo, org_id, second)
        areas = rng.sample(
            [
                "strategy",
                "services",
                "financing",
                "governance",
                "internationalisation",
                "communication",
            ],
            3,
        )
        passed = rng.random() < 0.85
        recorded = await demo.call(
            "assessments",
            "/assessments/silver",
            {
                "org_id": org_id,
                "auditor_id": _pick(demo, "silver_auditor", org_id),
                "conducted_on": second.isoformat(),
                "first_benchmarking_id": b1,
                "second_benchmarking_id": b2,
                "improvement_areas": areas,
                "areas_validated": [True, True, passed],
                "baseline_met": True,
            },
            "Silver audits",
        )
        await _approve(demo, recorded["assessment_id"], second, "EUCLES board")
        demo.refusals += not passed
        return
    if path < 0.18 and any(c == country for _, c in demo.experts["gold_assessor"]):  # Gold
        score = round(rng.uniform(80.5, 96), 1) if rng.random() < 0.85 else 76.0
        recorded = await demo.call(
            "assessments",
            "/assessments/gold",
            {
                "org_id": org_id,
                "expert_ids": [
                    _pick(demo, "gold_assessor", org_id, country=country),
                    _pick(demo, "gold_assessor", org_id, not_country=country),
                ],
                "conducted_on": on.isoformat(),
                "indicators": [
                    {"code": f"G{i:02}", "score": rng.uniform(3.0, 5.0), "threshold": 3.0}
                    for i in range(1, 32)
                ],
                "score_pct": score,
                "on_site_days": 2,
                "evidence_documents": rng.randrange(8, 30),
            },
            "Gold assessments",
        )
        await _approve(demo, recorded["assessment_id"], on, "EUCLES board")
        demo.refusals += score < 80
        return
    valid_until = add_months(on, 24)
    while on < demo.today:
        await _bronze(demo, org_id, on)
        roll = rng.random()
        if roll < 0.55:  # renewed inside the window (before expiry or up to a year after)
            on = add_months(valid_until, rng.randrange(-4, 10))
            valid_until = add_months(valid_until, 36)
        elif roll < 0.7:  # benchmarked again, but after the window: a new first award
            on = add_months(valid_until, rng.randrange(13, 30))
            valid_until = add_months(on, 24)
        else:
            return
    demo.labelled.append(org_id)


async def run(
    urls: dict[str, str], *, organisations: int = 1300, seed: int = 2026
) -> dict[str, Any]:
    """Create the demo history; a summary of what was made."""
    rng = random.Random(seed)
    secret = AuthSettings()
    token = mint("demo-generator", ["registry_admin"], secret)
    async with httpx.AsyncClient(timeout=60.0, limits=httpx.Limits(max_connections=24)) as client:
        present = await client.get(urls["collaboration"] + "/organisations/demo-org-0000")
        if present.status_code == 200:
            return {"skipped": "the demo data is already present"}
        demo = Demo(
            urls,
            client,
            {"Authorization": f"Bearer {token}"},
            Progress(organisations * 6),
            rng,
            today_utc(),  # the services refuse facts dated after today in UTC
        )
        weights = [WEIGHTS.get(c, 1) for c in COUNTRIES]
        demo.orgs = [
            (f"demo-org-{n:04}", rng.choices(COUNTRIES, weights)[0]) for n in range(organisations)
        ]
        firsts = {
            n: _day(rng, date(2012, 1, 1), add_months(demo.today, -2))
            for n in range(organisations)
            if rng.random() < 0.7
        }
        started = time.monotonic()
        await demo.call(
            "training_certification",
            "/courses",
            {
                "course_id": "demo-benchmarking-2011",
                "title": "ECEI Cluster Benchmarking Expert training",
                "kind": "benchmarking_tool_training",
                "starts_on": "2011-02-01",
            },
            "courses",
        )
        await gather_limited(_organisation(demo, n, firsts.get(n)) for n in range(organisations))
        experts = []
        for n in range(150):
            roles = ["benchmarking_expert"]
            roles += ["gold_assessor"] if n % 4 == 0 else []
            roles += ["silver_auditor"] if n % 5 == 0 else []
            experts.append(
                _expert(demo, n, roles, COUNTRIES[n % 26] if n < 104 else rng.choice(COUNTRIES))
            )
        await gather_limited(experts)
        await _wait_known(
            demo, [o for o, _ in demo.orgs], [p for p, _ in demo.experts["benchmarking_expert"]]
        )
        await gather_limited(
            _label_path(demo, demo.orgs[n][0], demo.orgs[n][1], first)
            for n, first in firsts.items()
        )
        await _collaboration(demo)
        await _withdrawals(demo)
        await client.post(urls["label_decisions"] + "/expiry-runs", json={}, headers=demo.headers)
        sys.stderr.write("\n")
        return {
            "organisations": organisations,
            "countries": len({c for _, c in demo.orgs}),
            "experts": 150,
            "organisations_assessed": len(firsts),
            "refused_on_results": demo.refusals,
            "api_calls": demo.progress.done,
            "seconds": round(time.monotonic() - started, 1),
        }


async def _wait_known(demo: Demo, org_ids: list[str], expert_ids: list[str]) -> None:
    """Wait until the assessments service has read every organisation and expert from Kafka."""
    pending = [f"/reference/organisations/{o}" for o in org_ids] + [
        f"/reference/experts/{p}" for p in expert_ids
    ]
    deadline = time.monotonic() + 300
    while pending:
        demo.progress.step("waiting for Kafka", 0)
        still = []
        for path in pending:
            if (await demo.client.get(demo.urls["assessments"] + path)).status_code != 200:
                still.append(path)
        pending = still
        if pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the assessments service never learned {pending[:3]}")
            await asyncio.sleep(1.0)


async def _collaboration(demo: Demo) -> None:
    rng = demo.rng
    eligible = [o for o, c in demo.orgs if c in EU or c in ("NO", "IS", "TR", "RS", "UA")]
    for n in range(30):
        members = rng.sample(eligible, rng.randrange(3, 7))
        countries = {dict(demo.orgs)[m] for m in members}
        strand = (
            "ESCP-S3"
            if len(countries) >= 3 and n % 3 == 0
            else rng.choice(["ESCP-4i", "ESCP-4x", "Euroclusters"])
        )
        await demo.call(
            "collaboration",
            "/partnerships",
            {
                "partnership_id": f"demo-partnership-{n:02}",
                "name": f"European partnership {n:02}",
                "strand": strand,
                "call_id": "COS-CLUSTPARTNERS-2020"
                if strand != "Euroclusters"
                else "SMP-COSME-2021-CLUSTER",
                "member_org_ids": members,
                "start_on": _day(rng, date(2017, 1, 1), date(2023, 1, 1)).isoformat(),
                "duration_months": rng.choice([24, 30, 36]),
            },
            "partnerships",
        )
    for n in range(15):
        country = rng.choice(THIRD_COUNTRIES)
        signed = _day(rng, date(2015, 1, 1), date(2021, 1, 1))
        await demo.call(
            "collaboration",
            "/agreements",
            {
                "agreement_id": f"demo-agreement-{n:02}",
                "parties": [
                    *rng.sample([o for o, _ in demo.orgs], 2),
                    f"{country} cluster association",
                ],
                "third_country": country,
                "signed_on": signed.isoformat(),
                "place": "Brussels",
            },
            "agreements",
        )
    for n in range(10):
        await demo.call(
            "collaboration",
            "/matchmaking-events",
            {
                "event_id": f"demo-matchmaking-{n:02}",
                "theme": rng.choice(SECTORS),
                "held_on": _day(rng, date(2016, 1, 1), demo.today).isoformat(),
                "countries": rng.sample(EU, 4),
                "participant_org_ids": rng.sample([o for o, _ in demo.orgs], 8),
                "meetings_c2c": rng.randrange(5, 40),
                "meetings_b2b": rng.randrange(10, 90),
                "cooperation_cases": rng.randrange(0, 6),
                "agreements": rng.randrange(0, 3),
            },
            "matchmaking events",
        )


async def _withdrawals(demo: Demo) -> None:
    """A few withdrawals by the board, once the labels exist."""
    done = 0
    for org_id in demo.labelled:
        if done == 6:
            return
        response = await demo.client.get(demo.urls["label_decisions"] + f"/labels/{org_id}")
        labels = response.json()["labels"] if response.status_code == 200 else []
        current = [lab for lab in labels if lab["status"] == "valid"]
        if current:
            await demo.call(
                "label_decisions",
                f"/labels/{org_id}/{current[0]['level']}/withdrawal",
                {
                    "reason": "the organisation ceased its cluster management activity",
                    "withdrawn_on": demo.today.isoformat(),
                },
                "withdrawals",
            )
            done += 1
