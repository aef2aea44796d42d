"""Composition root of the assessments service: tables, two relays, reference consumer."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from assessments import NAME, api, application
from assessments.domain.policy import POLICIES
from clr_events.contracts import assessments as public
from clr_events.migrations import load
from clr_events.outbox.translation import contract_translator
from clr_events.registry import Contract
from clr_events.service import policies, verification
from clr_events.service.auth import Role
from clr_events.service.runtime import ConsumerSpec, RelaySpec, Runtime, create_app
from clr_events.store.base import StoredEvent
from clr_events.transparency import http as transparency

MIGRATIONS = load(NAME)
"""Its own tables (the reference facts among them): ``migrations/``."""

PUBLIC = contract_translator(
    f"/{NAME}",
    {
        "BenchmarkingInterviewConducted": public.AssessmentRecorded,
        "SilverAuditConducted": public.AssessmentRecorded,
        "GoldAssessmentConducted": public.AssessmentRecorded,
        "AssessmentApproved": public.AssessmentApproved,
    },
)
"""The public topic: what was assessed and approved; the contracts drop every score."""


def _by_organisation(_stored: StoredEvent, contract: Contract) -> str:
    assert isinstance(contract, public.ApprovedForDecision)
    return contract.org_id


DECISIONS = contract_translator(
    f"/{NAME}",
    {"AssessmentApproved": public.ApprovedForDecision},
    subject=_by_organisation,
)
"""The restricted topic read by label_decisions only: approvals with their results,
keyed by organisation so one organisation's decisions are taken in order."""


class AssessmentSettings(BaseSettings):
    """``CLR_ASSESSMENT_RULES_VERSION``: the assessment rules in force."""

    model_config = SettingsConfigDict(env_prefix="CLR_ASSESSMENT_")

    rules_version: str = POLICIES.default


def build() -> FastAPI:
    """The assessments service."""
    runtime = Runtime(
        NAME,
        migrations=MIGRATIONS,
        relays=[
            RelaySpec(f"{NAME}.events", PUBLIC),
            RelaySpec(f"{NAME}.decisions", DECISIONS, name="decisions"),
        ],
        consumers=[
            ConsumerSpec(
                f"{NAME}.reference",
                ["collaboration.events", "training_certification.events"],
                application.CONSUMED,
            )
        ],
        transparency=True,
    )
    rules = POLICIES.choose(AssessmentSettings().rules_version)
    app = create_app(
        runtime,
        title="Assessments",
        description="Bronze benchmarkings, Silver audits and Gold assessments, and their"
        " approval; eligibility (R1) and expert (R9) checks against the other services' events.",
        routers=[
            api.router,
            policies.router(POLICIES, rules),
            verification.router(Role.AUDITOR),
            transparency.router,
        ],
    )
    app.state.rules = rules
    return app
