"""The label record of one organisation at one level (R10: at most one per pair).

Command methods check the rules and return new events without changing state; ``apply``
is the one place state evolves, for new events and for replay alike. Status is never
stored: it is derived from the dates (R10).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from clr_events import labels
from clr_events.application.aggregate import StreamId, stream_id
from clr_events.labels import LabelStatus, Period, Periods
from clr_events.rules import RuleViolation, Violations
from label_decisions.domain.events import (
    LabelAwarded,
    LabelEvent,
    LabelExpired,
    LabelRecordCorrected,
    LabelRefused,
    LabelRenewed,
    LabelWithdrawn,
    Refusal,
    ReliedCertification,
)
from label_decisions.domain.policy import (
    DecisionPolicy,
    Level,
    earliest_renewal,
    first_valid_until,
    renewal_deadline,
    renewed_valid_until,
)

Status = LabelStatus
"""A label's state on a day, derived from its dates (R10: ``clr_events.labels``)."""


@dataclass(frozen=True)
class Outcome:
    """The results a decision rests on (restricted: they never reach a public contract)."""

    indicator_count: int | None = None
    indicators_passed: int | None = None
    score_pct: float | None = None
    on_site_days: int | None = None
    evidence_documents: int | None = None
    improvement_areas_validated: tuple[bool, ...] | None = None
    baseline_met: bool | None = None


@dataclass(frozen=True)
class ApprovedAssessment:
    """What the decision needs of an approved assessment."""

    assessment_id: str
    org_id: str
    level: Level
    assessed_on: date
    approved_on: date
    expert_ids: tuple[str, ...]
    outcome: Outcome = field(default_factory=Outcome)
    approved_by: str | None = None
    """The person who approved (None: an approval recorded before it was carried)."""
    certifications: tuple[ReliedCertification, ...] | None = None
    """The certification relied on for each expert (None: not carried)."""


def check_outcome(
    found: Violations, assessment: ApprovedAssessment, policy: DecisionPolicy
) -> None:
    """R2, R6, R7: whether the approved results earn the level."""
    o = assessment.outcome
    match assessment.level:
        case Level.BRONZE:
            if o.indicator_count != policy.bronze_indicator_count:
                found.add(
                    "R2",
                    f"a Bronze benchmarking rates {policy.bronze_indicator_count} indicators,"
                    f" this one {o.indicator_count or 0}",
                )
        case Level.SILVER:
            areas = o.improvement_areas_validated or ()
            if len(areas) != policy.silver_improvement_areas or not all(areas):
                found.add(
                    "R6",
                    f"Silver needs all {policy.silver_improvement_areas} improvement areas"
                    f" validated; {sum(areas)} of {len(areas)} were",
                )
            if not o.baseline_met:
                found.add("R6", "Silver needs every baseline minimum requirement met")
        case Level.GOLD:
            needed = policy.gold_indicator_count
            if o.indicator_count != needed or o.indicators_passed != needed:
                found.add(
                    "R7",
                    f"Gold needs all {needed} indicators at or above their threshold;"
                    f" {o.indicators_passed or 0} of {o.indicator_count or 0} passed",
                )
            if o.score_pct is None or o.score_pct < policy.gold_min_score_pct:
                found.add(
                    "R7",
                    f"Gold needs a total score of at least {policy.gold_min_score_pct:g} %,"
                    f" this one is {o.score_pct if o.score_pct is not None else 'missing'}",
                )
            if not o.evidence_documents:
                found.add("R7", "Gold needs documentary evidence")


RENEWAL_RULE = {Level.BRONZE: "R4", Level.SILVER: "R5", Level.GOLD: "R8"}
"""The rule that governs renewals of each level."""


def record_stream(org_id: str, level: Level) -> StreamId:
    """The record's stream: one per organisation and level (``<org_id>:<level>``)."""
    return stream_id("", org_id, level.value)


