"""Provenance end to end: who approved, which certification was relied on, and a cause
for every event (commands, the consumer, the clock), shown to the auditor with hashes."""

from __future__ import annotations

from typing import Any

from tests.e2e import scenario
from tests.e2e.conftest import System
from tests.e2e.test_label_flow import gold

LABELS = "label_decisions.events"


async def test_every_event_names_its_cause_and_a_decision_its_approver_and_certification(
    system: System,
) -> None:
    org = await scenario.organisation(system, "NL", validated_on="2019-01-10")
    person = await scenario.expert(system, "BE", ["benchmarking_expert"], "2019-06-01")
    await scenario.known_to_assessments(system, [org], [person])
    body = {
        "org_id": org,
        "expert_id": person,
        "conducted_on": "2020-01-15",
        "mode": "video",
        "ratings": ["green"] * 36,
    }
    recorded = await system.post("assessments", "/assessments/bronze", body, "assessor")
    assessment_id = recorded.json()["assessment_id"]
    approval = await system.client.post(
        system.urls["assessments"] + f"/assessments/{assessment_id}/approval",
        json={"approved_on": "2020-02-03", "approver": "someone typed here"},
        headers=system.auth("labelling_board", sub="anna@eucles"),
    )
    assert approval.status_code == 201, approval.text
    command = approval.headers["x-command-id"]
    assert command.startswith("command:")

    # the decision names the token's subject and the certification the check relied on
    (awarded,) = await system.events(LABELS, f"{org}:bronze", at_least=1)
    assert awarded.data["approved_by"] == "anna@eucles"
    (certified,) = [
        e
        for e in await system.events(
            "training_certification.events", f"person:{person}", at_least=4
        )
        if e.type == "training_certification.ExpertCertified.v1"
    ]
    (relied,) = awarded.data["certifications"]
    assert relied["expert_id"] == person and relied["role"] == "benchmarking_expert"
    assert relied["certification_id"] == certified.id
    assert relied["as_of_position"] == certified.globalposition

    # causes: the approval command, and the consumed approval for the decision
    approved = [
        e
        for e in await system.events(
            "assessments.events", f"assessment:{assessment_id}", at_least=2
        )
        if e.type == "assessments.AssessmentApproved.v1"
    ]
    assert approved[0].causationid == command
    assert approved[0].data["approved_by"] == "anna@eucles"
    (for_decision,) = await system.events("assessments.decisions", org, at_least=1)
    assert awarded.causationid == for_decision.id
    assert awarded.correlationid == for_decision.correlationid

    # a clock run is the cause of its expiries: the board's run, or the clock's own one
    # if it came first
    run = await system.post("label_decisions", "/expiry-runs", {}, "labelling_board")
    assert run.status_code == 200, run.text
    events = await system.events(LABELS, f"{org}:bronze", at_least=2)
    expired = events[1]
    assert expired.type == "label_decisions.LabelExpired.v1"
    run_id = run.json()["run_id"]
    assert expired.causationid == run_id or (
        run.json()["expired"] == 0 and str(expired.causationid).startswith("clock-run:expiry:")
    )
    assert expired.data["policy_version"] == awarded.data["policy_version"]

    # every event this scenario published carries a causation id
    for topic, prefix in (
        ("collaboration.events", f"organisation:{org}"),
        ("training_certification.events", f"person:{person}"),
        ("assessments.events", f"assessment:{assessment_id}"),
        (LABELS, f"{org}:"),
    ):
        for event in await system.events(topic, prefix, at_least=1):
            assert event.causationid, (topic, event.type)

    # the auditor's history: ids, positions, causes, hashes
    history = await system.get("label_decisions", f"/labels/{org}/bronze/history", "auditor")
    assert history.status_code == 200, history.text
    rows = history.json()["events"]
    assert [r["event_id"] for r in rows] == [awarded.id, expired.id]
    assert [r["position"] for r in rows] == [awarded.globalposition, expired.globalposition]
    assert [r["causation_id"] for r in rows] == [for_decision.id, expired.causationid]
    assert all(len(r["hash"]) == 64 for r in rows)
    assert rows[0]["data"]["approved_by"] == "anna@eucles"


async def test_a_record_of_refusals_only_is_reachable_by_the_auditor(system: System) -> None:
    org = await scenario.organisation(system, "LU", validated_on="2023-02-01")
    national = await scenario.expert(system, "LU", ["gold_assessor"], "2023-01-10")
    foreign = await scenario.expert(system, "FR", ["gold_assessor"], "2023-01-10")
    await scenario.known_to_assessments(system, [org], [national, foreign])
    # a Gold assessment short of the policy's score: refused, a record of refusals only
    await gold(system, org, [national, foreign], "2025-03-12", days=2, score=70.0)

    async def refused() -> list[dict[str, Any]] | None:
        response = await system.get(
            "label_decisions", "/records?refused_only=true&limit=1000", "auditor"
        )
        assert response.status_code == 200, response.text
        found = [r for r in response.json()["items"] if r["org_id"] == org]
        return found or None

    (record,) = await system.until(refused, "the refusal-only record")
    assert record["refusals_only"] is True and record["level"] == "gold"
    history = await system.get("label_decisions", str(record["history"]), "auditor")
    (event,) = history.json()["events"]
    assert event["type"] == "LabelRefused"
    assert event["causation_id"] and event["event_id"] and event["hash"]
    everything = await system.get("label_decisions", "/records?limit=1000", "auditor")
    assert org in {r["org_id"] for r in everything.json()["items"]}
    forbidden = await system.get("label_decisions", "/records", "assessor")
    assert forbidden.status_code == 403
