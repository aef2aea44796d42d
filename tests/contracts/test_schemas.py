"""schemas/: generated from the contracts, compatible within a major, examples that decode."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from clr_events import schemas
from clr_events.registry import registry


def test_the_committed_schemas_are_what_the_contracts_generate() -> None:
    assert schemas.check() == []


def test_a_contract_change_not_regenerated_is_reported_as_drift(tmp_path: Path) -> None:
    # given schemas/ written from the contracts, then one file edited by hand
    schemas.write(tmp_path)
    target = tmp_path / "jsonschema/label_decisions/LabelAwarded.v1.json"
    target.write_bytes(target.read_bytes().replace(b'"valid_until"', b'"valid_to"'))

    # then the check names it
    assert schemas.check(tmp_path) == [
        "jsonschema/label_decisions/LabelAwarded.v1.json: differs from the contracts"
        " (run `make schemas`)"
    ]


def test_every_golden_example_validates_against_its_schema_and_decodes() -> None:
    for folder in sorted((schemas.ROOT / "examples").iterdir()):
        schema = orjson.loads((schemas.ROOT / schemas.schema_path(folder.name)).read_bytes())
        for path in folder.glob("*.json"):
            payload = orjson.loads(path.read_bytes())
            jsonschema.validate(payload, schema)
            assert registry.decode(folder.name, payload) is not None


def _awarded() -> dict[str, Any]:
    model = registry.models()["label_decisions.LabelAwarded.v1"]
    return schemas.json_schema("label_decisions.LabelAwarded.v1", model)


def test_an_added_optional_field_is_compatible() -> None:
    old, new = _awarded(), _awarded()
    new["properties"]["note"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert schemas.incompatibilities(old, new) == []


def test_removing_a_required_field_is_refused() -> None:
    old, new = _awarded(), _awarded()
    del new["properties"]["valid_until"]
    new["required"].remove("valid_until")
    assert schemas.incompatibilities(old, new) == ["payload: required field 'valid_until' removed"]


def test_a_new_required_field_is_refused() -> None:
    old, new = _awarded(), _awarded()
    new["properties"]["reason"] = {"type": "string"}
    new["required"].append("reason")
    assert schemas.incompatibilities(old, new) == ["payload: new field 'reason' is required"]


def test_changing_a_fields_type_or_its_requiredness_is_refused() -> None:
    old = _awarded()
    retyped = copy.deepcopy(old)
    retyped["properties"]["valid_until"] = {"type": "string"}
    relaxed = copy.deepcopy(old)
    relaxed["required"].remove("level")
    assert schemas.incompatibilities(old, retyped) == ["payload: type of 'valid_until' changed"]
    assert schemas.incompatibilities(old, relaxed) == ["payload: field 'level' no longer required"]


def test_the_asyncapi_document_names_every_public_topic_and_message() -> None:
    document = orjson.loads((schemas.ROOT / "asyncapi.json").read_bytes())
    addresses = {c["address"] for c in document["channels"].values()}
    assert {"label_decisions.events", "label_decisions.current", "collaboration.events"} <= (
        addresses
    )
    messages = document["components"]["messages"]
    assert {m["name"] for m in messages.values()} == set(registry.models())
    assert (
        "ce_globalposition" in messages["label_decisions_LabelAwarded_v1"]["headers"]["properties"]
    )


def test_the_asyncapi_document_says_what_a_subscriber_checks() -> None:
    document = orjson.loads((schemas.ROOT / "asyncapi.json").read_bytes())
    channels = {c["address"]: c for c in document["channels"].values()}
    restricted = channels["assessments.decisions"]
    assert restricted["x-access"] == "restricted" and restricted["tags"] == [{"name": "restricted"}]
    assert restricted["x-key"] == "<org_id>"  # the relay keys it by organisation
    assert all(
        c["x-access"] == "public" for a, c in channels.items() if a != "assessments.decisions"
    )
    messages = document["components"]["messages"]
    event = messages["label_decisions_LabelAwarded_v1"]["headers"]["properties"]
    assert "no gaps" in event["ce_publicversion"]["description"]
    assert "HAS GAPS" in event["ce_streamversion"]["description"]
    assert "as a string" in event["ce_globalposition"]["description"]
    snapshot = messages["label_decisions_CurrentLabels_v1"]["headers"]
    assert {"ce_id", "ce_type", "ce_subject", "ce_feedposition"} <= set(snapshot["required"])
