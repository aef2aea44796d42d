"""Public contracts of the collaboration service (topic ``collaboration.events``)."""

from __future__ import annotations

from datetime import date

from clr_events.registry import Contract, registry


@registry.event("collaboration.OrganisationRegistered.v1")
class OrganisationRegistered(Contract):
    """A cluster organisation's profile was registered. Subject: ``organisation:<org_id>``."""

    org_id: str
    name: str
    country: str
    """ISO 3166-1 alpha-2."""
    region: str | None = None
    website: str | None = None
    sector: str
    """The comparative portfolio, as on the public label list."""
    eccp_profile_id: str | None = None


@registry.event("collaboration.ProfileValidated.v1")
class ProfileValidated(Contract):
    """The profile met the listing criteria (R13), or a cluster programme waived them."""

    org_id: str
    validated_on: date
    criteria_version: str
    waived_by_programme: str | None = None


@registry.event("collaboration.PartnershipFormed.v1")
class PartnershipFormed(Contract):
    """A European strategic cluster partnership was labelled with its first members."""

    partnership_id: str
    name: str
    strand: str
    """ESCP-4i, ESCP-S3, ESCP-4x or Euroclusters."""
    call_id: str
    member_org_ids: list[str]
    start_on: date
    duration_months: int


@registry.event("collaboration.PartnerJoined.v1")
class PartnerJoined(Contract):
    """An organisation joined a partnership."""

    partnership_id: str
    org_id: str
    joined_on: date


@registry.event("collaboration.CooperationAgreementSigned.v1")
class CooperationAgreementSigned(Contract):
    """A cooperation agreement with a third country was signed (or extended one)."""

    agreement_id: str
    parties: list[str]
    third_country: str
    signed_on: date
    place: str | None = None
    extends: str | None = None


@registry.event("collaboration.MatchmakingEventHeld.v1")
class MatchmakingEventHeld(Contract):
    """A matchmaking mission took place, with its participants and outcomes."""

    event_id: str
    theme: str
    held_on: date
    countries: list[str]
    participant_org_ids: list[str]
    meetings_c2c: int
    meetings_b2b: int
    cooperation_cases: int
    agreements: int
