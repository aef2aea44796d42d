"""Private stored events of the training and certification service."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict


class TrainingEvent(BaseModel):
    """Base of every stored event of this service."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CourseRegistered(TrainingEvent):
    """A course offered: its kind decides the certificate completing it earns."""

    course_id: str
    title: str
    kind: str
    certificate: str
    starts_on: date


class PersonRegistered(TrainingEvent):
    """A person (expert, trainer) with the organisations they work for.

    ``name`` is stored sealed under the person's key (``clr_events.personal``): erasing
    the key leaves it unreadable. Events recorded before names were sealed hold it plain.
    """

    person_id: str
    name: str
    country: str
    affiliation_org_ids: tuple[str, ...]


class AffiliationsChanged(TrainingEvent):
    """The organisations a person works for changed."""

    person_id: str
    affiliation_org_ids: tuple[str, ...]
    changed_on: date


class Enrolled(TrainingEvent):
    """A person enrolled in a course."""

    person_id: str
    course_id: str
    enrolled_on: date


class CertificateIssued(TrainingEvent):
    """A person completed a course and earned its certificate."""

    person_id: str
    course_id: str
    certificate: str
    issued_on: date


class ExpertCertified(TrainingEvent):
    """A person was certified for an expert role, valid over a period."""

    person_id: str
    role: str
    valid_from: date
    valid_until: date
    certified_by: str
    policy_version: str


class CertificationRenewed(TrainingEvent):
    """A role certification was extended."""

    person_id: str
    role: str
    valid_until: date


class CertificationRevoked(TrainingEvent):
    """A role certification was revoked from a day on."""

    person_id: str
    role: str
    revoked_on: date
    reason: str


class PersonalDataErased(TrainingEvent):
    """The person's key was erased: their sealed personal data can no longer be read."""

    person_id: str
    erased_on: date
    fields: tuple[str, ...]
    """What became unreadable (``name``)."""


EVENTS: tuple[type[TrainingEvent], ...] = (
    CourseRegistered,
    PersonRegistered,
    AffiliationsChanged,
    Enrolled,
    CertificateIssued,
    ExpertCertified,
    CertificationRenewed,
    CertificationRevoked,
    PersonalDataErased,
)
