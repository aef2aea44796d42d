"""Public contracts of the label decisions service (topic ``label_decisions.events``).

Subject and key: the label record, ``<org_id>:<level>``. Every decision carries the
policy version that took it, the assessment it rests on, the experts, and who decided.
"""

from __future__ import annotations

from datetime import date

from clr_events.contracts.assessments import ReliedCertification
from clr_events.registry import Contract, registry


@registry.event("label_decisions.LabelAwarded.v1")
class LabelAwarded(Contract):
    """A first label of a level was awarded."""

    org_id: str
    level: str
    assessment_id: str
    assessed_on: date
    awarded_on: date
    valid_until: date
    renewal_deadline: date | None = None
    """R4, R5, R8: the last day an assessment still renews the label; between
    ``valid_until`` and this day the label is in its renewal window (R10). None: no
    renewal window, or a decision recorded before decisions carried it."""
    expert_ids: list[str]
    policy_version: str
    decided_by: str
    policy_fingerprint: str | None = None
    """``sha256:<hex>`` of the canonical JSON of the policy version that decided (served at
    ``GET /policy/{policy_version}`` of label decisions). None: decided before decisions
    recorded it."""
    approved_by: str | None = None
    """The person who approved the assessment (the subject of the approval command's
    bearer token in the assessments service). None: decided before decisions carried it."""
    certifications: list[ReliedCertification] | None = None
    """The certification relied on for each expert (R9). None: decided before decisions
    carried it."""


@registry.event("label_decisions.LabelRenewed.v1")
class LabelRenewed(Contract):
    """A label was renewed within its window and extended without a gap."""

    org_id: str
    level: str
    assessment_id: str
    assessed_on: date
    renewed_on: date
    previous_valid_until: date
    valid_until: date
    renewal_deadline: date | None = None
    """R4, R5, R8: the last day an assessment still renews the label; between
    ``valid_until`` and this day the label is in its renewal window (R10). None: no
    renewal window, or a decision recorded before decisions carried it."""
    expert_ids: list[str]
    policy_version: str
    decided_by: str
    policy_fingerprint: str | None = None
    """``sha256:<hex>`` of the canonical JSON of the policy version that decided (served at
    ``GET /policy/{policy_version}`` of label decisions). None: decided before decisions
    recorded it."""
    approved_by: str | None = None
    """The person who approved the assessment (the subject of the approval command's
    bearer token in the assessments service). None: decided before decisions carried it."""
    certifications: list[ReliedCertification] | None = None
    """The certification relied on for each expert (R9). None: decided before decisions
    carried it."""


@registry.event("label_decisions.LabelExpired.v1")
class LabelExpired(Contract):
    """A label's validity passed without renewal."""

    org_id: str
    level: str
    valid_until: date
    expired_on: date
    policy_version: str | None = None
    """The decision policy version in force when this was recorded. None: recorded before
    these events carried it."""


@registry.event("label_decisions.LabelWithdrawn.v1")
class LabelWithdrawn(Contract):
    """The labelling board withdrew a label."""

    org_id: str
    level: str
    reason: str
    withdrawn_on: date
    withdrawn_by: str
    policy_version: str | None = None
    """The decision policy version in force when this was recorded. None: recorded before
    these events carried it."""


@registry.event("label_decisions.LabelRecordCorrected.v1")
class LabelRecordCorrected(Contract):
    """A compensating correction of a label's validity (R15)."""

    org_id: str
    level: str
    previous_valid_until: date
    valid_until: date
    renewal_deadline: date | None = None
    """R4, R5, R8: the last day an assessment still renews the label; between
    ``valid_until`` and this day the label is in its renewal window (R10). None: no
    renewal window, or a decision recorded before decisions carried it."""
    reason: str
    corrected_by: str
    policy_version: str | None = None
    """The decision policy version in force when this was recorded. None: recorded before
    these events carried it."""


class CurrentLabel(Contract):
    """One label record of an organisation, as it stands."""

    level: str
    status: str
    """valid, in_renewal_window, expired or withdrawn on ``as_of``; later days: from the dates."""
    awarded_on: date | None = None
    renewed_on: date | None = None
    valid_until: date | None = None
    expired_on: date | None = None
    withdrawn_on: date | None = None


@registry.event("label_decisions.CurrentLabels.v1")
class CurrentLabels(Contract):
    """An organisation's current labels: the value on the compacted ``label_decisions.current``.

    Key: the organisation id. Not an event but a snapshot: ``position`` is the
    label_decisions global position of the last decision it reflects, so a subscriber can
    load the snapshot and then follow ``label_decisions.events`` (or the HTTP feed),
    ignoring this organisation's events at or below ``position``.
    """

    org_id: str
    name: str | None = None
    country: str | None = None
    sector: str | None = None
    website: str | None = None
    labels: list[CurrentLabel]
    position: int
    as_of: date
