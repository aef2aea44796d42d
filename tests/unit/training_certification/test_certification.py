"""Certification rules (policy settings): given events, when a command, then events or error."""

from __future__ import annotations

from datetime import date

import pytest

from clr_events.rules import RuleViolationError
from training_certification.domain import model
from training_certification.domain.events import CourseRegistered, TrainingEvent
from training_certification.domain.policy import CERTIFICATION_2026_1, ExpertRole

POLICY = CERTIFICATION_2026_1
COURSE = CourseRegistered(
    course_id="bt-1",
    title="Benchmarking tool",
    kind="benchmarking_tool_training",
    certificate="ecei_cluster_benchmarking_expert",
    starts_on=date(2020, 1, 1),
)


def person(*later: TrainingEvent) -> model.Person:
    first = model.register_person(
        person_id="p-1", name="Eva", country="AT", affiliation_org_ids=["org-9"]
    )
    return model.Person.replay([*first, *later])


def trained() -> list[TrainingEvent]:
    enrolled = model.enrol(person(), COURSE, date(2020, 1, 5))
    return [*enrolled, *model.complete(person(*enrolled), COURSE, date(2020, 3, 1))]


def test_completing_a_course_issues_its_certificate() -> None:
    events = trained()
    assert [type(e).__name__ for e in events] == ["Enrolled", "CertificateIssued"]
    assert person(*events).certificates == {"ecei_cluster_benchmarking_expert": date(2020, 3, 1)}


def test_a_course_not_enrolled_in_cannot_be_completed() -> None:
    with pytest.raises(RuleViolationError, match="training: not enrolled in course 'bt-1'"):
        model.complete(person(), COURSE, date(2020, 3, 1))


def test_certification_needs_the_prerequisite_certificate() -> None:
    with pytest.raises(RuleViolationError) as refused:
        model.certify(
            person(), ExpertRole.GOLD_ASSESSOR, on=date(2021, 1, 1), by="t", policy=POLICY
        )
    assert str(refused.value) == (
        "certification: gold_assessor needs one of these certificates first:"
        " ecei_cluster_benchmarking_expert (policy 2026.1)"
    )


def test_a_certification_is_valid_for_the_policy_months_then_renewed_and_revoked() -> None:
    history = trained()
    certified = model.certify(
        person(*history),
        ExpertRole.BENCHMARKING_EXPERT,
        on=date(2021, 1, 1),
        by="t",
        policy=POLICY,
    )
    assert certified[0].model_dump()["valid_until"] == date(2024, 1, 1)
    history += certified
    renewed = model.renew(
        person(*history), ExpertRole.BENCHMARKING_EXPERT, on=date(2023, 12, 1), policy=POLICY
    )
    assert renewed[0].model_dump()["valid_until"] == date(2027, 1, 1)
    history += renewed
    revoked = model.revoke(
        person(*history), ExpertRole.BENCHMARKING_EXPERT, on=date(2025, 5, 1), reason="conduct"
    )
    cert = person(*history, *revoked).certifications["benchmarking_expert"]
    assert cert.valid_on(date(2025, 4, 30)) and not cert.valid_on(date(2025, 5, 1))


def test_a_certification_in_force_is_renewed_not_certified_again() -> None:
    history = trained()
    history += model.certify(
        person(*history),
        ExpertRole.BENCHMARKING_EXPERT,
        on=date(2021, 1, 1),
        by="t",
        policy=POLICY,
    )
    with pytest.raises(RuleViolationError, match="already certified as benchmarking_expert"):
        model.certify(
            person(*history),
            ExpertRole.BENCHMARKING_EXPERT,
            on=date(2022, 1, 1),
            by="t",
            policy=POLICY,
        )
    with pytest.raises(RuleViolationError, match="no benchmarking_expert certification in force"):
        model.renew(
            person(*history), ExpertRole.BENCHMARKING_EXPERT, on=date(2024, 2, 1), policy=POLICY
        )


def test_a_course_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(RuleViolationError, match="course: unknown course kind 'yoga'"):
        model.register_course(course_id="c", title="Yoga", kind="yoga", starts_on=date(2020, 1, 1))
