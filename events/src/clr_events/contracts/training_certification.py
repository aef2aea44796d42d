"""Public contracts of the training and certification service."""

from __future__ import annotations

from datetime import date

from clr_events.registry import Contract, registry


@registry.event("training_certification.PersonRegistered.v1")
class PersonRegistered(Contract):
    """A person (expert, trainer) was registered. Subject: ``person:<person_id>``."""

    person_id: str
    name: str
    country: str
    affiliation_org_ids: list[str]
    """Organisations the person works for (an expert never assesses them: R9)."""


@registry.event("training_certification.AffiliationsChanged.v1")
class AffiliationsChanged(Contract):
    """The organisations a person works for changed."""

    person_id: str
    affiliation_org_ids: list[str]
    changed_on: date


@registry.event("training_certification.CertificateIssued.v1")
class CertificateIssued(Contract):
    """A training certificate was issued on completing a course."""

    person_id: str
    certificate: str
    course_id: str
    issued_on: date


@registry.event("training_certification.ExpertCertified.v1")
class ExpertCertified(Contract):
    """A person was certified for an expert role, valid over a period."""

    person_id: str
    role: str
    """benchmarking_expert, silver_auditor, gold_assessor or trainer."""
    valid_from: date
    valid_until: date
    certified_by: str


@registry.event("training_certification.CertificationRenewed.v1")
class CertificationRenewed(Contract):
    """A role certification was extended."""

    person_id: str
    role: str
    valid_until: date


@registry.event("training_certification.CertificationRevoked.v1")
class CertificationRevoked(Contract):
    """A role certification was revoked from a day on."""

    person_id: str
    role: str
    revoked_on: date
    reason: str
