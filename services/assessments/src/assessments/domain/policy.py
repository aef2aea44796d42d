"""Assessment rules that are settings: indicator-set versions (R12) and procedure figures.

Sourced (shared/domain.md, section 7.4): Bronze rates 36 indicators (R2); Silver needs a
previous Bronze, a second benchmarking 1.5 to 2 years after the first, three improvement
areas and an on-site audit (R6); Gold assesses 31 indicators with two experts, one
national and one foreign, on site for 2 days (1 for a renewal within a year of expiry)
with documentary evidence (R7); eligibility gates every assessment since 2019-11-15 (R1).
The indicator sets were revised (Bronze 2019, Gold 2020); the day each revision came into
force is a design assumption, so it is data here, as is the whole rule set's version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from clr_events.application.aggregate import Policies


class Kind(StrEnum):
    """What was assessed, and the label level it can lead to."""

    BRONZE = "bronze_benchmarking"
    SILVER = "silver_audit"
    GOLD = "gold_assessment"

    @property
    def level(self) -> str:
        """The label level of this kind."""
        return {"bronze_benchmarking": "bronze", "silver_audit": "silver"}.get(self.value, "gold")

    @property
    def expert_role(self) -> str:
        """The certification an expert needs to conduct this kind (R9)."""
        return {
            "bronze_benchmarking": "benchmarking_expert",
            "silver_audit": "silver_auditor",
        }.get(self.value, "gold_assessor")


@dataclass(frozen=True)
class CriteriaVersion:
    """One version of an indicator set, in force over a period (R12)."""

    name: str
    kind: Kind
    in_force_from: date
    in_force_until: date | None
    indicator_count: int

    def in_force(self, day: date) -> bool:
        """Whether assessments on ``day`` use this version."""
        return self.in_force_from <= day and (
            self.in_force_until is None or day <= self.in_force_until
        )


@dataclass(frozen=True)
class AssessmentRules:
    """A versioned set of procedure rules and indicator sets."""

    version: str
    eligibility_required_from: date
    criteria: tuple[CriteriaVersion, ...]
    silver_gap_months: tuple[int, int]
    improvement_areas: int
    gold_experts: int
    gold_days_first: int
    gold_days_renewal: int
    gold_renewal_lookback_months: int
    """A Gold assessment may be a renewal (and take ``gold_days_renewal``) only when an
    approved Gold assessment of the organisation was conducted within this many months
    before (its 24 months of validity plus the one-year window: R7, R8). This is the early
    check the assessment can make; whether a Gold label record is really renewed, and so
    how many days R7 asks, is decided by the label decision from that record (an approved
    assessment the decision refused earned no label and renews nothing)."""

    def criteria_for(self, kind: Kind, day: date) -> CriteriaVersion | None:
        """The indicator set in force for ``kind`` on ``day``."""
        return next((c for c in self.criteria if c.kind is kind and c.in_force(day)), None)

    def criteria_named(self, name: str) -> CriteriaVersion | None:
        """An indicator set by name."""
        return next((c for c in self.criteria if c.name == name), None)


RULES_2026_1 = AssessmentRules(
    version="2026.1",
    eligibility_required_from=date(2019, 11, 15),
    criteria=(
        CriteriaVersion("bronze-2012", Kind.BRONZE, date(2009, 1, 1), date(2018, 12, 31), 36),
        CriteriaVersion("bronze-2019", Kind.BRONZE, date(2019, 1, 1), None, 36),
        CriteriaVersion("silver-2016", Kind.SILVER, date(2009, 1, 1), date(2018, 12, 31), 36),
        CriteriaVersion("silver-2019", Kind.SILVER, date(2019, 1, 1), None, 36),
        CriteriaVersion("gold-2013", Kind.GOLD, date(2009, 1, 1), date(2019, 12, 31), 31),
        CriteriaVersion("gold-2020", Kind.GOLD, date(2020, 1, 1), None, 31),
    ),
    silver_gap_months=(18, 24),
    improvement_areas=3,
    gold_experts=2,
    gold_days_first=2,
    gold_days_renewal=1,
    gold_renewal_lookback_months=36,
)
"""The current rules. A new reading of the sources is a new version, not an edit."""


POLICIES: Policies[AssessmentRules] = Policies(
    "assessment rules", {RULES_2026_1.version: RULES_2026_1}, RULES_2026_1.version
)
"""Assessment rules by version (``CLR_ASSESSMENT_RULES_VERSION``)."""
