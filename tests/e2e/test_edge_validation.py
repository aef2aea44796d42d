"""Bad input at the edge of the write services: a 4xx problem, never a 201 or a 500.

Each case is one an outside tester sent to a running registry: text PostgreSQL cannot
store, numbers beyond 64 bits or not finite, days past year 9999's arithmetic, bodies
and events too large for the services or for Kafka, and facts dated in the future.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import orjson

from clr_events.service.inputs import today_utc
from tests.e2e import scenario
from tests.e2e.conftest import System

PROBLEM = "application/problem+json"
ADMIN = scenario.ADMIN


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem body of a response that must be one, with ``status``."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def pointers(body: dict[str, Any]) -> list[str]:
    return [error["pointer"] for error in body["errors"]]


async def raw_post(
    system: System, service: str, path: str, raw: bytes, method: str = "POST"
) -> httpx.Response:
    """A command whose body is sent as it is (JSON with what ``json=`` cannot write)."""
    headers = {**system.auth(ADMIN, "training_admin"), "Content-Type": "application/json"}
    url = system.urls[service] + path
    return await system.client.request(method, url, content=raw, headers=headers)


def organisation(**overrides: Any) -> dict[str, Any]:
    return {
        "org_id": scenario.fresh("org"),
        "name": "Edge cluster",
        "country": "DE",
        "sector": "Advanced manufacturing",
        "figures": scenario.figures(),
        **overrides,
    }


def agreement(**overrides: Any) -> dict[str, Any]:
    return {
        "agreement_id": scenario.fresh("agreement"),
        "parties": ["demo-org-0001", "Tokyo cluster association"],
        "third_country": "JP",
        "signed_on": "2021-05-04",
        **overrides,
    }


async def test_text_with_a_nul_or_another_control_character_is_refused(system: System) -> None:
    body = agreement(parties=["demo-org-0001", "Tokyo\u0000cluster association"])
    refused = await system.post("collaboration", "/agreements", body, ADMIN)
    assert pointers(problem(refused, 422)) == ["/parties/1"]
    assert "U+0000" in refused.json()["detail"]
    missing = await system.get("collaboration", f"/agreements/{body['agreement_id']}")
    assert missing.status_code == 404

    named = organisation(name="Edge\u0000cluster")
    refused = await system.post("collaboration", "/organisations", named, ADMIN)
    assert pointers(problem(refused, 422)) == ["/name"]
    escaped = organisation(region="Bavaria\u001b[31m", sector="Food\u0085")
    refused = await system.post("collaboration", "/organisations", escaped, ADMIN)
    assert sorted(pointers(problem(refused, 422))) == ["/region", "/sector"]
    refused = await system.post(
        "collaboration", "/organisations", organisation(website="javascript:alert(1)"), ADMIN
    )
    assert pointers(problem(refused, 422)) == ["/website"]


async def test_integers_beyond_64_bits_are_422_in_bodies_and_query_parameters(
    system: System,
) -> None:
    body = organisation(figures=scenario.figures(committed_members=10**30))
    refused = await raw_post(system, "collaboration", "/organisations", json.dumps(body).encode())
    assert pointers(problem(refused, 422)) == ["/figures/committed_members"]
    as_float = orjson.dumps(organisation()).replace(
        b'"committed_members":60', b'"committed_members":1e30'
    )
    assert b"1e30" in as_float
    refused = await raw_post(system, "collaboration", "/organisations", as_float)
    assert pointers(problem(refused, 422)) == ["/figures/committed_members"]

    huge = "99999999999999999999"
    checks = [
        ("label_decisions", f"/verification?first={huge}", ("auditor",)),
        ("label_decisions", f"/verification?last={huge}", ("auditor",)),
        ("collaboration", f"/organisations?offset={huge}", ()),
        ("training_certification", f"/experts?offset={huge}", ()),
    ]
    for service, path, roles in checks:
        problem(await system.get(service, path, *roles), 422)


async def test_a_figure_that_is_not_finite_is_refused_and_the_profile_stays_readable(
    system: System,
) -> None:
    org_id = await scenario.organisation(system, "FR")
    for token in (b"Infinity", b"1e999", b"NaN", b"-Infinity"):
        raw = orjson.dumps(scenario.figures()).replace(
            b'"management_fte":2.5', b'"management_fte":' + token
        )
        assert token in raw
        path = f"/organisations/{org_id}/figures"
        refused = await raw_post(system, "collaboration", path, raw, "PUT")
        assert pointers(problem(refused, 422)) == ["/management_fte"]
        new = organisation()
        raw = orjson.dumps(new).replace(b'"management_fte":2.5', b'"management_fte":' + token)
        refused = await raw_post(system, "collaboration", "/organisations", raw)
        assert pointers(problem(refused, 422)) == ["/figures/management_fte"]
        gone = await system.get("collaboration", f"/organisations/{new['org_id']}")
        assert gone.status_code == 404

    profile = await system.get("collaboration", f"/organisations/{org_id}")
    assert profile.status_code == 200
    assert profile.json()["figures"]["management_fte"] == 2.5
    too_many = scenario.figures(management_fte=10_001)
    refused = await system.client.put(
        system.urls["collaboration"] + f"/organisations/{org_id}/figures",
        json=too_many,
        headers=system.auth(ADMIN),
    )
    assert pointers(problem(refused, 422)) == ["/management_fte"]


async def test_days_outside_1990_to_2100_are_refused(system: System) -> None:
    person = await scenario.expert(system, "BE", ["benchmarking_expert"], "2023-02-01")
    refused = await system.post(
        "training_certification",
        f"/people/{person}/certifications/renewals",
        {"role": "benchmarking_expert", "on": "9999-12-31"},
        "training_admin",
    )
    assert pointers(problem(refused, 422)) == ["/on"]
    course = {
        "title": "Old course",
        "kind": "benchmarking_tool_training",
        "starts_on": "0001-01-01",
    }
    refused = await system.post("training_certification", "/courses", course, "training_admin")
    assert "1990-01-01" in problem(refused, 422)["detail"]
    correction = {"valid_until": "9999-12-31", "reason": "far"}
    refused = await system.post(
        "label_decisions", "/labels/no-org/bronze/corrections", correction, "labelling_board"
    )
    assert pointers(problem(refused, 422)) == ["/valid_until"]
    problem(await system.get("label_decisions", "/labels/no-org?on=9999-12-31"), 422)
    problem(await system.get("training_certification", "/experts?on=9999-12-31"), 422)


async def test_facts_dated_after_today_are_refused(system: System) -> None:
    tomorrow = (today_utc() + timedelta(days=1)).isoformat()
    org_id = await scenario.organisation(system, "IT", validated_on=None)
    person = await scenario.expert(system, "ES", ["benchmarking_expert"], "2023-02-01")

    refused = await system.post(
        "collaboration", f"/organisations/{org_id}/validation", {"validated_on": tomorrow}, ADMIN
    )
    assert "only facts that have happened" in problem(refused, 422)["detail"]
    refused = await system.post(
        "collaboration",
        f"/organisations/{org_id}/validation",
        {"validated_on": "9999-12-31"},
        ADMIN,
    )
    assert pointers(problem(refused, 422)) == ["/validated_on"]
    profile = await system.get("collaboration", f"/organisations/{org_id}")
    assert profile.json()["validated_on"] is None

    refused = await system.post(
        "collaboration", "/agreements", agreement(signed_on="2058-01-01"), ADMIN
    )
    assert pointers(problem(refused, 422)) == ["/signed_on"]
    bronze = {
        "org_id": org_id,
        "expert_id": person,
        "conducted_on": "2027-03-31",
        "mode": "on_site",
        "ratings": ["green"] * 36,
    }
    refused = await system.post("assessments", "/assessments/bronze", bronze, "assessor")
    assert pointers(problem(refused, 422)) == ["/conducted_on"]
    refused = await system.post(
        "assessments",
        "/assessments/any-assessment/approval",
        {"approved_on": "2027-04-01"},
        "labelling_board",
    )
    assert pointers(problem(refused, 422)) == ["/approved_on"]
    refused = await system.post(
        "training_certification",
        f"/people/{person}/certifications",
        {"role": "silver_auditor", "on": tomorrow},
        "training_admin",
    )
    assert pointers(problem(refused, 422)) == ["/on"]
    withdrawal = {"reason": "not yet", "withdrawn_on": tomorrow}
    refused = await system.post(
        "label_decisions", f"/labels/{org_id}/bronze/withdrawal", withdrawal, "labelling_board"
    )
    assert pointers(problem(refused, 422)) == ["/withdrawn_on"]
    refused = await system.post(
        "label_decisions", "/expiry-runs", {"today": tomorrow}, "labelling_board"
    )
    assert pointers(problem(refused, 422)) == ["/today"]


async def test_long_names_and_long_lists_are_refused(system: System) -> None:
    refused = await system.post(
        "collaboration", "/organisations", organisation(name="x" * 100_000), ADMIN
    )
    body = problem(refused, 422)
    assert pointers(body) == ["/name"] and "300" in body["detail"]
    assert len(refused.content) < 2000
    many = agreement(parties=[f"party {n}" for n in range(1001)])
    refused = await system.post("collaboration", "/agreements", many, ADMIN)
    assert pointers(problem(refused, 422)) == ["/parties"]


async def test_a_body_over_one_mebibyte_is_413_before_it_is_parsed(system: System) -> None:
    url = system.urls["collaboration"] + "/organisations"
    headers = {**system.auth(ADMIN), "Content-Type": "application/json"}
    five_mb = orjson.dumps(organisation(name="x" * (5 * 1024 * 1024)))

    declared = await system.client.post(url, content=five_mb, headers=headers)
    body = problem(declared, 413)
    assert body["max_bytes"] == 1024 * 1024 and "1048576 bytes" in body["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(five_mb), 64 * 1024):
            yield five_mb[start : start + 64 * 1024]

    streamed = await system.client.post(url, content=chunks(), headers=headers)
    assert "content-length" not in streamed.request.headers
    problem(streamed, 413)

    still = await system.post("collaboration", "/organisations", organisation(), ADMIN)
    assert still.status_code == 201


async def test_an_event_too_large_for_its_topic_is_refused_before_it_is_stored(
    system: System,
) -> None:
    parties = [f"{n:04} " + "p" * 295 for n in range(1000)]
    body = agreement(parties=parties)
    assert len(orjson.dumps(body)) < 1024 * 1024

    refused = await system.post("collaboration", "/agreements", body, ADMIN)

    problem_body = problem(refused, 413)
    assert problem_body["max_bytes"] == 256 * 1024
    assert "CooperationAgreementSigned" in problem_body["detail"]
    missing = await system.get("collaboration", f"/agreements/{body['agreement_id']}")
    assert missing.status_code == 404
    smaller = agreement(parties=parties[:100])
    assert (await system.post("collaboration", "/agreements", smaller, ADMIN)).status_code == 201


async def test_an_overlong_or_non_ascii_correlation_id_or_idempotency_key_is_400(
    system: System,
) -> None:
    url = system.urls["collaboration"] + "/organisations"
    auth = [(k.encode(), v.encode()) for k, v in system.auth(ADMIN).items()]
    bad = [
        (b"X-Correlation-ID", b"c" * 201),
        (b"X-Correlation-ID", "caf\u00e9".encode()),
        (b"Idempotency-Key", b"k" * 201),
        (b"Idempotency-Key", "caf\u00e9".encode()),
    ]
    for header in bad:
        body = organisation()
        refused = await system.client.post(url, json=body, headers=[*auth, header])
        assert "printable ASCII" in problem(refused, 400)["detail"]
        gone = await system.get("collaboration", f"/organisations/{body['org_id']}")
        assert gone.status_code == 404
    fine = {"X-Correlation-ID": "c" * 200, "Idempotency-Key": scenario.fresh("key")}
    created = await system.client.post(
        url, json=organisation(), headers={**system.auth(ADMIN), **fine}
    )
    assert created.status_code == 201
