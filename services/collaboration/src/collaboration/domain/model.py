"""Aggregates of the collaboration service: organisation profiles, partnerships,
cooperation agreements, matchmaking events.

Command functions check the rules against the state rebuilt from events and return new
events; they never change state. A refusal names every broken rule (``RuleViolationError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from clr_events.application.aggregate import StreamId, stream_id
from clr_events.rules import Violations
from collaboration.domain.events import (
    CollaborationEvent,
    CooperationAgreementSigned,
    MatchmakingEventHeld,
    OrganisationRegistered,
    PartnerJoined,
    PartnershipFormed,
    ProfileFigures,
    ProfileFiguresUpdated,
    ProfileValidated,
)
from collaboration.domain.policy import STRANDS, ListingCriteria, PartnershipRules, is_country


# ------------------------------------------------------------------- stream ids
def organisation_stream(org_id: str) -> StreamId:
    """The stream of an organisation's profile."""
    return stream_id("organisation", org_id)


def partnership_stream(partnership_id: str) -> StreamId:
    """The stream of a partnership."""
    return stream_id("partnership", partnership_id)


def agreement_stream(agreement_id: str) -> StreamId:
    """The stream of a cooperation agreement."""
    return stream_id("agreement", agreement_id)


def matchmaking_stream(event_id: str) -> StreamId:
    """The stream of a matchmaking event."""
    return stream_id("matchmaking", event_id)


# ------------------------------------------------------------------ organisations
@dataclass
class Organisation:
    """A cluster organisation's profile, rebuilt from its events (its stream's first event
    is the registration)."""

    registered: OrganisationRegistered
    figures: ProfileFigures
    validated: ProfileValidated | None = None
    version: int = 1

    @classmethod
    def replay(cls, events: list[CollaborationEvent]) -> Organisation:
        """Rebuild from the stream."""
        first = events[0]
        assert isinstance(first, OrganisationRegistered)
        org = cls(first, first.figures)
        for event in events[1:]:
            org.apply(event)
        return org

    @property
    def stream(self) -> StreamId:
        """The organisation's stream."""
        return organisation_stream(self.registered.org_id)

    def apply(self, event: CollaborationEvent) -> None:
        """Evolve by one later event."""
        match event:
            case ProfileFiguresUpdated():
                self.figures = event.figures
            case ProfileValidated():
                self.validated = event
        self.version += 1

    @property
    def country(self) -> str:
        """ISO 3166-1 alpha-2."""
        return self.registered.country


def register_organisation(
    *,
    org_id: str,
    name: str,
    country: str,
    region: str | None,
    website: str | None,
    sector: str,
    eccp_profile_id: str | None,
    figures: ProfileFigures,
) -> list[CollaborationEvent]:
    """Register a profile (its validation is a separate step, R13)."""
    problems = Violations()
    problems.check(bool(name.strip()), "profile", "the organisation needs a name")
    problems.check(is_country(country), "profile", f"{country!r} is not an ISO 3166-1 alpha-2 code")
    problems.check(
        bool(sector.strip()), "profile", "the sector (comparative portfolio) is required"
    )
    _check_figures(problems, figures)
    problems.raise_if_any()
    return [
        OrganisationRegistered(
            org_id=org_id,
            name=name.strip(),
            country=country,
            region=region,
            website=website,
            sector=sector.strip(),
            eccp_profile_id=eccp_profile_id,
            figures=figures,
        )
    ]


def _check_figures(problems: Violations, figures: ProfileFigures) -> None:
    problems.check(figures.management_fte >= 0, "profile", "management FTE cannot be negative")
    problems.check(figures.committed_members >= 0, "profile", "members cannot be negative")


def update_figures(org: Organisation, figures: ProfileFigures) -> list[CollaborationEvent]:
    """Record new profile figures ([] if unchanged)."""
    problems = Violations()
    _check_figures(problems, figures)
    problems.raise_if_any()
    if figures == org.figures:
        return []
    return [ProfileFiguresUpdated(org_id=org.registered.org_id, figures=figures)]


