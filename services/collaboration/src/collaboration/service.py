"""Composition root of the collaboration service: tables, relay, label consumer, app."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.contracts import collaboration as public
from clr_events.migrations import load
from clr_events.outbox.translation import contract_translator
from clr_events.service import policies, verification
from clr_events.service.auth import Role
from clr_events.service.runtime import ConsumerSpec, RelaySpec, Runtime, create_app
from clr_events.settings import RenewalWindows
from clr_events.transparency import http as transparency
from collaboration import NAME, api, application
from collaboration.domain.policy import LISTING_CRITERIA, PARTNERSHIP_RULES

MIGRATIONS = load(NAME)
"""Its own tables: ``migrations/``."""

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


def build() -> FastAPI:
    """The collaboration service."""
    settings = CollaborationSettings()
    criteria = LISTING_CRITERIA.choose(settings.listing_criteria_version)
    rules = PARTNERSHIP_RULES.choose(settings.partnership_rules_version)
    runtime = Runtime(
        NAME,
        migrations=MIGRATIONS,
        relays=[RelaySpec(f"{NAME}.events", TRANSLATE)],
        consumers=[
            ConsumerSpec(f"{NAME}.labels", ["label_decisions.events"], application.CONSUMED)
        ],
        transparency=True,
    )
    app = create_app(
        runtime,
        title="Collaboration",
        description="Cluster organisation profiles (R13), partnerships (R14),"
        " cooperation agreements and matchmaking events.",
        routers=[
            api.router,
            policies.router(LISTING_CRITERIA, criteria, "/policy/listing-criteria"),
            policies.router(PARTNERSHIP_RULES, rules, "/policy/partnership-rules"),
            verification.router(Role.AUDITOR),
            transparency.router,
        ],
    )
    app.state.listing_criteria = criteria
    app.state.partnership_rules = rules
    app.state.renewal_windows = RenewalWindows()
    return app
