"""Private stored events of a label record (translated to public contracts at the edge)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict


class LabelEvent(BaseModel):
    """Base: every event names its organisation and level."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str
    level: str


class ReliedCertification(BaseModel):
    """An expert's certification the assessment relied on (R9), as the assessments
    service knew it: the training_certification event that created it and the position of
    the last event of it seen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    expert_id: str
    role: str
    valid_from: date
    valid_until: date
    certification_id: str | None = None
    as_of_position: int | None = None


class LabelAwarded(LabelEvent):
    """A first label of a level was awarded on an approved assessment."""

    assessment_id: str
    assessed_on: date
    awarded_on: date
    valid_until: date
    renewal_deadline: date | None = None
    """R10: the last day an assessment renews the label (None: no window, or a decision
    recorded before decisions carried it)."""
    expert_ids: tuple[str, ...]
    policy_version: str
    decided_by: str
    policy_fingerprint: str | None = None
    """The content fingerprint of the policy version that decided (None: decided before
    decisions recorded it)."""
    approval: dict[str, Any] | None = None
    """The inputs decided on: the approved assessment as the decision received it
    (``assessments.ApprovedForDecision``; restricted, never published), so the decision
    can be re-decided (None: decided before decisions recorded them)."""
    approved_by: str | None = None
    """The person who approved the assessment (the approval command's token subject)."""
    certifications: tuple[ReliedCertification, ...] | None = None
    """The certification relied on for each expert (None: not carried by the approval)."""


class LabelRenewed(LabelEvent):
    """A label was renewed within its window and extended without a gap."""

    assessment_id: str
    assessed_on: date
    renewed_on: date
    previous_valid_until: date
    valid_until: date
    renewal_deadline: date | None = None
    """R10: the last day an assessment renews the label (None: no window, or a decision
    recorded before decisions carried it)."""
    expert_ids: tuple[str, ...]
    policy_version: str
    decided_by: str
    policy_fingerprint: str | None = None
    """The content fingerprint of the policy version that decided (None: decided before
    decisions recorded it)."""
    approval: dict[str, Any] | None = None
    """The inputs decided on: the approved assessment as the decision received it
    (``assessments.ApprovedForDecision``; restricted, never published), so the decision
    can be re-decided (None: decided before decisions recorded them)."""
    approved_by: str | None = None
    """The person who approved the assessment (the approval command's token subject)."""
    certifications: tuple[ReliedCertification, ...] | None = None
    """The certification relied on for each expert (None: not carried by the approval)."""


class LabelExpired(LabelEvent):
    """A label's validity passed without renewal (recorded by the clock)."""

    valid_until: date
    expired_on: date
    policy_version: str | None = None
    """The decision policy in force when recorded (None: recorded before it was kept)."""


class LabelWithdrawn(LabelEvent):
    """The labelling board withdrew a label, with a reason."""

    reason: str
    withdrawn_on: date
    withdrawn_by: str
    policy_version: str | None = None
    """The decision policy in force when recorded (None: recorded before it was kept)."""


class LabelRecordCorrected(LabelEvent):
    """A compensating correction of the validity (R15: nothing is rewritten)."""

    previous_valid_until: date
    valid_until: date
    renewal_deadline: date | None = None
    """R10: the last day an assessment renews the label (None: no window, or a decision
    recorded before decisions carried it)."""
    reason: str
    corrected_by: str
    policy_version: str | None = None
    """The decision policy in force when recorded (None: recorded before it was kept)."""


class Refusal(BaseModel):
    """One rule an approved assessment failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    message: str


class LabelRefused(LabelEvent):
    """An approved assessment earned no label: private, for the board and the auditor."""

    assessment_id: str
    assessed_on: date
    refused_on: date
    violations: tuple[Refusal, ...]
    expert_ids: tuple[str, ...]
    policy_version: str
    decided_by: str
    policy_fingerprint: str | None = None
    """The content fingerprint of the policy version that decided (None: decided before
    decisions recorded it)."""
    approval: dict[str, Any] | None = None
    """The inputs decided on: the approved assessment as the decision received it
    (``assessments.ApprovedForDecision``; restricted, never published), so the decision
    can be re-decided (None: decided before decisions recorded them)."""
    approved_by: str | None = None
    """The person who approved the assessment (the approval command's token subject)."""
    certifications: tuple[ReliedCertification, ...] | None = None
    """The certification relied on for each expert (None: not carried by the approval)."""


EVENTS: tuple[type[LabelEvent], ...] = (
    LabelAwarded,
    LabelRenewed,
    LabelRefused,
    LabelExpired,
    LabelWithdrawn,
    LabelRecordCorrected,
)