def validate_profile(
    org: Organisation, *, on: date, criteria: ListingCriteria, waive: bool
) -> list[CollaborationEvent]:
    """R13: validate the profile, naming every criterion it fails ([] if already validated).

    ``waive``: the validator applies the programme waiver; the profile must name the
    recognised cluster programme it rests on.
    """
    if org.validated is not None:
        return []
    problems = Violations()
    figures = org.figures
    if waive:
        problems.check(
            bool(figures.cluster_programme),
            "R13",
            "a waiver needs the recognised cluster programme the organisation belongs to",
        )
    else:
        problems.check(
            figures.management_fte >= criteria.min_management_fte,
            "R13",
            f"dedicated cluster management of at least {criteria.min_management_fte} FTE"
            f" is required (profile: {figures.management_fte})",
        )
        problems.check(
            figures.committed_members >= criteria.min_committed_members,
            "R13",
            f"at least {criteria.min_committed_members} committed members are required"
            f" (profile: {figures.committed_members})",
        )
        types = len(set(figures.member_types))
        problems.check(
            types >= criteria.min_member_types,
            "R13",
            f"at least {criteria.min_member_types} member types (triple helix) are required"
            f" (profile: {types})",
        )
        problems.check(
            figures.english_website or not criteria.english_website_required,
            "R13",
            "a website in English (automatic translation accepted) is required",
        )
    problems.raise_if_any()
    return [
        ProfileValidated(
            org_id=org.registered.org_id,
            validated_on=on,
            criteria_version=criteria.version,
            waived_by_programme=figures.cluster_programme if waive else None,
        )
    ]


# ------------------------------------------------------------------- partnerships
@dataclass(frozen=True)
class Member:
    """A prospective partner: an organisation known here, with its country."""

    org_id: str
    country: str


@dataclass
class Partnership:
    """A strategic cluster partnership, rebuilt from its events (the first: its forming)."""

    formed: PartnershipFormed
    members: list[str]
    version: int = 1

    @classmethod
    def replay(cls, events: list[CollaborationEvent]) -> Partnership:
        """Rebuild from the stream."""
        first = events[0]
        assert isinstance(first, PartnershipFormed)
        partnership = cls(first, list(first.member_org_ids))
        for event in events[1:]:
            partnership.apply(event)
        return partnership

    @property
    def stream(self) -> StreamId:
        """The partnership's stream."""
        return partnership_stream(self.formed.partnership_id)

    def apply(self, event: CollaborationEvent) -> None:
        """Evolve by one later event."""
        if isinstance(event, PartnerJoined):
            self.members.append(event.org_id)
        self.version += 1


def form_partnership(
    *,
    partnership_id: str,
    name: str,
    strand: str,
    call_id: str,
    members: list[Member],
    unknown_org_ids: list[str],
    start_on: date,
    duration_months: int,
    rules: PartnershipRules,
) -> list[CollaborationEvent]:
    """R14: at least three partners, own legal entities in eligible countries; ESCP-S3 from
    at least three countries."""
    problems = Violations()
    problems.check(strand in STRANDS, "R14", f"unknown strand {strand!r}; one of {STRANDS}")
    for org_id in unknown_org_ids:
        problems.add("R14", f"partner {org_id} is not a registered cluster organisation")
    ids = [m.org_id for m in members]
    problems.check(len(set(ids)) == len(ids), "R14", "a partner is listed twice")
    problems.check(
        len(set(ids)) + len(unknown_org_ids) >= rules.min_partners,
        "R14",
        f"a partnership needs at least {rules.min_partners} partner organisations",
    )
    for member in members:
        problems.check(
            member.country in rules.eligible_countries,
            "R14",
            f"partner {member.org_id} is established in {member.country},"
            " not an EU member state or programme country",
        )
    min_countries = rules.min_countries_by_strand.get(strand, 0)
    countries = {m.country for m in members}
    problems.check(
        len(countries) >= min_countries,
        "R14",
        f"{strand} partners must come from at least {min_countries} different countries"
        f" (got {len(countries)})",
    )
    problems.check(duration_months > 0, "R14", "the duration must be positive")
    problems.raise_if_any()
    return [
        PartnershipFormed(
            partnership_id=partnership_id,
            name=name,
            strand=strand,
            call_id=call_id,
            member_org_ids=ids,
            start_on=start_on,
            duration_months=duration_months,
            rules_version=rules.version,
        )
    ]


