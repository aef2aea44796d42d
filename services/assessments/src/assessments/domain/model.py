"""Recording and approving assessments.

The facts about organisations and experts come from the other services' events, kept in
this service's tables (``OrgFacts``, ``ExpertFacts``); command functions check the rules
against them and return new events, or refuse naming every broken rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from assessments.domain.events import (
    AssessmentApproved,
    AssessmentEvent,
    BenchmarkingInterviewConducted,
    Conducted,
    GoldAssessmentConducted,
    IndicatorResult,
    ReliedCertification,
    SilverAuditConducted,
)
from assessments.domain.policy import AssessmentRules, CriteriaVersion, Kind
from clr_events.application.aggregate import StreamId, stream_id
from clr_events.months import add_months
from clr_events.rules import ConflictError, Violations

RATINGS = ("red", "yellow", "green")
MODES = ("on_site", "video")
SHARED_WITH_APPROVAL = {
    "assessment_id",
    "org_id",
    "kind",
    "level",
    "conducted_on",
    "expert_ids",
    "criteria_version",
}


def assessment_stream(assessment_id: str) -> StreamId:
    """The stream of an assessment."""
    return stream_id("assessment", assessment_id)


@dataclass(frozen=True)
class OrgFacts:
    """What the collaboration service told us about an organisation."""

    org_id: str
    country: str
    validated_on: date | None


@dataclass(frozen=True)
class Certification:
    """An expert's certification for a role, as the training service told us."""

    valid_from: date
    valid_until: date
    revoked_on: date | None = None
    certification_id: str | None = None
    """The training_certification event that created it (its event id)."""
    as_of_position: int | None = None
    """The training_certification position of the last event of it learned here."""

    def valid_on(self, day: date) -> bool:
        """In force on ``day``."""
        revoked = self.revoked_on is not None and self.revoked_on <= day
        return self.valid_from <= day <= self.valid_until and not revoked


@dataclass(frozen=True)
class ExpertFacts:
    """What the training and certification service told us about a person."""

    person_id: str
    country: str
    affiliations: frozenset[str]
    certifications: dict[str, Certification] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """The organisation and experts of an assessment being recorded (None: unknown)."""

    org_id: str
    org: OrgFacts | None
    expert_ids: tuple[str, ...]
    experts: dict[str, ExpertFacts]


def _check_subject(
    problems: Violations, subject: Subject, kind: Kind, on: date, rules: AssessmentRules
) -> None:
    """R1 (eligibility gate) and R9 (certified, impartial experts)."""
    org = subject.org
    if org is None:
        problems.add("R1", f"organisation {subject.org_id!r} is not known to the registry")
    elif on >= rules.eligibility_required_from and (
        org.validated_on is None or org.validated_on > on
    ):
        problems.add(
            "R1",
            f"organisation {subject.org_id!r} has no validated ECCP profile on {on.isoformat()}"
            f" (required since {rules.eligibility_required_from.isoformat()})",
        )
    if len(set(subject.expert_ids)) != len(subject.expert_ids):
        problems.add("R9", "an expert is named twice")
    for expert_id in subject.expert_ids:
        expert = subject.experts.get(expert_id)
        if expert is None:
            problems.add("R9", f"expert {expert_id!r} is not known to the registry")
            continue
        cert = expert.certifications.get(kind.expert_role)
        if cert is None or not cert.valid_on(on):
            problems.add(
                "R9",
                f"expert {expert_id!r} holds no valid {kind.expert_role} certification"
                f" on {on.isoformat()}",
            )
        if subject.org_id in expert.affiliations:
            problems.add(
                "R9", f"expert {expert_id!r} works for {subject.org_id!r} and cannot assess it"
            )


def _criteria(
    problems: Violations, kind: Kind, on: date, requested: str | None, rules: AssessmentRules
) -> CriteriaVersion | None:
    """R12: the indicator set in force on the day (a named one must be that one)."""
    in_force = rules.criteria_for(kind, on)
    if in_force is None:
        problems.add("R12", f"no {kind.value} indicator set is in force on {on.isoformat()}")
        return None
    if requested is not None and requested != in_force.name:
        known = rules.criteria_named(requested)
        why = "is unknown" if known is None else "is not in force on that day"
        problems.add(
            "R12",
            f"indicator set {requested!r} {why}; {on.isoformat()} uses {in_force.name!r}",
        )
    return in_force


