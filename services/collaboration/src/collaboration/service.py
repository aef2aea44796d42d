"""Composition root of the collaboration service: tables, relay, label consumer, app."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.consumers.dispatch import Subscriptions
from clr_events.contracts import collaboration as public
from clr_events.contracts import label_decisions as labels
from clr_events.envelope import Envelope
from clr_events.outbox.translation import contract_translator
from clr_events.pg import Connection
from clr_events.service.runtime import ConsumerSpec, RelaySpec, Runtime, create_app
from collaboration import api
from collaboration.domain.policy import LISTING_CRITERIA, PARTNERSHIP_RULES

NAME = "collaboration"

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.organisations (
        org_id text PRIMARY KEY, name text NOT NULL, country text NOT NULL,
        sector text NOT NULL, validated_on date);
    CREATE INDEX IF NOT EXISTS organisations_country ON {schema}.organisations (country);
    CREATE TABLE IF NOT EXISTS {schema}.organisation_labels (
        org_id text NOT NULL, level text NOT NULL, valid_until date NOT NULL,
        withdrawn_on date, expired boolean NOT NULL DEFAULT false,
        stream_version int NOT NULL, PRIMARY KEY (org_id, level));
    ALTER TABLE {schema}.organisation_labels ADD COLUMN IF NOT EXISTS renewal_deadline date;
    """
]

TRANSLATE = contract_translator(
    f"/{NAME}",
    {
        "OrganisationRegistered": public.OrganisationRegistered,
        "ProfileValidated": public.ProfileValidated,
        "PartnershipFormed": public.PartnershipFormed,
        "PartnerJoined": public.PartnerJoined,
        "CooperationAgreementSigned": public.CooperationAgreementSigned,
        "MatchmakingEventHeld": public.MatchmakingEventHeld,
    },
)


class CollaborationSettings(BaseSettings):
    """The rule versions in force: ``CLR_COLLABORATION_LISTING_CRITERIA_VERSION`` (R13) and
    ``CLR_COLLABORATION_PARTNERSHIP_RULES_VERSION`` (R14)."""

    model_config = SettingsConfigDict(env_prefix="CLR_COLLABORATION_")

    listing_criteria_version: str = LISTING_CRITERIA.default
    partnership_rules_version: str = PARTNERSHIP_RULES.default


label_events = Subscriptions()


async def _set_label(
    conn: Connection, envelope: Envelope, org_id: str, level: str, **values: object
) -> None:
    """Keep a label's latest state; an older event arriving late changes nothing."""
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(4, 4 + len(values)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in values)
    await conn.execute(
        f"INSERT INTO {NAME}.organisation_labels (org_id, level, stream_version, {columns})"
        f" VALUES ($1, $2, $3, {params}) ON CONFLICT (org_id, level) DO UPDATE SET"
        f" stream_version = excluded.stream_version, {updates}"
        f" WHERE {NAME}.organisation_labels.stream_version < excluded.stream_version",
        org_id,
        level,
        envelope.streamversion or 0,
        *values.values(),
    )


@label_events.on(labels.LabelAwarded)
async def _awarded(conn: Connection, event: labels.LabelAwarded, envelope: Envelope) -> None:
    await _set_label(
        conn,
        envelope,
        event.org_id,
        event.level,
        valid_until=event.valid_until,
        renewal_deadline=event.renewal_deadline,
        withdrawn_on=None,
        expired=False,
    )


@label_events.on(labels.LabelRenewed)
async def _renewed(conn: Connection, event: labels.LabelRenewed, envelope: Envelope) -> None:
    await _set_label(
        conn,
        envelope,
        event.org_id,
        event.level,
        valid_until=event.valid_until,
        renewal_deadline=event.renewal_deadline,
        expired=False,
    )


@label_events.on(labels.LabelRecordCorrected)
async def _corrected(
    conn: Connection, event: labels.LabelRecordCorrected, envelope: Envelope
) -> None:
    await _set_label(
        conn,
        envelope,
        event.org_id,
        event.level,
        valid_until=event.valid_until,
        renewal_deadline=event.renewal_deadline,
    )


@label_events.on(labels.LabelExpired)
async def _expired(conn: Connection, event: labels.LabelExpired, envelope: Envelope) -> None:
    await _set_label(
        conn, envelope, event.org_id, event.level, valid_until=event.valid_until, expired=True
    )


@label_events.on(labels.LabelWithdrawn)
async def _withdrawn(conn: Connection, event: labels.LabelWithdrawn, envelope: Envelope) -> None:
    await conn.execute(
        f"UPDATE {NAME}.organisation_labels SET withdrawn_on = $3, stream_version = $4"
        " WHERE org_id = $1 AND level = $2 AND stream_version < $4",
        event.org_id,
        event.level,
        event.withdrawn_on,
        envelope.streamversion or 0,
    )


def build() -> FastAPI:
    """The collaboration service."""
    settings = CollaborationSettings()
    runtime = Runtime(
        NAME,
        migrations=MIGRATIONS,
        relays=[RelaySpec(f"{NAME}.events", TRANSLATE)],
        consumers=[ConsumerSpec(f"{NAME}.labels", ["label_decisions.events"], label_events)],
    )
    app = create_app(
        runtime,
        title="Collaboration",
        description="Cluster organisation profiles (R13), partnerships (R14),"
        " cooperation agreements and matchmaking events.",
        routers=[api.router],
    )
    app.state.listing_criteria = LISTING_CRITERIA.choose(settings.listing_criteria_version)
    app.state.partnership_rules = PARTNERSHIP_RULES.choose(settings.partnership_rules_version)
    return app