def add_partner(
    partnership: Partnership, member: Member, *, joined_on: date, rules: PartnershipRules
) -> list[CollaborationEvent]:
    """R14: a new partner in an eligible country, not already a member."""
    problems = Violations()
    problems.check(
        member.org_id not in partnership.members,
        "R14",
        f"{member.org_id} is already a partner",
    )
    problems.check(
        member.country in rules.eligible_countries,
        "R14",
        f"partner {member.org_id} is established in {member.country},"
        " not an EU member state or programme country",
    )
    problems.check(
        joined_on >= partnership.formed.start_on,
        "R14",
        "a partner cannot join before the partnership starts",
    )
    problems.raise_if_any()
    return [
        PartnerJoined(
            partnership_id=partnership.formed.partnership_id,
            org_id=member.org_id,
            joined_on=joined_on,
        )
    ]


# -------------------------------------------------------------------- agreements
def sign_agreement(
    *,
    agreement_id: str,
    parties: list[str],
    third_country: str,
    signed_on: date,
    place: str | None,
    extends: CooperationAgreementSigned | None,
    extends_id: str | None,
    rules: PartnershipRules,
) -> list[CollaborationEvent]:
    """A cooperation agreement with a third country, possibly extending an earlier one."""
    problems = Violations()
    problems.check(len(parties) >= 2, "agreement", "an agreement has at least two parties")
    problems.check(
        is_country(third_country), "agreement", f"{third_country!r} is not an ISO 3166-1 code"
    )
    problems.check(
        third_country not in rules.eligible_countries,
        "agreement",
        f"{third_country} is not a third country (it takes part in the programme)",
    )
    if extends_id is not None:
        if extends is None:
            problems.add("agreement", f"agreement {extends_id} to extend does not exist")
        else:
            problems.check(
                extends.third_country == third_country,
                "agreement",
                "an extension is with the same third country",
            )
            problems.check(
                signed_on > extends.signed_on,
                "agreement",
                "an extension is signed after the agreement it extends",
            )
    problems.raise_if_any()
    return [
        CooperationAgreementSigned(
            agreement_id=agreement_id,
            parties=parties,
            third_country=third_country,
            signed_on=signed_on,
            place=place,
            extends=extends_id,
        )
    ]


def record_matchmaking(
    *,
    event_id: str,
    theme: str,
    held_on: date,
    countries: list[str],
    participant_org_ids: list[str],
    unknown_org_ids: list[str],
    meetings_c2c: int,
    meetings_b2b: int,
    cooperation_cases: int,
    agreements: int,
) -> list[CollaborationEvent]:
    """A matchmaking mission with its registered participants and outcomes."""
    problems = Violations()
    for org_id in unknown_org_ids:
        problems.add("matchmaking", f"participant {org_id} is not a registered organisation")
    for code in countries:
        problems.check(is_country(code), "matchmaking", f"{code!r} is not an ISO 3166-1 code")
    problems.check(
        min(meetings_c2c, meetings_b2b, cooperation_cases, agreements) >= 0,
        "matchmaking",
        "counts cannot be negative",
    )
    problems.raise_if_any()
    return [
        MatchmakingEventHeld(
            event_id=event_id,
            theme=theme,
            held_on=held_on,
            countries=countries,
            participant_org_ids=participant_org_ids,
            meetings_c2c=meetings_c2c,
            meetings_b2b=meetings_b2b,
            cooperation_cases=cooperation_cases,
            agreements=agreements,
        )
    ]
