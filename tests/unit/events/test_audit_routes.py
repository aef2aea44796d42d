"""Every write service answers the auditor the same way: ``GET /policy`` (and
``/policy/{version}``) for each kind of its versioned rules, each document with the
fingerprint its version is pinned by, and ``GET /verification`` of its store for the
auditor (label decisions' for the labelling board too). Checked on each service's own app,
without its background (no database: the policy routes need none; the verification
route is refused before it needs one)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessments.domain.policy import POLICIES as ASSESSMENT_RULES
from clr_events.application.aggregate import Policies
from clr_events.application.fingerprint import canonical, fingerprint
from clr_events.service.auth import AuthSettings, mint
from collaboration.domain.policy import LISTING_CRITERIA, PARTNERSHIP_RULES
from label_decisions.domain.policy import POLICIES as DECISION_POLICIES
from training_certification.domain.policy import POLICIES as CERTIFICATION_POLICIES

POLICY_ROUTES: list[tuple[str, str, Policies[Any]]] = [
    ("assessments", "/policy", ASSESSMENT_RULES),
    ("collaboration", "/policy/listing-criteria", LISTING_CRITERIA),
    ("collaboration", "/policy/partnership-rules", PARTNERSHIP_RULES),
    ("label_decisions", "/policy", DECISION_POLICIES),
    ("training_certification", "/policy", CERTIFICATION_POLICIES),
]
SERVICES = sorted({service for service, _, _ in POLICY_ROUTES})


def client(service: str) -> TestClient:
    """The service's app, its background never started (no lifespan)."""
    app = importlib.import_module(f"{service}.service").build()
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("service", "path", "registry"), POLICY_ROUTES)
def test_every_kind_of_rules_is_served_as_evidence_in_force_and_by_version(
    service: str, path: str, registry: Policies[Any]
) -> None:
    http = client(service)
    in_force = http.get(path)
    assert in_force.status_code == 200
    chosen = registry.choose()
    assert in_force.json() == {
        **canonical(chosen),
        "fingerprint": fingerprint(chosen),
        "versions": list(registry),
    }
    for version, policy in registry.items():
        answer = http.get(f"{path}/{version}")
        assert answer.status_code == 200
        assert answer.json() == {**canonical(policy), "fingerprint": fingerprint(policy)}
    unknown = http.get(f"{path}/1999.9")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert "1999.9" in unknown.json()["detail"]


def bearer(*roles: str) -> dict[str, str]:
    return {"authorization": f"Bearer {mint('someone', list(roles), AuthSettings())}"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_store_can_be_verified_by_the_auditor_and_by_nobody_else(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLR_JWT_SECRET", "a-secret-for-this-test-only-32-bytes")
    http = client(service)
    anonymous = http.get("/verification")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert http.get("/verification", headers=bearer("assessor")).status_code == 403
    board = http.get("/verification", headers=bearer("labelling_board")).status_code
    # past the role check the route needs the store, which no test here started
    assert (board != 403) is (service == "label_decisions")
    assert http.get("/verification", headers=bearer("auditor")).status_code not in (401, 403)


def test_the_deprecated_criteria_route_answers_as_the_policy_route() -> None:
    http = client("assessments")
    assert http.get("/criteria").json() == {
        k: v for k, v in http.get("/policy").json().items() if k != "versions"
    }