def relied_on(subject: Subject, kind: Kind) -> tuple[ReliedCertification, ...]:
    """The certification each expert was checked against (R9), in the experts' order."""
    relied = []
    for expert_id in subject.expert_ids:
        expert = subject.experts.get(expert_id)
        cert = expert.certifications.get(kind.expert_role) if expert else None
        if cert is not None:
            relied.append(
                ReliedCertification(
                    expert_id=expert_id,
                    role=kind.expert_role,
                    valid_from=cert.valid_from,
                    valid_until=cert.valid_until,
                    certification_id=cert.certification_id,
                    as_of_position=cert.as_of_position,
                )
            )
    return tuple(relied)


def _common(
    kind: Kind,
    assessment_id: str,
    subject: Subject,
    on: date,
    mode: str,
    criteria: CriteriaVersion,
    rules: AssessmentRules,
) -> dict[str, object]:
    return {
        "assessment_id": assessment_id,
        "org_id": subject.org_id,
        "kind": kind.value,
        "level": kind.level,
        "conducted_on": on,
        "mode": mode,
        "expert_ids": subject.expert_ids,
        "criteria_version": criteria.name,
        "rules_version": rules.version,
        "certifications": relied_on(subject, kind),
    }


def record_bronze(
    *,
    assessment_id: str,
    subject: Subject,
    conducted_on: date,
    mode: str,
    ratings: list[str],
    criteria_version: str | None,
    rules: AssessmentRules,
) -> list[AssessmentEvent]:
    """R2: one certified benchmarking expert rates every indicator red, yellow or green.

    Raises:
        RuleViolationError: R1, R2, R9 or R12 refuses it.
    """
    kind = Kind.BRONZE
    problems = Violations()
    problems.check(
        len(subject.expert_ids) == 1, "R2", "a benchmarking interview has exactly one expert"
    )
    problems.check(mode in MODES, "R2", f"mode is one of {', '.join(MODES)}")
    _check_subject(problems, subject, kind, conducted_on, rules)
    criteria = _criteria(problems, kind, conducted_on, criteria_version, rules)
    if criteria is not None and len(ratings) != criteria.indicator_count:
        problems.add(
            "R2",
            f"{len(ratings)} indicators rated; {criteria.name} has {criteria.indicator_count}",
        )
    wrong = sorted({r for r in ratings if r not in RATINGS})
    problems.check(not wrong, "R2", f"ratings are red, yellow or green, not {wrong}")
    problems.raise_if_any()
    assert criteria is not None
    return [
        BenchmarkingInterviewConducted.model_validate(
            {
                **_common(kind, assessment_id, subject, conducted_on, mode, criteria, rules),
                "ratings": tuple(ratings),
            }
        )
    ]


@dataclass(frozen=True)
class EarlierAssessment:
    """An assessment of the same organisation already recorded here."""

    assessment_id: str
    org_id: str
    kind: Kind
    conducted_on: date
    approved_on: date | None


def record_silver(
    *,
    assessment_id: str,
    subject: Subject,
    conducted_on: date,
    mode: str,
    first: EarlierAssessment | None,
    second: EarlierAssessment | None,
    improvement_areas: list[str],
    areas_validated: list[bool],
    baseline_met: bool,
    criteria_version: str | None,
    rules: AssessmentRules,
) -> list[AssessmentEvent]:
    """R6: an on-site audit of three improvement areas after two benchmarkings of the
    organisation, the second 1.5 to 2 years after the first.

    Raises:
        RuleViolationError: R1, R6, R9 or R12 refuses it.
    """
    kind = Kind.SILVER
    problems = Violations()
    problems.check(len(subject.expert_ids) == 1, "R6", "a Silver audit has one auditor")
    problems.check(mode == "on_site", "R6", "a Silver audit is on site")
    _check_subject(problems, subject, kind, conducted_on, rules)
    criteria = _criteria(problems, kind, conducted_on, criteria_version, rules)
    _check_improvement_areas(problems, improvement_areas, areas_validated, rules)
    _check_benchmarkings(problems, subject, conducted_on, first, second, rules)
    problems.raise_if_any()
    assert criteria is not None and first is not None and second is not None
    return [
        SilverAuditConducted.model_validate(
            {
                **_common(kind, assessment_id, subject, conducted_on, mode, criteria, rules),
                "first_benchmarking_id": first.assessment_id,
                "first_benchmarking_on": first.conducted_on,
                "second_benchmarking_id": second.assessment_id,
                "improvement_areas": tuple(improvement_areas),
                "areas_validated": tuple(areas_validated),
                "baseline_met": baseline_met,
            }
        )
    ]


