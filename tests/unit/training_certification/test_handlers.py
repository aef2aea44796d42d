"""Every training and certification handler on the in-memory unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

import pytest

from clr_events import personal
from clr_events.application.memory import InMemoryUnitsOfWork
from clr_events.application.uow import Cause, Result, UnitOfWork, execute
from clr_events.rules import NotFoundError, RuleViolationError
from training_certification import application as app
from training_certification.domain.policy import CERTIFICATION_2026_1, ExpertRole

Handler = Callable[[UnitOfWork], Awaitable[Result]]
POLICY = CERTIFICATION_2026_1
EXPERT = ExpertRole.BENCHMARKING_EXPERT


@pytest.fixture
async def units() -> InMemoryUnitsOfWork:
    """A person ``p-1`` and a benchmarking tool course ``c-1``."""
    created = InMemoryUnitsOfWork()
    person = app.RegisterPerson(
        person_id="p-1", name="Ann", country="DE", affiliation_org_ids=["o"]
    )
    await run(created, lambda uow: app.register_person(person, uow))
    course = app.RegisterCourse(
        course_id="c-1", title="Tool", kind="benchmarking_tool_training", starts_on=date(2024, 1, 1)
    )
    await run(created, lambda uow: app.register_course(course, uow))
    return created


async def run(units: InMemoryUnitsOfWork, handler: Handler) -> Result:
    return await execute(units, Cause("admin", "corr"), handler)


def step(course_id: str = "c-1", on: date = date(2024, 2, 1)) -> app.CourseStep:
    return app.CourseStep(course_id=course_id, on=on)


async def certified(units: InMemoryUnitsOfWork) -> Result:
    await run(units, lambda uow: app.enrol(app.Enrol(person_id="p-1", step=step()), uow))
    done = app.Complete(person_id="p-1", step=step(on=date(2024, 3, 1)))
    await run(units, lambda uow: app.complete(done, uow))
    cmd = app.CertifyPerson(
        person_id="p-1", certification=app.Certify(role=EXPERT, on=date(2024, 4, 1))
    )
    return await run(units, lambda uow: app.certify(cmd, uow, policy=POLICY))


async def test_register_person_and_course(units: InMemoryUnitsOfWork) -> None:
    assert [row.type for row in units.store.rows] == ["PersonRegistered", "CourseRegistered"]
    (row,) = units.tables["people"]
    assert {k: v for k, v in row.items() if k != "name"} == {
        "person_id": "p-1",
        "country": "DE",
        "affiliations": ["o"],
    }
    (key,) = units.tables["subject_keys"]
    assert personal.unseal(key["key"], "person:p-1", row["name"]) == "Ann"  # sealed, never plain
    unknown_kind = app.RegisterCourse(
        course_id="c-2", title="X", kind="juggling", starts_on=date(2024, 1, 1)
    )
    with pytest.raises(RuleViolationError, match="unknown course kind"):
        await run(units, lambda uow: app.register_course(unknown_kind, uow))


async def test_change_affiliations_updates_the_row_and_nothing_when_unchanged(
    units: InMemoryUnitsOfWork,
) -> None:
    change = app.Affiliations(affiliation_org_ids=["o", "q"], changed_on=date(2024, 1, 5))
    cmd = app.ChangeAffiliations(person_id="p-1", change=change)
    assert await run(units, lambda uow: app.change_affiliations(cmd, uow)) == Result(
        201, {"person_id": "p-1", "events": ["AffiliationsChanged"], "stream_version": 2}
    )
    assert units.tables["people"][0]["affiliations"] == ["o", "q"]
    assert await run(units, lambda uow: app.change_affiliations(cmd, uow)) == Result(
        200, {"person_id": "p-1", "events": []}
    )
    nobody = cmd.model_copy(update={"person_id": "p-9"})
    with pytest.raises(NotFoundError):
        await run(units, lambda uow: app.change_affiliations(nobody, uow))


async def test_enrol_and_complete_issue_the_courses_certificate(
    units: InMemoryUnitsOfWork,
) -> None:
    done = app.Complete(person_id="p-1", step=step())
    with pytest.raises(RuleViolationError, match="not enrolled"):
        await run(units, lambda uow: app.complete(done, uow))
    enrolment = app.Enrol(person_id="p-1", step=step())
    assert (await run(units, lambda uow: app.enrol(enrolment, uow))).status == 201
    assert (await run(units, lambda uow: app.enrol(enrolment, uow))).status == 200
    result = await run(units, lambda uow: app.complete(done, uow))
    assert result.body["events"] == ["CertificateIssued"]
    missing = app.Enrol(person_id="p-1", step=step(course_id="c-9"))
    with pytest.raises(NotFoundError, match="course"):
        await run(units, lambda uow: app.enrol(missing, uow))


async def test_certify_needs_the_certificate_and_indexes_the_certification(
    units: InMemoryUnitsOfWork,
) -> None:
    early = app.CertifyPerson(
        person_id="p-1", certification=app.Certify(role=EXPERT, on=date(2024, 1, 2))
    )
    with pytest.raises(RuleViolationError, match="needs one of these certificates"):
        await run(units, lambda uow: app.certify(early, uow, policy=POLICY))
    result = await certified(units)
    assert result.body["events"] == ["ExpertCertified"]
    assert units.tables["certifications"] == [
        {
            "person_id": "p-1",
            "role": "benchmarking_expert",
            "valid_from": date(2024, 4, 1),
            "valid_until": date(2027, 4, 1),
            "revoked_on": None,
        }
    ]
    assert units.store.rows[-1].data_json.count('"certified_by":"admin"') == 1


async def test_renew_and_revoke_keep_the_certification_row_in_step(
    units: InMemoryUnitsOfWork,
) -> None:
    await certified(units)
    renewal = app.RenewCertification(
        person_id="p-1", renewal=app.Certify(role=EXPERT, on=date(2026, 1, 1))
    )
    await run(units, lambda uow: app.renew(renewal, uow, policy=POLICY))
    assert units.tables["certifications"][0]["valid_until"] == date(2030, 4, 1)
    revocation = app.RevokeCertification(
        person_id="p-1",
        revocation=app.Revoke(role=EXPERT, on=date(2026, 2, 1), reason="misconduct"),
    )
    await run(units, lambda uow: app.revoke(revocation, uow))
    assert units.tables["certifications"][0]["revoked_on"] == date(2026, 2, 1)
    with pytest.raises(RuleViolationError, match="already revoked"):
        await run(units, lambda uow: app.revoke(revocation, uow))
    trainer = app.RenewCertification(
        person_id="p-1", renewal=app.Certify(role=ExpertRole.TRAINER, on=date(2026, 1, 1))
    )
    with pytest.raises(RuleViolationError, match="no trainer certification in force"):
        await run(units, lambda uow: app.renew(trainer, uow, policy=POLICY))


async def test_an_erasure_destroys_the_key_and_is_recorded_once(
    units: InMemoryUnitsOfWork,
) -> None:
    await certified(units)
    erase = app.ErasePerson(person_id="p-1")
    first = await run(units, lambda uow: app.erase_person(erase, uow))
    assert first.status == 201 and first.body["events"] == ["PersonalDataErased"]
    again = await run(units, lambda uow: app.erase_person(erase, uow))
    assert again.status == 200 and again.body["events"] == []
    (key,) = units.tables["subject_keys"]
    assert key["key"] is None and key["erased_at"] is not None
    assert units.tables["people"][0]["name"] is None
    registered, *_, erased = await units.store.read_stream("person:p-1")
    assert personal.is_sealed(registered.data["name"]) and "Ann" not in registered.data_json
    assert erased.type == "PersonalDataErased" and erased.data["fields"] == ["name"]
    with pytest.raises(personal.ErasedError):  # nothing new is sealed for an erased subject
        async with units.begin(Cause("t", "t")) as uow:
            await personal.key_for(uow.rows, "person:p-1")
    nobody = app.ErasePerson(person_id="p-9")
    with pytest.raises(NotFoundError):
        await run(units, lambda uow: app.erase_person(nobody, uow))
