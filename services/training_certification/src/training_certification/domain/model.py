"""Aggregates of training and certification: courses and people.

Command functions check the rules against state rebuilt from events and return new
events; a refusal names every broken rule. Certification rules without a number in
domain.md are named ``certification`` (their values are policy settings).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from clr_events.application.aggregate import StreamId, stream_id
from clr_events.months import add_months
from clr_events.rules import Violations
from training_certification.domain.events import (
    AffiliationsChanged,
    CertificateIssued,
    CertificationRenewed,
    CertificationRevoked,
    CourseRegistered,
    Enrolled,
    ExpertCertified,
    PersonalDataErased,
    PersonRegistered,
    TrainingEvent,
)
from training_certification.domain.policy import (
    COURSE_CERTIFICATES,
    CertificationPolicy,
    ExpertRole,
)


def course_stream(course_id: str) -> StreamId:
    """The stream of a course."""
    return stream_id("course", course_id)


def person_stream(person_id: str) -> StreamId:
    """The stream of a person's training record and certifications."""
    return stream_id("person", person_id)


def register_course(
    *, course_id: str, title: str, kind: str, starts_on: date
) -> list[TrainingEvent]:
    """Offer a course of a known kind."""
    problems = Violations()
    problems.check(bool(title.strip()), "course", "a course needs a title")
    problems.check(
        kind in COURSE_CERTIFICATES,
        "course",
        f"unknown course kind {kind!r}; known: {', '.join(sorted(COURSE_CERTIFICATES))}",
    )
    problems.raise_if_any()
    return [
        CourseRegistered(
            course_id=course_id,
            title=title.strip(),
            kind=kind,
            certificate=COURSE_CERTIFICATES[kind],
            starts_on=starts_on,
        )
    ]


@dataclass
class Certification:
    """One role certification of a person."""

    valid_from: date
    valid_until: date
    revoked_on: date | None = None

    def valid_on(self, day: date) -> bool:
        """Whether it is in force on ``day``."""
        revoked = self.revoked_on is not None and self.revoked_on <= day
        return self.valid_from <= day <= self.valid_until and not revoked


CertificationKey = tuple[str, str]
"""A role certification: (person_id, role)."""


def certification_periods(
    events: Iterable[TrainingEvent],
) -> dict[CertificationKey, list[Certification]]:
    """Every period of every role certification the events made, in order: certified
    again, a role opens a new period; a renewal extends, a revocation ends the latest (a
    past day is answered from these, not from the latest certification alone)."""
    periods: dict[CertificationKey, list[Certification]] = {}
    for event in events:
        match event:
            case ExpertCertified():
                periods.setdefault((event.person_id, event.role), []).append(
                    Certification(event.valid_from, event.valid_until)
                )
            case CertificationRenewed() if (event.person_id, event.role) in periods:
                periods[(event.person_id, event.role)][-1].valid_until = event.valid_until
            case CertificationRevoked() if (event.person_id, event.role) in periods:
                periods[(event.person_id, event.role)][-1].revoked_on = event.revoked_on
    return periods


@dataclass
class Person:
    """A person's training record and certifications, rebuilt from events."""

    registered: PersonRegistered
    affiliations: tuple[str, ...]
    enrolments: dict[str, date] = field(default_factory=dict)
    certificates: dict[str, date] = field(default_factory=dict)
    completed_courses: set[str] = field(default_factory=set)
    certifications: dict[str, Certification] = field(default_factory=dict)
    erased_on: date | None = None
    version: int = 1

    @classmethod
    def replay(cls, events: list[TrainingEvent]) -> Person:
        """Rebuild from the stream (the first event is the registration)."""
        first = events[0]
        assert isinstance(first, PersonRegistered)
        person = cls(first, first.affiliation_org_ids)
        for event in events[1:]:
            person.apply(event)
        return person

    @property
    def stream(self) -> StreamId:
        """The person's stream."""
        return person_stream(self.person_id)

    def apply(self, event: TrainingEvent) -> None:
        """Evolve by one later event."""
        match event:
            case AffiliationsChanged():
                self.affiliations = event.affiliation_org_ids
            case Enrolled():
                self.enrolments[event.course_id] = event.enrolled_on
            case CertificateIssued():
                self.completed_courses.add(event.course_id)
                self.certificates.setdefault(event.certificate, event.issued_on)
            case ExpertCertified():
                self.certifications[event.role] = Certification(event.valid_from, event.valid_until)
            case CertificationRenewed():
                self.certifications[event.role].valid_until = event.valid_until
            case CertificationRevoked():
                self.certifications[event.role].revoked_on = event.revoked_on
            case PersonalDataErased():
                self.erased_on = event.erased_on
        self.version += 1

    @property
    def person_id(self) -> str:
        """The person's id."""
        return self.registered.person_id


