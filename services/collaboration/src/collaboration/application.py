"""Commands of the collaboration service and their handlers (no HTTP here).

Each handler loads what it needs through the unit of work, lets the domain decide, stages
the new events and writes the service's own rows (``organisations``: the profiles index the
reads and R14's checks use). The caller commits. The label decisions it consumes keep
``organisation_labels`` (``CONSUMED``: what the profiles show of each label).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from clr_events.application.uow import (
    DomainEvents,
    EventHandler,
    Result,
    Streams,
    UnitOfWork,
    handles,
    new_id,
)
from clr_events.contracts import label_decisions as labels
from clr_events.envelope import Envelope
from clr_events.registry import Contract
from clr_events.rules import NotFoundError
from clr_events.service.inputs import (
    Code,
    Count,
    Day,
    Fte,
    Happened,
    Id,
    Many,
    Months,
    Name,
    Url,
)
from collaboration.domain import model
from collaboration.domain.events import (
    EVENTS,
    CollaborationEvent,
    CooperationAgreementSigned,
    ProfileFigures,
)
from collaboration.domain.policy import ListingCriteria, PartnershipRules

EVENT_TYPES: DomainEvents[CollaborationEvent] = DomainEvents(*EVENTS)
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]


def streams(uow: UnitOfWork) -> Streams[CollaborationEvent]:
    """The service's streams in ``uow``."""
    return Streams(uow, EVENT_TYPES)


# ------------------------------------------------------------------ commands
class Figures(BaseModel):
    """The figures R13 looks at, as a client sends them (bounded; stored as ``ProfileFigures``)."""

    model_config = ConfigDict(extra="forbid")

    management_fte: Fte
    committed_members: Count
    member_types: Many[Code]
    english_website: bool
    cluster_programme: Name | None = None
    """A recognised regional or national cluster programme the organisation belongs to."""

    def stored(self) -> ProfileFigures:
        """The figures as the domain keeps them."""
        return ProfileFigures(**self.model_dump())


class RegisterOrganisation(BaseModel):
    org_id: Id | None = None
    name: Name
    country: Country
    region: Name | None = None
    website: Url | None = None
    sector: Name = Field(description="comparative portfolio")
    eccp_profile_id: Code | None = None
    figures: Figures


class UpdateFigures(BaseModel):
    org_id: Id
    figures: Figures


class Validate(BaseModel):
    validated_on: Happened
    waive: bool = Field(False, description="apply the cluster programme waiver (R13)")


class ValidateProfile(BaseModel):
    org_id: Id
    validation: Validate


class FormPartnership(BaseModel):
    partnership_id: Id | None = None
    name: Name
    strand: Code
    call_id: Code
    member_org_ids: Many[Id]
    start_on: Day
    duration_months: Months


class AddPartner(BaseModel):
    org_id: Id
    joined_on: Happened


class JoinPartnership(BaseModel):
    partnership_id: Id
    partner: AddPartner


class SignAgreement(BaseModel):
    agreement_id: Id | None = None
    parties: Many[Name]
    third_country: Country
    signed_on: Happened
    place: Name | None = None
    extends: Id | None = None


class RecordMatchmaking(BaseModel):
    event_id: Id | None = None
    theme: Name
    held_on: Happened
    countries: Many[Country]
    participant_org_ids: Many[Id]
    meetings_c2c: Count = 0
    meetings_b2b: Count = 0
    cooperation_cases: Count = 0
    agreements: Count = 0


# ------------------------------------------------------------------ helpers
async def load_organisation(s: Streams[CollaborationEvent], org_id: str) -> model.Organisation:
    """An organisation's profile, at its stream's version.

    Raises:
        NotFoundError: no such organisation.
    """
    events = await s.load_existing(model.organisation_stream(org_id), "organisation")
    return model.Organisation.replay(events)


async def _members(uow: UnitOfWork, org_ids: list[str]) -> tuple[list[model.Member], list[str]]:
    rows = await uow.rows.find("organisations", ("org_id", "country"), org_id=org_ids)
    known = {row["org_id"]: row["country"] for row in rows}
    members = [model.Member(o, known[o]) for o in org_ids if o in known]
    return members, [o for o in org_ids if o not in known]


