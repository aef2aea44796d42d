"""Composition root of label decisions: tables, decision consumer, expiry clock, relay."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.contracts import label_decisions as public
from clr_events.migrations import load
from clr_events.outbox.translation import contract_translator
from clr_events.service import policies, verification
from clr_events.service.auth import Role
from clr_events.service.runtime import ConsumerSpec, JobSpec, RelaySpec, Runtime, create_app
from clr_events.transparency import http as transparency
from label_decisions import NAME, api, application, clock
from label_decisions.domain.policy import POLICIES, DecisionPolicy

MIGRATIONS = load(NAME)
"""Its own tables: ``migrations/``."""

TRANSLATE = contract_translator(
    f"/{NAME}",
    {
        "LabelAwarded": public.LabelAwarded,
        "LabelRenewed": public.LabelRenewed,
        "LabelExpired": public.LabelExpired,
        "LabelWithdrawn": public.LabelWithdrawn,
        "LabelRecordCorrected": public.LabelRecordCorrected,
    },
)
"""``LabelRefused`` stays private: it names the results an assessment fell short on (R11)."""


class DecisionSettings(BaseSettings):
    """``CLR_DECISION_POLICY_VERSION`` and how often the expiry clock runs."""

    model_config = SettingsConfigDict(env_prefix="CLR_DECISION_")

    policy_version: str = POLICIES.default
    expiry_interval_seconds: float = 60.0

    def policy(self) -> DecisionPolicy:
        """The chosen policy version."""
        return POLICIES.choose(self.policy_version)


def build() -> FastAPI:
    """The label decisions service."""
    settings = DecisionSettings()
    policy = settings.policy()

    async def expiry(runtime: Runtime) -> int:
        return await clock.expire_due(runtime, policy=policy)

    runtime = Runtime(
        NAME,
        migrations=MIGRATIONS,
        relays=[RelaySpec(f"{NAME}.events", TRANSLATE)],
        consumers=[
            ConsumerSpec(
                f"{NAME}.decisions",
                ["assessments.decisions"],
                application.consumed(policy),
                max_batch=1,  # a decision appends to the store: one per transaction
            )
        ],
        jobs=[JobSpec("expiry", settings.expiry_interval_seconds, expiry)],
        transparency=True,
    )
    app = create_app(
        runtime,
        title="Label decisions",
        description="Awards, renewals, refusals, expiries, withdrawals and corrections of"
        " labels by a versioned decision policy (R2 to R8, R10, R15).",
        routers=[
            api.router,
            policies.router(POLICIES, policy),
            verification.router(Role.AUDITOR, Role.LABELLING_BOARD),
            transparency.router,
        ],
    )
    app.state.policy = policy
    return app
