"""Private stored events of the collaboration service (published through contracts)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict


class CollaborationEvent(BaseModel):
    """Base of every stored event here: frozen, its sequences tuples (stored as JSON
    arrays), because a decoded event is shared by every load of its stream (the stream
    cache) and nothing may change it."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ProfileFigures(BaseModel):
    """The figures R13 looks at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    management_fte: float
    committed_members: int
    member_types: tuple[str, ...]
    english_website: bool
    cluster_programme: str | None = None
    """A recognised regional or national cluster programme the organisation belongs to."""


class OrganisationRegistered(CollaborationEvent):
    org_id: str
    name: str
    country: str
    region: str | None
    website: str | None
    sector: str
    eccp_profile_id: str | None
    figures: ProfileFigures


class ProfileFiguresUpdated(CollaborationEvent):
    org_id: str
    figures: ProfileFigures


class ProfileValidated(CollaborationEvent):
    org_id: str
    validated_on: date
    criteria_version: str
    waived_by_programme: str | None


class PartnershipFormed(CollaborationEvent):
    partnership_id: str
    name: str
    strand: str
    call_id: str
    member_org_ids: tuple[str, ...]
    start_on: date
    duration_months: int
    rules_version: str


class PartnerJoined(CollaborationEvent):
    partnership_id: str
    org_id: str
    joined_on: date


class CooperationAgreementSigned(CollaborationEvent):
    agreement_id: str
    parties: tuple[str, ...]
    third_country: str
    signed_on: date
    place: str | None
    extends: str | None


class MatchmakingEventHeld(CollaborationEvent):
    event_id: str
    theme: str
    held_on: date
    countries: tuple[str, ...]
    participant_org_ids: tuple[str, ...]
    meetings_c2c: int
    meetings_b2b: int
    cooperation_cases: int
    agreements: int


EVENTS = (
    OrganisationRegistered,
    ProfileFiguresUpdated,
    ProfileValidated,
    PartnershipFormed,
    PartnerJoined,
    CooperationAgreementSigned,
    MatchmakingEventHeld,
)
