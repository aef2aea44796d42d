"""The label decision policy: versioned rules that turn an approved assessment into a label.

Sourced rules (shared/domain.md, section 7.4):

- R3: a first Bronze or Silver label is valid for two years from the *month* of the
  interview or assessment.
- R4: a Bronze label can be renewed by a benchmarking held no later than one year after
  it expired; the validity then extends seamlessly by three years from the previous
  ``valid_until``. After that window a benchmarking counts as a new first award.
- R5: Silver has the same one-year renewal window; the extension length is unconfirmed.
- R8: Gold is valid two years; its renewal rule is unconfirmed.
- R1: since 2019-11-15 no label is awarded without the eligibility criteria.

What the sources leave open is a setting of the policy, never a constant: the day a
validity ends within its month (design assumption), the Silver and Gold renewal
extensions, and how early a renewal may come. Every decision records the policy version
that made it, so the history can be re-decided under another policy and compared.

Versions are immutable: a changed rule is a new version, and every version that ever
decided stays here, so its decisions can be re-derived.

- 2026.1: R1 to R8 as above. It set no earliest renewal, so a record could be renewed
  again and again long before its expiry (four Bronze renewals within ten weeks extended
  one label to 2035), and it left R7's days on site to the assessment, which counted any
  approved Gold assessment, even one the board's decision refused, as a label to renew.
- 2026.2: adds the earliest renewal (six months before ``valid_until``, every level) and
  decides R7's days on site from the Gold label record itself (2 days for a first award,
  1 for a renewal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import cached_property

from clr_events.application.aggregate import Policies
from clr_events.application.fingerprint import fingerprint
from clr_events.months import add_months, end_of_month


class Level(StrEnum):
    """The three label levels."""

    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


class MonthEnd(StrEnum):
    """Which day a validity counted in months ends on (R3's day convention: an assumption).

    ``SAME_MONTH``: the last day of the month N months after the assessment month
    (interview in March 2024, 24 months: valid until 2026-03-31).
    ``PREVIOUS_MONTH``: the last day of the month before it (2026-02-29 would not exist:
    2026-02-28), for readings of "two years from the month" that count the assessment
    month itself as the first.
    """

    SAME_MONTH = "same_month"
    PREVIOUS_MONTH = "previous_month"


@dataclass(frozen=True)
class LevelRules:
    """The validity rules of one level.

    Attributes:
        first_validity_months: validity of a first award, from the assessment month (R3, R8).
        renewal_window_months: how long after ``valid_until`` a renewal is still accepted
            (R4, R5); None: no renewal, every assessment is a first award.
        renewal_extension_months: how far a renewal extends the previous ``valid_until``
            (R4: 36 for Bronze); None: unconfirmed, so a renewal is valid like a first
            award from its assessment month, but never ends before the previous validity.
        renewal_earliest_months: how long before ``valid_until`` a renewal's assessment may
            be held at the earliest; an earlier one is refused. None: no bound (2026.1).
            The sources name only the latest renewal; without a bound, renewals far ahead
            of the expiry each extend the validity again. Six months (design assumption):
            Silver's second benchmarking, held 18 to 24 months after the first (R6), is
            also the renewal of a Bronze valid 24 months, so it must be accepted six months
            before that Bronze expires; nothing in the sources renews any earlier.
    """

    first_validity_months: int
    renewal_window_months: int | None
    renewal_extension_months: int | None
    renewal_earliest_months: int | None = None


@dataclass(frozen=True)
class DecisionPolicy:
    """A versioned set of rules; decisions record ``version``."""

    version: str
    month_end: MonthEnd
    eligibility_required_from: date
    levels: dict[Level, LevelRules] = field(default_factory=dict)
    bronze_indicator_count: int = 36
    """R2: indicators a Bronze benchmarking rates."""
    silver_improvement_areas: int = 3
    """R6: improvement areas a Silver audit validates."""
    gold_indicator_count: int = 31
    """R7: indicators a Gold assessment passes, each against its threshold."""
    gold_min_score_pct: float = 80.0
    """R7: the total score Gold needs."""
    gold_days_first: int | None = None
    """R7: days on site a first Gold award needs; None: not checked here (2026.1 left it to
    the assessment)."""
    gold_days_renewal: int | None = None
    """R7: days on site a Gold renewal (a current Gold label, or one in its renewal window)
    needs; None: not checked here."""
    statements: tuple[tuple[str, str], ...] = ()
    """The rules as this version applies them: (rule id, text), part of the fingerprint."""

    @cached_property
    def fingerprint(self) -> str:
        """``sha256:`` digest of the canonical JSON of every setting and rule text
        (``clr_events.application.fingerprint``): what each decision records."""
        return fingerprint(self)

    def rules(self, level: Level) -> LevelRules:
        """The rules of one level."""
        return self.levels[level]


_COMMON_RULES: tuple[tuple[str, str], ...] = (
    (
        "R1",
        "An assessment held on or after eligibility_required_from earns a label only if the"
        " organisation's profile was validated on or before the assessment day.",
    ),
    ("R2", "A Bronze benchmarking rates exactly bronze_indicator_count indicators."),
    (
        "R3",
        "A first award is valid first_validity_months from the month of the assessment,"
        " ending on the last day of a month as month_end says.",
    ),
    (
        "R4",
        "An assessment held no later than renewal_window_months after valid_until renews"
        " the label, never one held before the current validity began; a renewal extends"
        " valid_until by renewal_extension_months without a gap (none set: valid as a first"
        " award from the assessment month, never ending before the previous validity);"
        " after the window an assessment is a first award.",
    ),
    ("R5", "Silver renews as R4 says."),
    (
        "R6",
        "Silver needs all silver_improvement_areas improvement areas validated and every"
        " baseline minimum requirement met.",
    ),
    (
        "R7",
        "Gold needs all gold_indicator_count indicators at or above their thresholds, a"
        " total score of at least gold_min_score_pct, documentary evidence, and an approval"
        " no earlier than the assessment.",
    ),
    ("R8", "Gold renews as R4 says."),
    (
        "R10",
        "One label record per organisation and level; an approved assessment is decided"
        " once; an assessment that breaks a rule earns a refusal naming every rule broken.",
    ),
)

POLICY_2026_1 = DecisionPolicy(
    version="2026.1",
    month_end=MonthEnd.SAME_MONTH,
    eligibility_required_from=date(2019, 11, 15),
    levels={
        # R3 + R4: sourced (cluster-analysis.org, benchmarked-clusters)
        Level.BRONZE: LevelRules(24, 12, 36),
        # R3 + R5: window sourced, extension unconfirmed
        Level.SILVER: LevelRules(24, 12, None),
        # R8: two years sourced (GCE Ocean 2021); renewal within a year of expiry is priced
        # by ESCA; the extension is unconfirmed
        Level.GOLD: LevelRules(24, 12, None),
    },
    statements=_COMMON_RULES,
)
"""The first policy: no earliest renewal, R7's days on site left to the assessment."""

POLICY_2026_2 = DecisionPolicy(
    version="2026.2",
    month_end=MonthEnd.SAME_MONTH,
    eligibility_required_from=date(2019, 11, 15),
    levels={
        Level.BRONZE: LevelRules(24, 12, 36, renewal_earliest_months=6),
        Level.SILVER: LevelRules(24, 12, None, renewal_earliest_months=6),
        Level.GOLD: LevelRules(24, 12, None, renewal_earliest_months=6),
    },
    # R7, sourced (ESCA pricing): 2 full days the first time, 1 for a renewal of a Gold
    # label within the first year after its expiry
    gold_days_first=2,
    gold_days_renewal=1,
    statements=(
        *_COMMON_RULES,
        (
            "R4",
            "A renewal assessed earlier than renewal_earliest_months before valid_until is"
            " refused.",
        ),
        (
            "R7",
            "Gold needs gold_days_first days on site for a first award and"
            " gold_days_renewal for a renewal of the Gold label record, decided from that"
            " record.",
        ),
    ),
)
"""The current policy. A new reading of the sources is a new version, not an edit."""

POLICIES: Policies[DecisionPolicy] = Policies(
    "decision policy",
    {policy.version: policy for policy in (POLICY_2026_1, POLICY_2026_2)},
    POLICY_2026_2.version,
)
"""Every policy version a deployment can choose (``CLR_DECISION_POLICY_VERSION``)."""


def first_valid_until(policy: DecisionPolicy, level: Level, assessed_on: date) -> date:
    """R3 / R8: the end of a first award's validity, counted from the assessment month."""
    months = policy.rules(level).first_validity_months
    if policy.month_end is MonthEnd.PREVIOUS_MONTH:
        months -= 1
    return end_of_month(add_months(assessed_on.replace(day=1), months))


def renewal_deadline(policy: DecisionPolicy, level: Level, valid_until: date) -> date | None:
    """R4 / R5: the last day on which an assessment still renews a label (None: never)."""
    window = policy.rules(level).renewal_window_months
    return None if window is None else add_months(valid_until, window)


def earliest_renewal(policy: DecisionPolicy, level: Level, valid_until: date) -> date | None:
    """The first day on which an assessment may renew a label (None: no bound)."""
    earliest = policy.rules(level).renewal_earliest_months
    return None if earliest is None else add_months(valid_until, -earliest)


def renewed_valid_until(
    policy: DecisionPolicy, level: Level, previous_valid_until: date, assessed_on: date
) -> date:
    """R4 / R5 / R8: the validity after a renewal (seamless: no gap, no reset)."""
    extension = policy.rules(level).renewal_extension_months
    if extension is None:
        return max(previous_valid_until, first_valid_until(policy, level, assessed_on))
    extended = add_months(previous_valid_until, extension)
    # a validity that ended on a month's last day keeps ending on one
    return (
        end_of_month(extended)
        if previous_valid_until == end_of_month(previous_valid_until)
        else extended
    )