def _check_improvement_areas(
    problems: Violations,
    improvement_areas: list[str],
    areas_validated: list[bool],
    rules: AssessmentRules,
) -> None:
    """R6: the required number of different improvement areas, one verdict for each."""
    n = rules.improvement_areas
    problems.check(
        len(improvement_areas) == n and len(set(improvement_areas)) == n,
        "R6",
        f"exactly {n} different improvement areas, not {len(improvement_areas)}",
    )
    problems.check(
        len(areas_validated) == len(improvement_areas),
        "R6",
        "the auditor gives one verdict per improvement area",
    )


def _check_benchmarkings(
    problems: Violations,
    subject: Subject,
    conducted_on: date,
    first: EarlierAssessment | None,
    second: EarlierAssessment | None,
    rules: AssessmentRules,
) -> None:
    """R6: two Bronze benchmarkings of the organisation, the second the required months
    after the first, and the audit not before the second."""
    for label, earlier in (("first", first), ("second", second)):
        if earlier is None or earlier.kind is not Kind.BRONZE or earlier.org_id != subject.org_id:
            problems.add(
                "R6", f"the {label} benchmarking is not a Bronze benchmarking of this organisation"
            )
    if first is None or second is None:
        return
    low, high = rules.silver_gap_months
    earliest, latest = add_months(first.conducted_on, low), add_months(first.conducted_on, high)
    problems.check(
        earliest <= second.conducted_on <= latest,
        "R6",
        f"the second benchmarking ({second.conducted_on.isoformat()}) must fall"
        f" {low} to {high} months after the first ({first.conducted_on.isoformat()})",
    )
    problems.check(
        second.conducted_on <= conducted_on,
        "R6",
        "the audit cannot precede the second benchmarking",
    )


def record_gold(
    *,
    assessment_id: str,
    subject: Subject,
    conducted_on: date,
    indicators: list[IndicatorResult],
    score_pct: float,
    on_site_days: int,
    evidence_documents: int,
    earlier_golds: list[EarlierAssessment],
    criteria_version: str | None,
    rules: AssessmentRules,
) -> list[AssessmentEvent]:
    """R7: two experts, one national and one foreign, every indicator of the set assessed
    against its threshold, on site for the required days, with documentary evidence.
    Whether the result earns Gold is the label decision's (R7 thresholds).

    Raises:
        RuleViolationError: R1, R7, R9 or R12 refuses it.
    """
    kind = Kind.GOLD
    problems = Violations()
    _check_subject(problems, subject, kind, conducted_on, rules)
    criteria = _criteria(problems, kind, conducted_on, criteria_version, rules)
    _check_gold_experts(problems, subject, rules)
    _check_gold_indicators(problems, indicators, score_pct, criteria)
    renewal = _renews_gold(earlier_golds, conducted_on, rules)
    _check_days_on_site(problems, on_site_days, renewal, rules)
    problems.check(evidence_documents > 0, "R7", "a Gold assessment needs documentary evidence")
    problems.raise_if_any()
    assert criteria is not None
    return [
        GoldAssessmentConducted.model_validate(
            {
                **_common(kind, assessment_id, subject, conducted_on, "on_site", criteria, rules),
                "indicators": tuple(indicators),
                "indicators_passed": sum(i.score >= i.threshold for i in indicators),
                "score_pct": score_pct,
                "on_site_days": on_site_days,
                "evidence_documents": evidence_documents,
                "renewal": renewal,
            }
        )
    ]


def _check_gold_experts(problems: Violations, subject: Subject, rules: AssessmentRules) -> None:
    """R7: the required number of experts, one national and one foreign (checked once every
    expert and the organisation are known)."""
    problems.check(
        len(subject.expert_ids) == rules.gold_experts,
        "R7",
        f"a Gold assessment has {rules.gold_experts} experts, not {len(subject.expert_ids)}",
    )
    org = subject.org
    known = [subject.experts[e] for e in subject.expert_ids if e in subject.experts]
    if org is not None and len(known) == len(subject.expert_ids) == rules.gold_experts:
        national = sum(e.country == org.country for e in known)
        problems.check(
            national == 1,
            "R7",
            f"one expert must be national ({org.country}) and one foreign; {national} are national",
        )


