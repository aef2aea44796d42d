"""Every aggregate has the one shape (stream, version, apply, replay), every stream id comes
from its aggregate's function, every service chooses its rules by version the same way,
and every stored event is immutable (the stream cache shares them between loads)."""

from __future__ import annotations

from datetime import date
from typing import Any, Never, get_args, get_origin

import pytest
from pydantic import BaseModel

from assessments.domain import model as assessments
from assessments.domain.events import AssessmentEvent, BenchmarkingInterviewConducted
from assessments.domain.policy import POLICIES as ASSESSMENT_RULES
from clr_events.application.aggregate import Aggregate, Policies
from collaboration.domain import model as collaboration
from collaboration.domain.events import CollaborationEvent, ProfileFigures
from collaboration.domain.policy import LISTING_CRITERIA, PARTNERSHIP_RULES
from label_decisions.domain.events import LabelEvent
from label_decisions.domain.label_record import LabelRecord
from label_decisions.domain.policy import POLICIES as DECISION_POLICIES
from label_decisions.domain.policy import Level
from training_certification.domain import model as training
from training_certification.domain.events import TrainingEvent
from training_certification.domain.policy import POLICIES as CERTIFICATION_POLICIES


def test_every_aggregate_knows_its_stream_and_version_and_folds_events() -> None:
    figures = ProfileFigures(
        management_fte=1.0, committed_members=30, member_types=["sme"], english_website=True
    )
    registered = collaboration.register_organisation(
        org_id="o-1",
        name="One",
        country="DE",
        region=None,
        website=None,
        sector="Energy",
        eccp_profile_id=None,
        figures=figures,
    )
    person = training.register_person(
        person_id="p-1", name="Ann", country="DE", affiliation_org_ids=[]
    )
    conducted = BenchmarkingInterviewConducted.model_validate(
        {
            "assessment_id": "a-1",
            "org_id": "o-1",
            "kind": "bronze_benchmarking",
            "level": "bronze",
            "conducted_on": date(2024, 3, 5),
            "mode": "video",
            "expert_ids": ["e-1"],
            "criteria_version": "bronze-2019",
            "rules_version": "2026.1",
            "ratings": ["green"] * 36,
        }
    )
    # typed one by one: mypy checks each against the protocol with its own events
    organisation: Aggregate[CollaborationEvent] = collaboration.Organisation.replay(registered)
    someone: Aggregate[TrainingEvent] = training.Person.replay(person)
    assessment: Aggregate[AssessmentEvent] = assessments.Assessment.replay([conducted])
    record: Aggregate[LabelEvent] = LabelRecord.replay("o-1", Level.BRONZE, [])
    shapes: list[tuple[Aggregate[Never], str, int]] = [
        (organisation, "organisation:o-1", 1),
        (someone, "person:p-1", 1),
        (assessment, "assessment:a-1", 1),
        (record, "o-1:bronze", 0),
    ]
    for aggregate, stream, version in shapes:
        assert (aggregate.stream, aggregate.version) == (stream, version)
    org = collaboration.Organisation.replay(registered)
    for event in collaboration.update_figures(
        org, figures.model_copy(update={"english_website": False})
    ):
        org.apply(event)
    assert org.version == 2 and not org.figures.english_website


@pytest.mark.parametrize(
    ("policies", "version"),
    [
        (DECISION_POLICIES, "2026.2"),
        (ASSESSMENT_RULES, "2026.1"),
        (CERTIFICATION_POLICIES, "2026.1"),
        (LISTING_CRITERIA, "eccp-2019"),
        (PARTNERSHIP_RULES, "escp-2020"),
    ],
)
def test_every_service_chooses_its_rules_by_version(
    policies: Policies[object], version: str
) -> None:
    assert policies.default == version
    assert policies.choose() is policies.choose(version) is policies[version]
    with pytest.raises(ValueError, match=f"unknown .*'nope'; known: .*{version}"):
        policies.choose("nope")


MUTABLE = (list, dict, set)
SHARED_AS_READ_ONLY = {("label_decisions", "approval")}
"""Fields left mutable on purpose, each with its reason: ``approval`` is the decision's
input as received (a JSON object, only ever validated into the contract to re-decide)."""


def _mutable(annotation: Any, seen: set[type]) -> list[str]:
    """Where a field's type holds a list, dict or set (nested models included)."""
    origin = get_origin(annotation)
    if origin in MUTABLE or annotation in MUTABLE:
        return [str(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        return [
            f"{annotation.__name__}.{name}: {found}"
            for name, info in annotation.model_fields.items()
            for found in _mutable(info.annotation, seen)
        ]
    if origin is not None:  # a union, a tuple, an optional: each of its arguments
        return [found for arg in get_args(annotation) for found in _mutable(arg, seen)]
    return []


def _stored_events(base: type[BaseModel]) -> list[type[BaseModel]]:
    found, todo = [], [base]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


@pytest.mark.parametrize(
    "base",
    [CollaborationEvent, TrainingEvent, AssessmentEvent, LabelEvent],
    ids=lambda b: b.__name__,
)
def test_every_stored_event_is_immutable(base: type[BaseModel]) -> None:
    service = base.__module__.partition(".")[0]
    mutable = []
    for cls in _stored_events(base):
        assert cls.model_config.get("frozen"), f"{cls.__name__} is not frozen"
        for name, info in cls.model_fields.items():
            if (service, name) not in SHARED_AS_READ_ONLY:
                mutable += [f"{cls.__name__}.{name}: {m}" for m in _mutable(info.annotation, set())]
    assert not mutable
