"""Composition root of training and certification: tables, relay, app."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.contracts import training_certification as public
from clr_events.migrations import load
from clr_events.outbox.translation import contract_translator
from clr_events.service import policies, verification
from clr_events.service.auth import Role
from clr_events.service.runtime import RelaySpec, Runtime, create_app
from clr_events.transparency import http as transparency
from training_certification import NAME, api
from training_certification.domain.policy import POLICIES

MIGRATIONS = load(NAME)
"""Its own tables: ``migrations/``."""

TRANSLATE = contract_translator(
    f"/{NAME}",
    {
        "PersonRegistered": public.PersonRegistered,
        "AffiliationsChanged": public.AffiliationsChanged,
        "CertificateIssued": public.CertificateIssued,
        "ExpertCertified": public.ExpertCertified,
        "CertificationRenewed": public.CertificationRenewed,
        "CertificationRevoked": public.CertificationRevoked,
        "PersonalDataErased": public.PersonalDataErased,
    },
)
"""Published without personal data: ``PersonRegistered`` (v2) carries no name."""


class CertificationSettings(BaseSettings):
    """``CLR_CERTIFICATION_POLICY_VERSION``: the certification policy in force."""

    model_config = SettingsConfigDict(env_prefix="CLR_CERTIFICATION_")

    policy_version: str = POLICIES.default


def build() -> FastAPI:
    """The training and certification service."""
    runtime = Runtime(
        NAME,
        migrations=MIGRATIONS,
        relays=[RelaySpec(f"{NAME}.events", TRANSLATE)],
        transparency=True,
    )
    policy = POLICIES.choose(CertificationSettings().policy_version)
    app = create_app(
        runtime,
        title="Training and certification",
        description="People, courses, certificates, and expert certifications per role.",
        routers=[
            api.router,
            policies.router(POLICIES, policy),
            verification.router(Role.AUDITOR),
            transparency.router,
        ],
    )
    app.state.policy = policy
    return app
