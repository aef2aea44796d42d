"""Public contracts of the training and certification service.

Personal data (a person's name) never travels on a topic: the service keeps it sealed
under the person's key and opens it only at its HTTP edge (``GET /people/{id}``,
``GET /names``), so erasing the key makes it unreadable everywhere (docs/erasure.md).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ConfigDict

from clr_events.registry import Contract, registry


@registry.event("training_certification.PersonRegistered.v1")
class PersonRegisteredV1(Contract):
    """A person (expert, trainer) was registered. Subject: ``person:<person_id>``.

    No longer published: it carried the name in plain text (read as v2, without it)."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="PersonRegistered")

    person_id: str
    name: str
    country: str
    affiliation_org_ids: list[str]
    """Organisations the person works for (an expert never assesses them: R9)."""


@registry.event("training_certification.PersonRegistered.v2")
class PersonRegistered(Contract):
    """A person (expert, trainer) was registered. Subject: ``person:<person_id>``.

    No name: it is personal data, read from the service's ``GET /names?person_id=`` (null
    once erased)."""

    person_id: str
    country: str
    affiliation_org_ids: list[str]
    """Organisations the person works for (an expert never assesses them: R9)."""


@registry.upcaster("training_certification.PersonRegistered.v1")
def _person_registered_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: the plain name is dropped, so no reader keeps it."""
    data.pop("name", None)
    return data


@registry.event("training_certification.PersonalDataErased.v1")
class PersonalDataErased(Contract):
    """A person's personal data was erased (their key destroyed): forget anything of it
    kept, e.g. a name read from ``GET /names``."""

    person_id: str
    erased_on: date
    fields: list[str]
    """What became unreadable (``name``)."""


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
