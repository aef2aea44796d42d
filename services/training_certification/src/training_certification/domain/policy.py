"""Certification policy: what the sources leave open is a versioned setting.

Sourced (shared/domain.md, section 3): the EFCE certificates (Associate Trainer, Cluster
Management Association Certification, Cluster Excellence Management Instructor) and
ESCA's "ECEI Cluster Benchmarking Expert". Unconfirmed, so settings of a policy version:
which certificate each expert role needs first, and how long a role certification lasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from clr_events.application.aggregate import Policies


class ExpertRole(StrEnum):
    """The roles an expert is certified for (R9 checks them per assessment kind)."""

    BENCHMARKING_EXPERT = "benchmarking_expert"
    SILVER_AUDITOR = "silver_auditor"
    GOLD_ASSESSOR = "gold_assessor"
    TRAINER = "trainer"


COURSE_CERTIFICATES: dict[str, str] = {
    # course kind -> the certificate completing it earns
    "cluster_excellence_management": "cluster_management_association_certification",
    "associate_trainer_programme": "associate_trainer",
    "instructor_training": "cluster_excellence_management_instructor",
    "benchmarking_tool_training": "ecei_cluster_benchmarking_expert",
}
"""Course kinds and their certificates (section 3.1 and 3.2)."""


@dataclass(frozen=True)
class CertificationPolicy:
    """Prerequisites and validity of role certifications (design assumptions)."""

    version: str
    validity_months: dict[ExpertRole, int] = field(default_factory=dict)
    prerequisites: dict[ExpertRole, tuple[str, ...]] = field(default_factory=dict)
    """Each role's alternatives: holding any one of these certificates qualifies."""


CERTIFICATION_2026_1 = CertificationPolicy(
    version="2026.1",
    validity_months={
        ExpertRole.BENCHMARKING_EXPERT: 36,
        ExpertRole.SILVER_AUDITOR: 36,
        ExpertRole.GOLD_ASSESSOR: 36,
        ExpertRole.TRAINER: 36,
    },
    prerequisites={
        ExpertRole.BENCHMARKING_EXPERT: ("ecei_cluster_benchmarking_expert",),
        ExpertRole.SILVER_AUDITOR: ("ecei_cluster_benchmarking_expert",),
        ExpertRole.GOLD_ASSESSOR: ("ecei_cluster_benchmarking_expert",),
        ExpertRole.TRAINER: ("cluster_excellence_management_instructor", "associate_trainer"),
    },
)
"""The current policy. A new reading of the sources is a new version, not an edit."""


POLICIES: Policies[CertificationPolicy] = Policies(
    "certification policy", {CERTIFICATION_2026_1.version: CERTIFICATION_2026_1}, "2026.1"
)
"""Certification policies by version (``CLR_CERTIFICATION_POLICY_VERSION``)."""
