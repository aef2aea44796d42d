"""The HTTP edge of the running services: tokens and roles, problem details, idempotency."""

from __future__ import annotations

from tests.e2e import scenario
from tests.e2e.conftest import System

PROBLEM = "application/problem+json"


async def test_commands_need_a_valid_token_with_the_right_role(system: System) -> None:
    body = {"name": "X", "country": "DE", "sector": "s", "figures": scenario.figures()}
    url = system.urls["collaboration"] + "/organisations"

    missing = await system.client.post(url, json=body)
    forged = await system.client.post(url, json=body, headers={"Authorization": "Bearer x.y.z"})
    wrong_role = await system.post("collaboration", "/organisations", body, "assessor")

    assert (missing.status_code, forged.status_code, wrong_role.status_code) == (401, 401, 403)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert all(r.headers["content-type"] == PROBLEM for r in (missing, forged, wrong_role))
    assert "collaboration_admin" in wrong_role.json()["detail"]


async def test_reads_of_public_data_need_no_token_and_unknown_ids_are_404(system: System) -> None:
    org = await scenario.organisation(system, "PL")
    public = await system.get("collaboration", f"/organisations/{org}")
    missing = await system.get("collaboration", "/organisations/no-such-org")
    assert public.status_code == 200 and public.json()["country"] == "PL"
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


async def test_a_refused_command_names_each_rule_and_changes_nothing(system: System) -> None:
    body = {
        "org_id": scenario.fresh("org"),
        "name": "Small cluster",
        "country": "SE",
        "sector": "Food",
        "figures": scenario.figures(management_fte=0.3, committed_members=12),
    }
    created = await system.post("collaboration", "/organisations", body, "collaboration_admin")
    assert created.status_code == 201
    path = f"/organisations/{body['org_id']}/validation"

    refused = await system.post(
        "collaboration", path, {"validated_on": "2024-02-01"}, "collaboration_admin"
    )

    assert refused.status_code == 422
    assert [v["rule"] for v in refused.json()["violations"]] == ["R13", "R13"]
    after = await system.get("collaboration", f"/organisations/{body['org_id']}")
    assert after.json()["validated_on"] is None


async def test_a_retried_command_with_an_idempotency_key_writes_once(system: System) -> None:
    body = {"name": "Retry", "country": "NL", "sector": "Water", "figures": scenario.figures()}
    headers = {**system.auth("collaboration_admin"), "Idempotency-Key": scenario.fresh("key")}
    url = system.urls["collaboration"] + "/organisations"

    first = await system.client.post(url, json=body, headers=headers)
    again = await system.client.post(url, json=body, headers=headers)
    other = await system.client.post(url, json={**body, "name": "Other"}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422 and other.headers["content-type"] == PROBLEM
    listed = await system.get("collaboration", "/organisations?country=NL&limit=1000")
    assert [o["name"] for o in listed.json()["items"]].count("Retry") >= 1
    mine = [o for o in listed.json()["items"] if o["org_id"] == first.json()["org_id"]]
    assert len(mine) == 1


async def test_invalid_bodies_are_422_problems_with_pointers(system: System) -> None:
    bad = await system.post("assessments", "/assessments/bronze", {"org_id": "x"}, "assessor")
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert bad.json()["errors"]


async def test_r11_assessment_results_are_for_the_board_and_the_auditor_only(
    system: System,
) -> None:
    org = await scenario.organisation(system, "CZ", validated_on="2023-01-10")
    person = await scenario.expert(system, "SK", ["benchmarking_expert"], "2023-02-01")
    await scenario.known_to_assessments(system, [org], [person])
    assessment_id = await scenario.bronze(system, org, person, "2024-06-05", "2024-07-01")

    public = await system.get("assessments", f"/assessments/{assessment_id}")
    hidden = await system.get("assessments", f"/assessments/{assessment_id}/results")
    audited = await system.get("assessments", f"/assessments/{assessment_id}/results", "auditor")

    assert "ratings" not in public.json() and public.json()["approved_on"] == "2024-07-01"
    assert hidden.status_code == 401
    assert audited.json()["events"][0]["ratings"][0] == "green"
    published = await system.events("assessments.events", f"assessment:{assessment_id}", at_least=2)
    assert [e.type for e in published] == [
        "assessments.AssessmentRecorded.v1",
        "assessments.AssessmentApproved.v1",
    ]
    assert not {"ratings", "score_pct", "indicator_count"} & {
        key for e in published for key in e.data
    }