def register_person(
    *, person_id: str, name: str, country: str, affiliation_org_ids: list[str]
) -> list[TrainingEvent]:
    """Register a person with the organisations they work for (R9 reads these)."""
    problems = Violations()
    problems.check(bool(name.strip()), "person", "a person needs a name")
    problems.check(
        len(country) == 2 and country.isupper(), "person", "country is ISO 3166-1 alpha-2"
    )
    problems.raise_if_any()
    return [
        PersonRegistered(
            person_id=person_id,
            name=name.strip(),
            country=country,
            affiliation_org_ids=tuple(dict.fromkeys(affiliation_org_ids)),
        )
    ]


PERSONAL_FIELDS = ("name",)
"""What of a person is personal data, sealed under their key."""


def erase(person: Person, on: date) -> list[TrainingEvent]:
    """Record the erasure of a person's personal data ([] if it was erased before)."""
    if person.erased_on is not None:
        return []
    return [PersonalDataErased(person_id=person.person_id, erased_on=on, fields=PERSONAL_FIELDS)]


def change_affiliations(person: Person, org_ids: list[str], on: date) -> list[TrainingEvent]:
    """Replace the organisations a person works for ([] if nothing changes)."""
    new = tuple(dict.fromkeys(org_ids))
    if new == person.affiliations:
        return []
    return [AffiliationsChanged(person_id=person.person_id, affiliation_org_ids=new, changed_on=on)]


def enrol(person: Person, course: CourseRegistered, on: date) -> list[TrainingEvent]:
    """Enrol a person in a course ([] if already enrolled)."""
    if course.course_id in person.enrolments:
        return []
    return [Enrolled(person_id=person.person_id, course_id=course.course_id, enrolled_on=on)]


def complete(person: Person, course: CourseRegistered, on: date) -> list[TrainingEvent]:
    """A completion issues the course's certificate ([] if already completed).

    Raises:
        RuleViolationError: not enrolled, or completed before enrolling.
    """
    if course.course_id in person.completed_courses:
        return []
    problems = Violations()
    enrolled_on = person.enrolments.get(course.course_id)
    problems.check(
        enrolled_on is not None, "training", f"not enrolled in course {course.course_id!r}"
    )
    problems.check(
        enrolled_on is None or enrolled_on <= on,
        "training",
        "a course cannot be completed before the enrolment",
    )
    problems.raise_if_any()
    return [
        CertificateIssued(
            person_id=person.person_id,
            course_id=course.course_id,
            certificate=course.certificate,
            issued_on=on,
        )
    ]


def certify(
    person: Person,
    role: ExpertRole,
    *,
    on: date,
    by: str,
    policy: CertificationPolicy,
) -> list[TrainingEvent]:
    """Certify a person for a role from ``on``, valid for the policy's months.

    Raises:
        RuleViolationError: a prerequisite certificate is missing or later than ``on``,
            or the role is already certified and in force on ``on`` (renew it instead).
    """
    problems = Violations()
    needed = policy.prerequisites.get(role, ())
    held = [c for c in needed if c in person.certificates and person.certificates[c] <= on]
    problems.check(
        not needed or bool(held),
        "certification",
        f"{role.value} needs one of these certificates first: {', '.join(needed)}"
        f" (policy {policy.version})",
    )
    current = person.certifications.get(role.value)
    problems.check(
        current is None or not current.valid_on(on),
        "certification",
        f"already certified as {role.value} on {on.isoformat()}; renew it instead",
    )
    problems.raise_if_any()
    return [
        ExpertCertified(
            person_id=person.person_id,
            role=role.value,
            valid_from=on,
            valid_until=add_months(on, policy.validity_months[role]),
            certified_by=by,
            policy_version=policy.version,
        )
    ]


def renew(
    person: Person, role: ExpertRole, *, on: date, policy: CertificationPolicy
) -> list[TrainingEvent]:
    """Extend a certification in force on ``on`` by the policy's months from its end.

    Raises:
        RuleViolationError: no certification in force on ``on``.
    """
    current = person.certifications.get(role.value)
    problems = Violations()
    problems.check(
        current is not None and current.valid_on(on),
        "certification",
        f"no {role.value} certification in force on {on.isoformat()} to renew",
    )
    problems.raise_if_any()
    assert current is not None
    return [
        CertificationRenewed(
            person_id=person.person_id,
            role=role.value,
            valid_until=add_months(current.valid_until, policy.validity_months[role]),
        )
    ]


def revoke(person: Person, role: ExpertRole, *, on: date, reason: str) -> list[TrainingEvent]:
    """Revoke a certification from ``on`` with a reason.

    Raises:
        RuleViolationError: nothing to revoke, already revoked, or no reason.
    """
    current = person.certifications.get(role.value)
    problems = Violations()
    problems.check(current is not None, "certification", f"no {role.value} certification")
    problems.check(
        current is None or current.revoked_on is None,
        "certification",
        f"the {role.value} certification is already revoked",
    )
    problems.check(bool(reason.strip()), "certification", "a revocation needs a reason")
    problems.raise_if_any()
    return [
        CertificationRevoked(
            person_id=person.person_id, role=role.value, revoked_on=on, reason=reason.strip()
        )
    ]