def _position(version: int | None) -> dict[str, Any]:
    return {} if version is None else {"stream_version": version}


# ------------------------------------------------------------------ handlers
async def register_organisation(cmd: RegisterOrganisation, uow: UnitOfWork) -> Result:
    """Register a cluster organisation's profile (not yet validated)."""
    org_id = cmd.org_id or new_id()
    events = model.register_organisation(
        org_id=org_id,
        name=cmd.name,
        country=cmd.country,
        region=cmd.region,
        website=cmd.website,
        sector=cmd.sector,
        eccp_profile_id=cmd.eccp_profile_id,
        figures=cmd.figures.stored(),
    )
    version = streams(uow).append(model.organisation_stream(org_id), 0, events)
    # an id taken already: the append refuses it (409) and this row goes with it
    await uow.rows.upsert(
        "organisations",
        {"org_id": org_id},
        {"name": cmd.name.strip(), "country": cmd.country, "sector": cmd.sector.strip()},
    )
    return Result(201, {"org_id": org_id, **_position(version)})


async def update_figures(cmd: UpdateFigures, uow: UnitOfWork) -> Result:
    """Replace the profile figures R13 looks at."""
    s = streams(uow)
    org = await load_organisation(s, cmd.org_id)
    new = s.append(org.stream, org.version, model.update_figures(org, cmd.figures.stored()))
    return Result(200, {"org_id": cmd.org_id, **_position(new)})


async def validate_profile(
    cmd: ValidateProfile, uow: UnitOfWork, *, criteria: ListingCriteria
) -> Result:
    """R13: validate the profile; a refusal names every criterion it fails."""
    s = streams(uow)
    org = await load_organisation(s, cmd.org_id)
    on = cmd.validation.validated_on
    events = model.validate_profile(org, on=on, criteria=criteria, waive=cmd.validation.waive)
    if not events:
        assert org.validated is not None
        return Result(
            200, {"org_id": cmd.org_id, "validated_on": org.validated.validated_on.isoformat()}
        )
    new = s.append(org.stream, org.version, events)
    await uow.rows.update("organisations", {"org_id": cmd.org_id}, {"validated_on": on})
    return Result(201, {"org_id": cmd.org_id, "validated_on": on.isoformat(), **_position(new)})


async def form_partnership(
    cmd: FormPartnership, uow: UnitOfWork, *, rules: PartnershipRules
) -> Result:
    """R14: label a strategic cluster partnership with its first partners."""
    partnership_id = cmd.partnership_id or new_id()
    members, unknown = await _members(uow, cmd.member_org_ids)
    events = model.form_partnership(
        partnership_id=partnership_id,
        name=cmd.name,
        strand=cmd.strand,
        call_id=cmd.call_id,
        members=members,
        unknown_org_ids=unknown,
        start_on=cmd.start_on,
        duration_months=cmd.duration_months,
        rules=rules,
    )
    version = streams(uow).append(model.partnership_stream(partnership_id), 0, events)
    return Result(201, {"partnership_id": partnership_id, **_position(version)})


async def add_partner(cmd: JoinPartnership, uow: UnitOfWork, *, rules: PartnershipRules) -> Result:
    """R14: a new partner joins."""
    s = streams(uow)
    events = await s.load_existing(model.partnership_stream(cmd.partnership_id), "partnership")
    partnership = model.Partnership.replay(events)
    members, unknown = await _members(uow, [cmd.partner.org_id])
    if unknown:
        raise NotFoundError(f"no organisation {cmd.partner.org_id!r}")
    new = model.add_partner(partnership, members[0], joined_on=cmd.partner.joined_on, rules=rules)
    version = s.append(partnership.stream, partnership.version, new)
    return Result(201, {"partnership_id": cmd.partnership_id, **_position(version)})


