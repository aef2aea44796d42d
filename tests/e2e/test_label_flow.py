"""End to end across the four running services on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e import scenario
from tests.e2e.conftest import System

LABELS = "label_decisions.events"


async def test_validate_certify_benchmark_approve_renew_refuse_gold_and_expire(
    system: System,
) -> None:
    # given a validated organisation and certified experts, national and foreign
    org = await scenario.organisation(system, "DE", validated_on="2024-01-10")
    foreign = await scenario.expert(
        system, "AT", ["benchmarking_expert", "gold_assessor"], "2023-04-01"
    )
    national = await scenario.expert(system, "DE", ["benchmarking_expert"], "2023-04-01")
    await scenario.known_to_assessments(system, [org], [foreign, national])

    # when a Bronze benchmarking of March 2024 is approved
    first = await scenario.bronze(system, org, foreign, "2024-03-05", "2024-04-02")

    # then LabelAwarded reaches Kafka, valid two years from the interview month (R3)
    (awarded,) = await system.events(LABELS, f"{org}:bronze", at_least=1)
    assert awarded.type == "label_decisions.LabelAwarded.v1"
    assert awarded.data["valid_until"] == "2026-03-31"
    assert awarded.data["assessment_id"] == first
    assert awarded.data["expert_ids"] == [foreign]
    assert awarded.data["policy_version"] == "2026.2"
    assert "ESCA" in awarded.data["decided_by"]

    # when a renewal benchmarking inside the window is approved
    await scenario.bronze(system, org, national, "2026-02-10", "2026-02-20")

    # then the validity extends seamlessly by three years (R4)
    events = await system.events(LABELS, f"{org}:bronze", at_least=2)
    renewed = events[1]
    assert renewed.type == "label_decisions.LabelRenewed.v1"
    assert renewed.data["previous_valid_until"] == "2026-03-31"
    assert renewed.data["valid_until"] == "2029-03-31"

    # when a Gold assessment names an expert not certified as Gold assessor
    gold = {
        "org_id": org,
        "expert_ids": [foreign, national],
        "conducted_on": "2026-03-12",
        "indicators": [{"code": f"G{i:02}", "score": 4.0, "threshold": 3.0} for i in range(1, 32)],
        "score_pct": 86.0,
        "on_site_days": 2,
        "evidence_documents": 14,
    }
    refused = await system.post("assessments", "/assessments/gold", gold, "assessor")

    # then it is refused with R9 named, and nothing is recorded
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["violations"] == [
        {
            "rule": "R9",
            "message": f"expert {national!r} holds no valid gold_assessor certification"
            " on 2026-03-12",
        }
    ]
    listed = await system.get("assessments", f"/assessments?org_id={org}")
    assert [a["kind"] for a in listed.json()["items"]] == ["bronze_benchmarking"] * 2

    # given an organisation whose label lapsed long ago
    lapsed = await scenario.organisation(system, "FR", validated_on="2019-01-10")
    early = await scenario.expert(system, "BE", ["benchmarking_expert"], "2019-06-01")
    await scenario.known_to_assessments(system, [lapsed], [early])
    await scenario.bronze(system, lapsed, early, "2020-01-15", "2020-02-03")
    await system.events(LABELS, f"{lapsed}:bronze", at_least=1)

    # when the expiry clock runs, twice
    for _ in range(2):
        run = await system.post("label_decisions", "/expiry-runs", {}, "labelling_board")
        assert run.status_code == 200, run.text

    # then exactly one LabelExpired, the day after valid_until
    events = await system.events(LABELS, f"{lapsed}:bronze", at_least=2)
    await asyncio.sleep(1.0)
    events = await system.events(LABELS, f"{lapsed}:bronze", at_least=3, timeout=3.0)
    assert [e.type.split(".")[1] for e in events] == ["LabelAwarded", "LabelExpired"]
    assert events[1].data == {
        "org_id": lapsed,
        "level": "bronze",
        "valid_until": "2022-01-31",
        "expired_on": "2022-02-01",
        "policy_version": "2026.2",
    }
    labels = await system.get("label_decisions", f"/labels/{lapsed}")
    assert labels.json()["labels"][0]["status"] == "expired"


async def test_two_concurrent_approvals_of_one_assessment_make_one_decision(
    system: System,
) -> None:
    org = await scenario.organisation(system, "IT", validated_on="2023-06-01")
    person = await scenario.expert(system, "ES", ["benchmarking_expert"], "2023-01-15")
    await scenario.known_to_assessments(system, [org], [person])
    body = {
        "org_id": org,
        "expert_id": person,
        "conducted_on": "2025-09-09",
        "mode": "video",
        "ratings": ["green"] * 36,
    }
    recorded = await system.post("assessments", "/assessments/bronze", body, "assessor")
    assessment_id = recorded.json()["assessment_id"]

    approvals = await asyncio.gather(
        *(
            system.post(
                "assessments",
                f"/assessments/{assessment_id}/approval",
                {"approved_on": day, "approver": "EUCLES board"},
                "labelling_board",
            )
            for day in ("2025-10-01", "2025-10-02")
        )
    )

    assert sorted(a.status_code for a in approvals) == [201, 409]
    assert all(
        a.headers["content-type"] == "application/problem+json"
        for a in approvals
        if a.status_code == 409
    )
    await system.events(LABELS, f"{org}:bronze", at_least=1)
    await asyncio.sleep(2.0)
    decisions = await system.events(LABELS, f"{org}:bronze", at_least=2, timeout=3.0)
    assert [e.type for e in decisions] == ["label_decisions.LabelAwarded.v1"]
    history = await system.get("label_decisions", f"/labels/{org}/bronze/history", "auditor")
    assert [e["type"] for e in history.json()["events"]] == ["LabelAwarded"]


async def test_the_board_withdraws_and_corrects_by_compensating_events(system: System) -> None:
    org = await scenario.organisation(system, "PT", validated_on="2024-01-10")
    person = await scenario.expert(system, "ES", ["benchmarking_expert"], "2024-01-02")
    await scenario.known_to_assessments(system, [org], [person])
    await scenario.bronze(system, org, person, "2025-06-03", "2025-06-20")
    await system.events(LABELS, f"{org}:bronze", at_least=1)
    path = f"/labels/{org}/bronze"

    corrected = await system.post(
        "label_decisions",
        f"{path}/corrections",
        {"valid_until": "2027-05-31", "reason": "the interview was in May, not June"},
        "labelling_board",
    )
    unchanged = await system.post(
        "label_decisions",
        f"{path}/corrections",
        {"valid_until": "2027-05-31", "reason": "again"},
        "labelling_board",
    )
    withdrawn = await system.post(
        "label_decisions",
        f"{path}/withdrawal",
        {"reason": "ceased cluster management", "withdrawn_on": "2026-01-15"},
        "labelling_board",
    )
    forbidden = await system.post(
        "label_decisions",
        f"{path}/withdrawal",
        {"reason": "x", "withdrawn_on": "2026-01-15"},
        "assessor",
    )

    assert corrected.status_code == 201 and corrected.json()["valid_until"] == "2027-05-31"
    assert unchanged.status_code == 422
    assert unchanged.json()["violations"][0]["rule"] == "R15"
    assert withdrawn.status_code == 201 and withdrawn.json()["status"] == "withdrawn"
    assert forbidden.status_code == 403
    events = await system.events(LABELS, f"{org}:bronze", at_least=3)
    assert [e.type.split(".")[1] for e in events] == [
        "LabelAwarded",
        "LabelRecordCorrected",
        "LabelWithdrawn",
    ]
    assert events[1].data["previous_valid_until"] == "2027-06-30"
    history = await system.get("label_decisions", f"{path}/history", "auditor")
    assert [e["actor"] for e in history.json()["events"]] == ["label_decisions", "e2e", "e2e"]
    verified = await system.get("label_decisions", "/verification", "auditor")
    assert verified.json()["ok"] is True
    end = verified.json()["last_position"]
    for query in (f"first={end}&last={end - 1}", f"last={end + 1000}", f"first={end + 1000}"):
        refused = await system.get("label_decisions", f"/verification?{query}", "auditor")
        assert refused.status_code == 422, (query, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"


async def decisions(system: System, org: str, level: str, at_least: int) -> list[dict[str, Any]]:
    """The record's decision history (auditor), once it has ``at_least`` events."""

    async def check() -> list[dict[str, Any]] | None:
        response = await system.get("label_decisions", f"/labels/{org}/{level}/history", "auditor")
        if response.status_code != 200:
            return None
        events: list[dict[str, Any]] = response.json()["events"]
        return events if len(events) >= at_least else None

    found: list[dict[str, Any]] = await system.until(check, f"{at_least} decisions on {org}")
    return found