@dataclass
class LabelRecord:
    """State rebuilt from a record's events."""

    org_id: str
    level: Level
    version: int = 0
    valid_until: date | None = None
    current_since: date | None = None
    withdrawn_on: date | None = None
    expired_until: date | None = None
    renewal_deadline: date | None = None
    decided_assessments: set[str] = field(default_factory=set)
    periods: Periods = ()
    """The stretches of validity its events made (R10 on a past day: ``clr_events.labels``)."""

    @property
    def stream(self) -> StreamId:
        """The record's stream."""
        return record_stream(self.org_id, self.level)

    # ----------------------------------------------------------------- queries
    def deadline(self, policy: DecisionPolicy) -> date | None:
        """The last day an assessment renews the label: as its decision recorded it (a
        decision recorded before decisions carried it: from ``policy``)."""
        if self.renewal_deadline is not None or self.valid_until is None:
            return self.renewal_deadline
        return renewal_deadline(policy, self.level, self.valid_until)

    def period_on(self, on: date, policy: DecisionPolicy) -> Period | None:
        """The period of validity that governs ``on`` (None: no label yet), its renewal
        deadline as its decision recorded it (one recorded before decisions carried it:
        from ``policy``)."""
        period = labels.period_on(self.periods, on)
        if period is None or period.renewal_deadline is not None:
            return period
        return replace(
            period, renewal_deadline=renewal_deadline(policy, self.level, period.valid_until)
        )

    def status(self, on: date, policy: DecisionPolicy) -> Status:
        """R10: valid, in renewal window, expired, withdrawn, or none, on a day, from the
        record's history (the period that governs the day)."""
        period = self.period_on(on, policy)
        return labels.status_on((period,) if period is not None else (), on)

    # ---------------------------------------------------------------- commands
    def decide(
        self,
        assessment: ApprovedAssessment,
        *,
        eligible: bool,
        policy: DecisionPolicy,
        decided_by: str,
    ) -> list[LabelEvent]:
        """Award or renew on an approved assessment; [] if it was decided before.

        Raises:
            RuleViolationError: the rules refuse a label; every violated rule is named.
        """
        if assessment.assessment_id in self.decided_assessments:
            return []
        violations = Violations()
        self._check_assessment(violations, assessment, eligible=eligible, policy=policy)
        renewing = self._renews(assessment, policy)
        self._check_timing(violations, assessment, policy, renewing)
        violations.raise_if_any()
        if renewing:
            return [self._renewed(assessment, policy, decided_by)]
        return [self._awarded(assessment, policy, decided_by)]

    def refuse(
        self,
        assessment: ApprovedAssessment,
        violations: list[RuleViolation],
        *,
        policy: DecisionPolicy,
        decided_by: str,
    ) -> list[LabelEvent]:
        """Record that an approved assessment earned no label ([] if decided before)."""
        if assessment.assessment_id in self.decided_assessments:
            return []
        return [
            LabelRefused(
                org_id=self.org_id,
                level=self.level.value,
                assessment_id=assessment.assessment_id,
                assessed_on=assessment.assessed_on,
                refused_on=assessment.approved_on,
                violations=tuple(Refusal(rule=v.rule, message=v.message) for v in violations),
                expert_ids=assessment.expert_ids,
                policy_version=policy.version,
                policy_fingerprint=policy.fingerprint,
                decided_by=decided_by,
                approved_by=assessment.approved_by,
                certifications=assessment.certifications,
            )
        ]

    def expire(self, today: date, policy: DecisionPolicy | None = None) -> list[LabelEvent]:
        """Record the expiry once ``valid_until`` has passed; [] otherwise (idempotent)."""
        if (
            self.valid_until is None
            or self.withdrawn_on is not None
            or today <= self.valid_until
            or self.expired_until == self.valid_until
        ):
            return []
        return [
            LabelExpired(
                org_id=self.org_id,
                level=self.level.value,
                valid_until=self.valid_until,
                expired_on=self.valid_until + timedelta(days=1),
                policy_version=policy.version if policy else None,
            )
        ]

    def withdraw(
        self, *, reason: str, by: str, on: date, policy: DecisionPolicy | None = None
    ) -> list[LabelEvent]:
        """The board withdraws a current label, with a reason.

        Raises:
            RuleViolationError: there is no label to withdraw, or no reason was given.
        """
        violations = Violations()
        if self.valid_until is None or self.withdrawn_on is not None:
            violations.add("R10", "there is no current label to withdraw")
        if not reason.strip():
            violations.add("R15", "a withdrawal needs a reason")
        violations.raise_if_any()
        return [
            LabelWithdrawn(
                org_id=self.org_id,
                level=self.level.value,
                reason=reason.strip(),
                withdrawn_on=on,
                withdrawn_by=by,
                policy_version=policy.version if policy else None,
            )
        ]

    def correct(
        self, *, valid_until: date, reason: str, by: str, policy: DecisionPolicy
    ) -> list[LabelEvent]:
        """R15: correct the validity with a compensating event, never by rewriting.

        Raises:
            RuleViolationError: nothing to correct, no change, or no reason.
        """
        violations = Violations()
        if self.valid_until is None:
            violations.add("R15", "there is no label record to correct")
        elif valid_until == self.valid_until:
            violations.add("R15", "the correction changes nothing")
        if not reason.strip():
            violations.add("R15", "a correction needs a reason")
        violations.raise_if_any()
        assert self.valid_until is not None
        return [
            LabelRecordCorrected(
                org_id=self.org_id,
                level=self.level.value,
                previous_valid_until=self.valid_until,
                valid_until=valid_until,
                renewal_deadline=renewal_deadline(policy, self.level, valid_until),
                reason=reason.strip(),
                corrected_by=by,
                policy_version=policy.version,
            )
        ]

    def _check_assessment(
        self,
        found: Violations,
        assessment: ApprovedAssessment,
        *,
        eligible: bool,
        policy: DecisionPolicy,
    ) -> None:
        """R10: the assessment is of this record; R1: the organisation eligible on the day;
        R2 / R6 / R7: its results earn the level, approved no earlier than assessed."""
        if assessment.org_id != self.org_id or assessment.level is not self.level:
            found.add("R10", "the assessment is for another organisation or level")
        if assessment.assessed_on >= policy.eligibility_required_from and not eligible:
            found.add(
                "R1",
                "the organisation does not meet the eligibility criteria"
                " (validated ECCP profile) required since"
                f" {policy.eligibility_required_from.isoformat()}",
            )
        check_outcome(found, assessment, policy)
        if assessment.approved_on < assessment.assessed_on:
            found.add("R7", "approval cannot precede the assessment")

    def _check_timing(
        self,
        found: Violations,
        assessment: ApprovedAssessment,
        policy: DecisionPolicy,
        renewing: bool,
    ) -> None:
        """R4: a renewal not of an assessment before the current validity began; R4 / R5 /
        R8: a renewal not too early; R7: Gold's days on site, first or renewal, from this
        record (an earlier Gold assessment the board refused renews nothing)."""
        if renewing:
            assert self.valid_until is not None
            if self.current_since is not None and assessment.assessed_on < self.current_since:
                found.add(
                    "R4",
                    f"the assessment of {assessment.assessed_on.isoformat()} precedes the"
                    f" current validity, which began {self.current_since.isoformat()}",
                )
            earliest = earliest_renewal(policy, self.level, self.valid_until)
            if earliest is not None and assessment.assessed_on < earliest:
                found.add(
                    RENEWAL_RULE[self.level],
                    f"a renewal is assessed on or after {earliest.isoformat()}"
                    f" ({policy.rules(self.level).renewal_earliest_months} months before"
                    f" the label's validity ends on {self.valid_until.isoformat()});"
                    f" this one was assessed {assessment.assessed_on.isoformat()}",
                )
        if self.level is Level.GOLD:
            days = policy.gold_days_renewal if renewing else policy.gold_days_first
            held = assessment.outcome.on_site_days
            if days is not None and (held or 0) < days:
                what = "a renewal of a current Gold label" if renewing else "a first Gold award"
                found.add(
                    "R7", f"{what} needs {days} day(s) on site; this assessment had {held or 0}"
                )

    def _renews(self, assessment: ApprovedAssessment, policy: DecisionPolicy) -> bool:
        if self.valid_until is None or self.withdrawn_on is not None:
            return False
        # the deadline the status shows (R10, as the decision recorded it): the same day
        # decides whether an assessment renews; after the window, a benchmarking is a new
        # first award (R4, design assumption)
        deadline = self.deadline(policy)
        return deadline is not None and assessment.assessed_on <= deadline

    def _decided(
        self, assessment: ApprovedAssessment, policy: DecisionPolicy, decided_by: str
    ) -> dict[str, object]:
        """The fields of an award or a renewal that name the record and the decision."""
        return {
            "org_id": self.org_id,
            "level": self.level.value,
            "assessment_id": assessment.assessment_id,
            "assessed_on": assessment.assessed_on,
            "expert_ids": assessment.expert_ids,
            "policy_version": policy.version,
            "policy_fingerprint": policy.fingerprint,
            "decided_by": decided_by,
            "approved_by": assessment.approved_by,
            "certifications": assessment.certifications,
        }

    def _renewed(
        self, assessment: ApprovedAssessment, policy: DecisionPolicy, decided_by: str
    ) -> LabelRenewed:
        """The renewal, as of the approval: the validity extended without a gap."""
        assert self.valid_until is not None
        valid_until = renewed_valid_until(
            policy, self.level, self.valid_until, assessment.assessed_on
        )
        return LabelRenewed(
            **self._decided(assessment, policy, decided_by),
            renewed_on=assessment.approved_on,
            previous_valid_until=self.valid_until,
            valid_until=valid_until,
            renewal_deadline=renewal_deadline(policy, self.level, valid_until),
        )

    def _awarded(
        self, assessment: ApprovedAssessment, policy: DecisionPolicy, decided_by: str
    ) -> LabelAwarded:
        """A first award, as of the approval: the validity counted from the assessment."""
        valid_until = first_valid_until(policy, self.level, assessment.assessed_on)
        return LabelAwarded(
            **self._decided(assessment, policy, decided_by),
            awarded_on=assessment.approved_on,
            valid_until=valid_until,
            renewal_deadline=renewal_deadline(policy, self.level, valid_until),
        )

    # ------------------------------------------------------------------ evolve
    def apply(self, event: LabelEvent) -> None:
        """Evolve the state by one event (new or replayed)."""
        match event:
            case LabelAwarded():
                self.periods = labels.awarded(
                    self.periods, event.awarded_on, event.valid_until, event.renewal_deadline
                )
                self.valid_until = event.valid_until
                self.renewal_deadline = event.renewal_deadline
                self.current_since = event.assessed_on.replace(day=1)
                self.withdrawn_on = None
                self.expired_until = None
                self.decided_assessments.add(event.assessment_id)
            case LabelRenewed():
                self.periods = labels.renewed(
                    self.periods, event.renewed_on, event.valid_until, event.renewal_deadline
                )
                self.valid_until = event.valid_until
                self.renewal_deadline = event.renewal_deadline
                self.decided_assessments.add(event.assessment_id)
            case LabelRefused():
                self.decided_assessments.add(event.assessment_id)
            case LabelExpired():
                self.expired_until = event.valid_until
            case LabelWithdrawn():
                self.periods = labels.withdrawn(self.periods, event.withdrawn_on)
                self.withdrawn_on = event.withdrawn_on
            case LabelRecordCorrected():
                self.periods = labels.corrected(
                    self.periods, event.valid_until, event.renewal_deadline
                )
                self.valid_until = event.valid_until
                self.renewal_deadline = event.renewal_deadline
        self.version += 1

    def copy(self) -> LabelRecord:
        """A copy whose later changes leave this record as it is."""
        return replace(self, decided_assessments=set(self.decided_assessments))

    @classmethod
    def replay(cls, org_id: str, level: Level, events: list[LabelEvent]) -> LabelRecord:
        """Rebuild a record from its stored events."""
        record = cls(org_id, level)
        for event in events:
            record.apply(event)
        return record
