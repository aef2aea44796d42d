"""Every aggregate has the one shape (stream, version, apply, replay), every stream id comes
from its aggregate's function, every service chooses its rules by version the same way,
every stored event is immutable (the stream cache shares them between loads), every
service's routes read through its ``queries`` module (no SQL or stream read in an
``api``), every consumer runs handlers of its service's application module, and the rules
both assessments and label decisions check (R1, R2, R6, R7) have the same figures in both
by default."""

from __future__ import annotations

import importlib
import importlib.util
from datetime import date
from pathlib import Path
from typing import Any, Never, get_args, get_origin

import pytest
from pydantic import BaseModel

from assessments.domain import model as assessments
from assessments.domain.events import AssessmentEvent, BenchmarkingInterviewConducted
from assessments.domain.policy import POLICIES as ASSESSMENT_RULES
from assessments.domain.policy import Kind
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


WRITE_SERVICES = ["assessments", "collaboration", "label_decisions", "training_certification"]


@pytest.mark.parametrize("service", WRITE_SERVICES)
def test_no_route_holds_sql_every_service_reads_through_its_queries_module(service: str) -> None:
    api = importlib.util.find_spec(f"{service}.api")
    assert api is not None and api.origin is not None
    source = Path(api.origin).read_text(encoding="utf-8")
    reads = ("SELECT", "INSERT", "UPDATE ", "DELETE", ".pool.", "read_existing", "read_stream")
    held = [word for word in (*reads, ".reading()") if word in source]
    assert not held, f"{service}.api holds {held}"
    assert importlib.util.find_spec(f"{service}.queries") is not None


@pytest.mark.parametrize("service", WRITE_SERVICES)
def test_every_consumer_runs_the_event_handlers_of_its_services_application_module(
    service: str,
) -> None:
    runtime = importlib.import_module(f"{service}.service").build().state.runtime
    for spec in runtime.consumers:
        assert spec.handlers, spec.group
        for contract, handler in spec.handlers.items():
            assert handler.__module__ == f"{service}.application", (spec.group, contract)


def test_the_rules_checked_at_assessment_and_at_decision_agree_by_default() -> None:
    """R1, R2, R6 and R7 are checked when an assessment is recorded and again when the
    label is decided (each service by its own versioned, fingerprinted rules: services
    share no code); the defaults must agree, or an assessment recorded could be refused."""
    rules = ASSESSMENT_RULES.choose(ASSESSMENT_RULES.default)
    policy = DECISION_POLICIES.choose(DECISION_POLICIES.default)
    today = date.today()
    bronze = rules.criteria_for(Kind.BRONZE, today)
    gold = rules.criteria_for(Kind.GOLD, today)
    assert bronze is not None and gold is not None
    assert rules.eligibility_required_from == policy.eligibility_required_from  # R1
    assert bronze.indicator_count == policy.bronze_indicator_count  # R2
    assert rules.improvement_areas == policy.silver_improvement_areas  # R6
    assert gold.indicator_count == policy.gold_indicator_count  # R7
    assert (rules.gold_days_first, rules.gold_days_renewal) == (
        policy.gold_days_first,
        policy.gold_days_renewal,
    )  # R7