async def gold(
    system: System, org: str, experts: list[str], on: str, days: int, score: float
) -> None:
    """A recorded and approved Gold assessment."""
    body = {
        "org_id": org,
        "expert_ids": experts,
        "conducted_on": on,
        "indicators": [{"code": f"G{i:02}", "score": 4.0, "threshold": 3.0} for i in range(1, 32)],
        "score_pct": score,
        "on_site_days": days,
        "evidence_documents": 9,
    }
    recorded = await system.post("assessments", "/assessments/gold", body, "assessor")
    assert recorded.status_code == 201, recorded.text
    approval = await system.post(
        "assessments",
        f"/assessments/{recorded.json()['assessment_id']}/approval",
        {"approved_on": on, "approver": "EUCLES board"},
        "labelling_board",
    )
    assert approval.status_code == 201, approval.text


async def test_r7_a_refused_gold_does_not_make_the_next_one_a_one_day_renewal(
    system: System,
) -> None:
    # given an organisation whose first Gold assessment fell short of 80 % (refused)
    org = await scenario.organisation(system, "NO", validated_on="2023-02-01")
    national = await scenario.expert(system, "NO", ["gold_assessor"], "2023-01-10")
    foreign = await scenario.expert(system, "DK", ["gold_assessor"], "2023-01-10")
    await scenario.known_to_assessments(system, [org], [national, foreign])
    await gold(system, org, [national, foreign], "2025-03-12", days=2, score=79.0)
    (refused,) = await decisions(system, org, "gold", at_least=1)
    assert refused["type"] == "LabelRefused"

    # when a second Gold assessment, one day on site, is approved
    await gold(system, org, [national, foreign], "2025-09-10", days=1, score=88.0)

    # then it is a first award, which takes two days (R7): refused, no label
    history = await decisions(system, org, "gold", at_least=2)
    assert [e["type"] for e in history] == ["LabelRefused", "LabelRefused"]
    assert history[1]["data"]["violations"] == [
        {
            "rule": "R7",
            "message": "a first Gold award needs 2 day(s) on site; this assessment had 1",
        }
    ]
    labels = await system.get("label_decisions", f"/labels/{org}")
    assert labels.json()["labels"] == []


