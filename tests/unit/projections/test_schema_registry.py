"""The schemas served: each public contract's JSON Schema at its ``dataschema`` path and
the Confluent Schema Registry's read API, shapes and error codes; the snapshot records'
headers decode as a CloudEvent."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson
import pytest
from cloudevents.v1.kafka import KafkaMessage, from_binary
from fastapi import FastAPI
from fastapi.testclient import TestClient

from clr_events import contracts
from clr_events.envelope import schema_url
from clr_events.registry import registry
from clr_events.schemas import ROOT, schema_path
from clr_events.service import problems
from projections import schema_registry
from projections.current import snapshot_headers

pytestmark = pytest.mark.unit

BASE = "http://registry.example.eu/schemas"
AWARDED = "label_decisions.LabelAwarded.v1"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(schema_registry.router)
    return TestClient(app)


def test_every_public_dataschema_url_serves_its_committed_schema(client: TestClient) -> None:
    public = [t for t in registry.models() if t not in contracts.RESTRICTED]
    for type_ in public:
        path = schema_url(type_, BASE).removeprefix(BASE)
        response = client.get(f"/schemas{path}")
        assert response.status_code == 200, type_
        assert response.headers["content-type"] == "application/schema+json"
        assert response.content == (ROOT / schema_path(type_)).read_bytes()
    restricted = schema_url("assessments.ApprovedForDecision.v1", BASE).removeprefix(BASE)
    assert client.get(f"/schemas{restricted}").status_code == 404
    assert client.get("/schemas/asyncapi.json").json()["asyncapi"] == "3.0.0"


def test_subjects_versions_and_ids_answer_as_the_registry_does(client: TestClient) -> None:
    subjects = client.get("/schema-registry/subjects").json()
    assert AWARDED in subjects and "assessments.ApprovedForDecision.v1" not in subjects
    assert client.get("/schema-registry/subjects?subjectPrefix=label_decisions.").json() == [
        s for s in subjects if s.startswith("label_decisions.")
    ]
    assert client.get(f"/schema-registry/subjects/{AWARDED}/versions").json() == [1]
    latest = client.get(f"/schema-registry/subjects/{AWARDED}/versions/latest")
    assert latest.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    body = latest.json()
    assert set(body) == {"subject", "version", "id", "schemaType", "schema"}
    assert (body["subject"], body["version"], body["schemaType"]) == (AWARDED, 1, "JSON")
    assert orjson.loads(body["schema"])["$id"].endswith(AWARDED)
    assert client.get(f"/schema-registry/subjects/{AWARDED}/versions/1").json() == body
    assert client.get(f"/schema-registry/subjects/{AWARDED}/versions/-1").json() == body
    raw = client.get(f"/schema-registry/subjects/{AWARDED}/versions/1/schema")
    assert raw.text == body["schema"]
    by_id = client.get(f"/schema-registry/schemas/ids/{body['id']}").json()
    assert by_id == {"schemaType": "JSON", "schema": body["schema"]}
    assert client.get(f"/schema-registry/schemas/ids/{body['id']}/subjects").json() == [AWARDED]
    assert client.get(f"/schema-registry/schemas/ids/{body['id']}/versions").json() == [
        {"subject": AWARDED, "version": 1}
    ]
    assert client.get("/schema-registry/schemas/types").json() == ["JSON"]
    assert client.get("/schema-registry/config").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    ids = {client.get(f"/schema-registry/subjects/{s}/versions/1").json()["id"] for s in subjects}
    assert len(ids) == len(subjects)  # one id per schema


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/subjects/nothing.Here.v1/versions", 404, 40401),
        ("/subjects/assessments.ApprovedForDecision.v1/versions/1", 404, 40401),
        (f"/subjects/{AWARDED}/versions/2", 404, 40402),
        (f"/subjects/{AWARDED}/versions/0", 422, 42202),
        (f"/subjects/{AWARDED}/versions/first", 422, 42202),
        ("/schemas/ids/1", 404, 40403),
        ("/config/nothing.Here.v1", 404, 40401),
    ],
)
def test_errors_carry_the_registry_codes_in_problem_details(
    client: TestClient, path: str, status: int, code: int
) -> None:
    response = client.get(f"/schema-registry{path}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["error_code"] == code and problem["message"] and problem["status"] == status


def test_a_schema_id_is_its_content_hash_and_stable() -> None:
    first = schema_registry.schema_id(b'{"type": "object"}')
    assert first == schema_registry.schema_id(b'{"type": "object"}')
    assert first != schema_registry.schema_id(b'{"type": "string"}')
    assert 0 < first < 2**31


def test_a_snapshot_record_is_a_binary_mode_cloudevent() -> None:
    value = {"org_id": "org-1", "labels": [], "position": 42, "as_of": str(date(2026, 12, 1))}
    headers = snapshot_headers(value, 40, BASE)
    event = from_binary(KafkaMessage(dict(headers), b"org-1", orjson.dumps(value)))
    assert event["type"] == "label_decisions.CurrentLabels.v1"
    assert event["subject"] == "org-1" and event["source"] == "/projections"
    assert event["id"] == "current:org-1:42:2026-12-01"
    assert event["feedposition"] == "40"
    assert event["dataschema"] == f"{BASE}/label_decisions/CurrentLabels.v1.json"
    assert event["time"] <= datetime.now(UTC).isoformat()
    assert event.get_data() == value
