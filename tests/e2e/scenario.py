"""Building blocks of end-to-end scenarios, all through the services' HTTP APIs."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.conftest import System

ADMIN = "collaboration_admin"
TRAINING = "training_admin"


def fresh(prefix: str) -> str:
    """An identifier no earlier run used."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def figures(**overrides: Any) -> dict[str, Any]:
    """Profile figures that meet R13, with overrides."""
    return {
        "management_fte": 2.5,
        "committed_members": 60,
        "member_types": ["sme", "large_company", "research"],
        "english_website": True,
        **overrides,
    }


async def organisation(
    system: System,
    country: str = "DE",
    validated_on: str | None = "2019-01-10",
    org_id: str | None = None,
) -> str:
    """A registered organisation, validated on a day (R13) unless None."""
    org_id = org_id or fresh("org")
    body = {
        "org_id": org_id,
        "name": f"Cluster {org_id}",
        "country": country,
        "sector": "Advanced manufacturing",
        "website": f"https://{org_id}.example.eu",
        "figures": figures(),
    }
    response = await system.post("collaboration", "/organisations", body, ADMIN)
    assert response.status_code == 201, response.text
    if validated_on is not None:
        response = await system.post(
            "collaboration",
            f"/organisations/{org_id}/validation",
            {"validated_on": validated_on},
            ADMIN,
        )
        assert response.status_code == 201, response.text
    return org_id


async def expert(
    system: System,
    country: str,
    roles: list[str],
    certified_on: str,
    affiliations: list[str] | None = None,
    person_id: str | None = None,
    name: str | None = None,
) -> str:
    """A person trained on the benchmarking tool and certified for ``roles``."""
    person_id = person_id or fresh("expert")
    course_id = fresh("course")
    steps: list[tuple[str, dict[str, Any]]] = [
        (
            "/courses",
            {
                "course_id": course_id,
                "title": "ECEI Cluster Benchmarking Expert training",
                "kind": "benchmarking_tool_training",
                "starts_on": "2015-01-01",
            },
        ),
        (
            "/people",
            {
                "person_id": person_id,
                "name": name or f"Expert {person_id}",
                "country": country,
                "affiliation_org_ids": affiliations or [],
            },
        ),
        (f"/people/{person_id}/enrolments", {"course_id": course_id, "on": "2015-01-05"}),
        (f"/people/{person_id}/completions", {"course_id": course_id, "on": "2015-03-05"}),
    ]
    steps += [
        (f"/people/{person_id}/certifications", {"role": r, "on": certified_on}) for r in roles
    ]
    for path, body in steps:
        response = await system.post("training_certification", path, body, TRAINING)
        assert response.status_code == 201, f"{path}: {response.text}"
    return person_id


async def known_to_assessments(system: System, org_ids: list[str], expert_ids: list[str]) -> None:
    """Wait until the assessments service has learned them from Kafka."""

    async def check() -> bool:
        for org_id in org_ids:
            response = await system.get("assessments", f"/reference/organisations/{org_id}")
            if response.status_code != 200 or not response.json()["validated_on"]:
                return False
        for person_id in expert_ids:
            response = await system.get("assessments", f"/reference/experts/{person_id}")
            if response.status_code != 200 or not response.json()["certifications"]:
                return False
        return True

    await system.until(check, "the assessments service to learn organisations and experts")


async def bronze(system: System, org_id: str, expert_id: str, on: str, approve_on: str) -> str:
    """A recorded and approved Bronze benchmarking; its id."""
    body = {
        "org_id": org_id,
        "expert_id": expert_id,
        "conducted_on": on,
        "mode": "on_site",
        "ratings": ["green"] * 20 + ["yellow"] * 12 + ["red"] * 4,
    }
    response = await system.post("assessments", "/assessments/bronze", body, "assessor")
    assert response.status_code == 201, response.text
    assessment_id: str = response.json()["assessment_id"]
    response = await system.post(
        "assessments",
        f"/assessments/{assessment_id}/approval",
        {"approved_on": approve_on, "approver": "ESCA"},
        "labelling_board",
    )
    assert response.status_code == 201, response.text
    return assessment_id


async def bronze_label(
    system: System, country: str, expert_country: str, on: str, approve_on: str
) -> tuple[str, str]:
    """A validated organisation with an approved Bronze benchmarking; (org, expert)."""
    org = await organisation(system, country, validated_on="2024-01-10")
    person = await expert(system, expert_country, ["benchmarking_expert"], "2024-01-02")
    await known_to_assessments(system, [org], [person])
    await bronze(system, org, person, on, approve_on)
    return org, person


async def listed(system: System, org_id: str) -> None:
    """Wait until the public label list shows the organisation (one valid label)."""

    async def check() -> bool:
        response = await system.get("projections", f"/api/labels?q={org_id}")
        return bool(response.json()["total"] == 1)

    await system.until(check, f"{org_id} in the public label list")