async def test_r4_a_bronze_is_not_renewed_again_and_again_ahead_of_its_expiry(
    system: System,
) -> None:
    # given a Bronze label valid until 2027-01-31
    org = await scenario.organisation(system, "CZ", validated_on="2024-06-01")
    person = await scenario.expert(system, "SK", ["benchmarking_expert"], "2024-01-02")
    await scenario.known_to_assessments(system, [org], [person])
    await scenario.bronze(system, org, person, "2025-01-10", "2025-01-20")

    # when three more benchmarkings are approved within ten weeks
    for on in ("2026-09-01", "2026-09-22", "2026-11-10"):
        await scenario.bronze(system, org, person, on, on)

    # then the first renews (R4: three years on), the others come too early and are refused
    history = await decisions(system, org, "bronze", at_least=4)
    assert [e["type"] for e in history] == [
        "LabelAwarded",
        "LabelRenewed",
        "LabelRefused",
        "LabelRefused",
    ]
    assert history[1]["data"]["valid_until"] == "2030-01-31"
    assert {v["rule"] for e in history[2:] for v in e["data"]["violations"]} == {"R4"}
    published = await system.events(LABELS, f"{org}:bronze", at_least=2)
    assert [e.data["valid_until"] for e in published] == ["2027-01-31", "2030-01-31"]