async def sign_agreement(cmd: SignAgreement, uow: UnitOfWork, *, rules: PartnershipRules) -> Result:
    """A cooperation agreement with a third country (or an extension of one)."""
    s = streams(uow)
    agreement_id = cmd.agreement_id or new_id()
    extends = None
    if cmd.extends is not None:
        _, earlier = await s.load(model.agreement_stream(cmd.extends))
        first = earlier[0] if earlier else None
        extends = first if isinstance(first, CooperationAgreementSigned) else None
    events = model.sign_agreement(
        agreement_id=agreement_id,
        parties=cmd.parties,
        third_country=cmd.third_country,
        signed_on=cmd.signed_on,
        place=cmd.place,
        extends=extends,
        extends_id=cmd.extends,
        rules=rules,
    )
    version = s.append(model.agreement_stream(agreement_id), 0, events)
    return Result(201, {"agreement_id": agreement_id, **_position(version)})


async def record_matchmaking(cmd: RecordMatchmaking, uow: UnitOfWork) -> Result:
    """A matchmaking mission with its participants and outcomes."""
    event_id = cmd.event_id or new_id()
    _, unknown = await _members(uow, cmd.participant_org_ids)
    events = model.record_matchmaking(
        event_id=event_id,
        theme=cmd.theme,
        held_on=cmd.held_on,
        countries=cmd.countries,
        participant_org_ids=cmd.participant_org_ids,
        unknown_org_ids=unknown,
        meetings_c2c=cmd.meetings_c2c,
        meetings_b2b=cmd.meetings_b2b,
        cooperation_cases=cmd.cooperation_cases,
        agreements=cmd.agreements,
    )
    version = streams(uow).append(model.matchmaking_stream(event_id), 0, events)
    return Result(201, {"event_id": event_id, **_position(version)})


# ------------------------------------------------ events consumed: label decisions
_LABELS = "organisation_labels"


async def _set_label(uow: UnitOfWork, event: Any, envelope: Envelope, **values: object) -> None:
    """Keep a label's latest state, by the record's stream version: an older event
    arriving late changes nothing."""
    await uow.rows.upsert(
        _LABELS,
        {"org_id": event.org_id, "level": event.level},
        {**values, "stream_version": envelope.streamversion},
        newer="stream_version",
    )


async def label_awarded(event: labels.LabelAwarded, uow: UnitOfWork, envelope: Envelope) -> None:
    """A label on the profile: its validity and renewal deadline (R10)."""
    await _set_label(
        uow,
        event,
        envelope,
        valid_until=event.valid_until,
        renewal_deadline=event.renewal_deadline,
        withdrawn_on=None,
        expired=False,
    )


async def label_renewed(event: labels.LabelRenewed, uow: UnitOfWork, envelope: Envelope) -> None:
    """A renewal extends the validity."""
    await _set_label(
        uow,
        event,
        envelope,
        valid_until=event.valid_until,
        renewal_deadline=event.renewal_deadline,
        expired=False,
    )


async def label_corrected(
    event: labels.LabelRecordCorrected, uow: UnitOfWork, envelope: Envelope
) -> None:
    """A correction moves the validity (R15)."""
    await _set_label(
        uow,
        event,
        envelope,
        valid_until=event.valid_until,
        renewal_deadline=event.renewal_deadline,
    )


async def label_expired(event: labels.LabelExpired, uow: UnitOfWork, envelope: Envelope) -> None:
    """The clock recorded the expiry."""
    await _set_label(uow, event, envelope, valid_until=event.valid_until, expired=True)


async def label_withdrawn(
    event: labels.LabelWithdrawn, uow: UnitOfWork, envelope: Envelope
) -> None:
    """The board withdrew the label (a withdrawal of a label never seen: nothing)."""
    await uow.rows.update(
        _LABELS,
        {"org_id": event.org_id, "level": event.level},
        {"withdrawn_on": event.withdrawn_on, "stream_version": envelope.streamversion},
        newer="stream_version",
    )


CONSUMED: dict[type[Contract], EventHandler] = dict(
    (
        handles(labels.LabelAwarded, label_awarded),
        handles(labels.LabelRenewed, label_renewed),
        handles(labels.LabelRecordCorrected, label_corrected),
        handles(labels.LabelExpired, label_expired),
        handles(labels.LabelWithdrawn, label_withdrawn),
    )
)
"""The events this service consumes (``label_decisions.events``: the labels the profiles
show), and their handlers."""
