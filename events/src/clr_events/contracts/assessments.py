"""Contracts of the assessments service.

Public (topic ``assessments.events``): what was assessed, when, by whom, and its approval;
never a score (R11). Restricted (topic ``assessments.decisions``, read by label_decisions
only): ``ApprovedForDecision`` with the results the label decision rests on.
"""

from __future__ import annotations

from datetime import date

from clr_events.registry import Contract, registry


class ReliedCertification(Contract):
    """An expert's role certification an assessment relied on (R9), as this service knew it.

    ``certification_id`` is the id of the ``training_certification.ExpertCertified`` event
    that created the certification (its CloudEvent id); ``as_of_position`` the
    training_certification global position of the last event of that certification
    (issue, renewal, revocation) the check saw. None on either: learned before they were
    kept.
    """

    expert_id: str
    role: str
    valid_from: date
    valid_until: date
    certification_id: str | None = None
    as_of_position: int | None = None


@registry.event("assessments.AssessmentRecorded.v1")
class AssessmentRecorded(Contract):
    """An assessment was conducted and recorded. Subject: ``assessment:<assessment_id>``."""

    assessment_id: str
    org_id: str
    kind: str
    """bronze_benchmarking, silver_audit or gold_assessment."""
    level: str
    conducted_on: date
    mode: str
    """on_site or video."""
    expert_ids: list[str]
    criteria_version: str


@registry.event("assessments.AssessmentApproved.v1")
class AssessmentApproved(Contract):
    """The approving body approved an assessment."""

    assessment_id: str
    org_id: str
    kind: str
    level: str
    conducted_on: date
    approved_on: date
    approver: str
    expert_ids: list[str]
    criteria_version: str
    approved_by: str | None = None
    """The person who approved: the subject of the approval command's bearer token
    (``approver`` is the approving body as the request named it). None: recorded before
    approvals carried it."""


@registry.event("assessments.ApprovedForDecision.v1")
class ApprovedForDecision(Contract):
    """RESTRICTED: an approved assessment with the results its label decision needs.

    Subject and key: the organisation, so one organisation's decisions are taken in order.
    """

    assessment_id: str
    org_id: str
    kind: str
    level: str
    conducted_on: date
    approved_on: date
    approver: str
    expert_ids: list[str]
    criteria_version: str
    profile_validated_on: date | None
    """When the organisation's profile was validated, as the assessment knew it (R1)."""
    indicator_count: int
    """Bronze: indicators rated (R2); Gold: indicators assessed (R7)."""
    indicators_passed: int | None = None
    """Gold: indicators at or above their threshold (R7)."""
    score_pct: float | None = None
    """Gold: the total score (R7)."""
    on_site_days: int | None = None
    evidence_documents: int | None = None
    improvement_areas_validated: list[bool] | None = None
    """Silver: the auditor's verdict on each of the three areas (R6)."""
    baseline_met: bool | None = None
    """Silver: every baseline minimum requirement met (R6)."""
    follows_benchmarking_on: date | None = None
    """Silver: the first benchmarking the second one follows (R6)."""
    approved_by: str | None = None
    """The person who approved: the subject of the approval command's bearer token.
    None: recorded before approvals carried it."""
    certifications: list[ReliedCertification] | None = None
    """The certification relied on for each expert when the assessment was recorded (R9).
    None: recorded before assessments kept it."""
