"""Contract registry: type strings, tolerant readers, upcaster chains."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from clr_events.errors import UnknownEventTypeError
from clr_events.registry import Contract, ContractRegistry, parse_type


def build() -> ContractRegistry:
    registry = ContractRegistry()

    @registry.event("label_decisions.LabelAwarded.v1")
    class AwardedV1(Contract):
        org_id: str
        level: str

    @registry.event("label_decisions.LabelAwarded.v2")
    class AwardedV2(Contract):
        org_id: str
        level: str
        valid_until: str

    @registry.event("label_decisions.LabelAwarded.v3")
    class AwardedV3(Contract):
        organisation_id: str
        level: str
        valid_until: str

    @registry.upcaster("label_decisions.LabelAwarded.v1")
    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "valid_until": "unknown"}

    @registry.upcaster("label_decisions.LabelAwarded.v2")
    def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        data["organisation_id"] = data.pop("org_id")
        return data

    return registry


def test_a_type_string_names_context_event_and_major() -> None:
    assert parse_type("label_decisions.LabelAwarded.v12") == ("label_decisions.LabelAwarded", 12)
    for bad in ("LabelAwarded", "label_decisions.LabelAwarded", "a.B.v0", "Label.Awarded.v1"):
        with pytest.raises(UnknownEventTypeError):
            parse_type(bad)


def test_an_old_event_is_upcast_step_by_step_to_the_newest_major() -> None:
    decoded = build().decode("label_decisions.LabelAwarded.v1", {"org_id": "o1", "level": "bronze"})
    assert decoded.model_dump() == {
        "organisation_id": "o1",
        "level": "bronze",
        "valid_until": "unknown",
    }


def test_readers_ignore_fields_they_do_not_know() -> None:
    decoded = build().decode(
        "label_decisions.LabelAwarded.v3",
        {"organisation_id": "o1", "level": "gold", "valid_until": "2027-01-31", "added_later": 1},
    )
    assert not hasattr(decoded, "added_later")


def test_unknown_types_and_invalid_data_are_refused() -> None:
    registry = build()
    with pytest.raises(UnknownEventTypeError):
        registry.decode("label_decisions.LabelWithdrawn.v1", {})
    with pytest.raises(UnknownEventTypeError):
        registry.decode("label_decisions.LabelAwarded.v4", {})
    with pytest.raises(ValidationError):
        registry.decode("label_decisions.LabelAwarded.v3", {"level": "gold"})


def test_a_type_is_registered_once_and_known_by_its_class() -> None:
    registry = build()
    models = registry.models()
    assert (
        registry.type_of(models["label_decisions.LabelAwarded.v2"])
        == "label_decisions.LabelAwarded.v2"
    )
    with pytest.raises(ValueError):
        registry.event("label_decisions.LabelAwarded.v1")(type("Again", (Contract,), {}))
