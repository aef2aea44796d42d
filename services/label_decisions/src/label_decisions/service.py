"""Composition root of label decisions: tables, decision consumer, expiry clock, relay."""

from __future__ import annotations

from fastapi import FastAPI

from clr_events.contracts import label_decisions as public
from clr_events.outbox.translation import contract_translator
from clr_events.service.runtime import ConsumerSpec, JobSpec, RelaySpec, Runtime, create_app
from clr_events.transparency import http as transparency
from label_decisions import api, decisions

NAME = decisions.NAME

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


def build() -> FastAPI:
    """The label decisions service."""
    settings = decisions.DecisionSettings()
    runtime = Runtime(NAME, migrations=decisions.MIGRATIONS, transparency=True)
    runtime.relays.append(RelaySpec(f"{NAME}.events", TRANSLATE))
    runtime.consumers.append(
        ConsumerSpec(
            f"{NAME}.decisions",
            ["assessments.decisions"],
            decisions.subscriptions(runtime, settings),
            max_batch=1,  # a decision appends to the store: one per transaction
        )
    )
    policy = settings.policy()

    async def expiry(runtime: Runtime) -> int:
        return await decisions.expire_due(runtime, policy=policy)

    runtime.jobs.append(JobSpec("expiry", settings.expiry_interval_seconds, expiry))
    app = create_app(
        runtime,
        title="Label decisions",
        description="Awards, renewals, refusals, expiries, withdrawals and corrections of"
        " labels by a versioned decision policy (R2 to R8, R10, R15).",
        routers=[api.router, transparency.router],
    )
    app.state.policy = policy
    return app