def _check_gold_indicators(
    problems: Violations,
    indicators: list[IndicatorResult],
    score_pct: float,
    criteria: CriteriaVersion | None,
) -> None:
    """R7: every indicator of the set assessed once, and the total score a percentage."""
    if criteria is not None and len(indicators) != criteria.indicator_count:
        problems.add(
            "R7",
            f"{len(indicators)} indicators assessed; {criteria.name} has"
            f" {criteria.indicator_count}",
        )
    problems.check(
        len({i.code for i in indicators}) == len(indicators), "R7", "an indicator appears twice"
    )
    problems.check(0 <= score_pct <= 100, "R7", "the total score is a percentage")


def _renews_gold(
    earlier_golds: list[EarlierAssessment], conducted_on: date, rules: AssessmentRules
) -> bool:
    """R7: a renewal if an approved Gold assessment of the organisation was conducted before,
    within the lookback."""
    return any(
        g.approved_on is not None
        and g.conducted_on < conducted_on
        and add_months(g.conducted_on, rules.gold_renewal_lookback_months) >= conducted_on
        for g in earlier_golds
    )


def _check_days_on_site(
    problems: Violations, on_site_days: int, renewal: bool, rules: AssessmentRules
) -> None:
    """R7: the days on site a first Gold assessment, or a renewal, takes."""
    days = rules.gold_days_renewal if renewal else rules.gold_days_first
    problems.check(
        on_site_days >= days,
        "R7",
        f"a {'renewal' if renewal else 'first'} Gold assessment takes {days} day(s) on site,"
        f" not {on_site_days}",
    )


@dataclass
class Assessment:
    """A recorded assessment and its approval, rebuilt from its stream (the first event is
    the assessment conducted)."""

    conducted: Conducted
    approval: AssessmentApproved | None = None
    version: int = 1

    @classmethod
    def replay(cls, events: list[AssessmentEvent]) -> Assessment:
        """Rebuild from the stream."""
        first = events[0]
        assert isinstance(first, Conducted)
        assessment = cls(first)
        for event in events[1:]:
            assessment.apply(event)
        return assessment

    @property
    def stream(self) -> StreamId:
        """The assessment's stream."""
        return assessment_stream(self.conducted.assessment_id)

    def apply(self, event: AssessmentEvent) -> None:
        """Evolve by one later event."""
        if isinstance(event, AssessmentApproved):
            self.approval = event
        self.version += 1


def approve(
    assessment: Assessment,
    *,
    approved_on: date,
    approver: str,
    org: OrgFacts | None,
    approved_by: str | None = None,
) -> list[AssessmentEvent]:
    """The approving body approves a recorded assessment, once.

    ``approver`` is the approving body as the request names it; ``approved_by`` the person
    who approved (the command's actor).

    Raises:
        ConflictError: it is already approved.
        RuleViolationError: the approval would precede the assessment.
    """
    conducted = assessment.conducted
    if assessment.approval is not None:
        raise ConflictError(f"assessment {conducted.assessment_id!r} is already approved")
    problems = Violations()
    problems.check(bool(approver.strip()), "approval", "the approving body is named")
    problems.check(
        approved_on >= conducted.conducted_on,
        "approval",
        f"an approval cannot precede the assessment ({conducted.conducted_on.isoformat()})",
    )
    problems.raise_if_any()
    outcome: dict[str, object] = {}
    match conducted:
        case BenchmarkingInterviewConducted():
            outcome = {"indicator_count": len(conducted.ratings)}
        case SilverAuditConducted():
            outcome = {
                "indicator_count": 0,
                "improvement_areas_validated": conducted.areas_validated,
                "baseline_met": conducted.baseline_met,
                "follows_benchmarking_on": conducted.first_benchmarking_on,
                "on_site_days": 1,
            }
        case GoldAssessmentConducted():
            outcome = {
                "indicator_count": len(conducted.indicators),
                "indicators_passed": conducted.indicators_passed,
                "score_pct": conducted.score_pct,
                "on_site_days": conducted.on_site_days,
                "evidence_documents": conducted.evidence_documents,
            }
    return [
        AssessmentApproved.model_validate(
            {
                **conducted.model_dump(include=SHARED_WITH_APPROVAL),
                "approved_on": approved_on,
                "approver": approver.strip(),
                "approved_by": approved_by,
                "certifications": conducted.certifications,
                "profile_validated_on": org.validated_on if org else None,
                **outcome,
            }
        )
    ]
