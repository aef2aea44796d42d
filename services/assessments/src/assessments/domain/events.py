"""Private stored events of the assessments service.

They hold indicator ratings and scores, which never leave this service except, on
approval, to the label decision that needs them (R11): see the relays in ``service``.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict


class AssessmentEvent(BaseModel):
    """Base of every stored event: which assessment of which organisation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assessment_id: str
    org_id: str


class ReliedCertification(BaseModel):
    """The certification an expert was checked against when an assessment was recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    expert_id: str
    role: str
    valid_from: date
    valid_until: date
    certification_id: str | None = None
    """The training_certification event that created the certification (its event id)."""
    as_of_position: int | None = None
    """The training_certification position of the last event of it this service knew."""


class Conducted(AssessmentEvent):
    """What every recorded assessment says."""

    kind: str
    level: str
    conducted_on: date
    mode: str
    expert_ids: tuple[str, ...]
    criteria_version: str
    rules_version: str
    certifications: tuple[ReliedCertification, ...] | None = None
    """The certification relied on for each expert (R9); None: recorded before kept."""


class IndicatorResult(BaseModel):
    """One Gold indicator against its threshold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    score: float
    threshold: float


class BenchmarkingInterviewConducted(Conducted):
    """A Bronze benchmarking interview: 36 indicators rated red, yellow or green (R2)."""

    ratings: tuple[str, ...]


class SilverAuditConducted(Conducted):
    """A Silver on-site audit of three improvement areas after two benchmarkings (R6)."""

    first_benchmarking_id: str
    first_benchmarking_on: date
    second_benchmarking_id: str
    improvement_areas: tuple[str, ...]
    areas_validated: tuple[bool, ...]
    baseline_met: bool


class GoldAssessmentConducted(Conducted):
    """A Gold assessment: 31 indicators against thresholds, total score, two experts (R7)."""

    indicators: tuple[IndicatorResult, ...]
    indicators_passed: int
    score_pct: float
    on_site_days: int
    evidence_documents: int
    renewal: bool


class AssessmentApproved(AssessmentEvent):
    """The approving body approved it; carries what the label decision rests on."""

    kind: str
    level: str
    conducted_on: date
    approved_on: date
    approver: str
    expert_ids: tuple[str, ...]
    criteria_version: str
    profile_validated_on: date | None
    indicator_count: int
    indicators_passed: int | None = None
    score_pct: float | None = None
    on_site_days: int | None = None
    evidence_documents: int | None = None
    improvement_areas_validated: tuple[bool, ...] | None = None
    baseline_met: bool | None = None
    follows_benchmarking_on: date | None = None
    approved_by: str | None = None
    """The person who approved: the subject of the approval command's bearer token."""
    certifications: tuple[ReliedCertification, ...] | None = None


EVENTS: tuple[type[AssessmentEvent], ...] = (
    BenchmarkingInterviewConducted,
    SilverAuditConducted,
    GoldAssessmentConducted,
    AssessmentApproved,
)
