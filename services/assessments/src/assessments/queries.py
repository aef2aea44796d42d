"""Reads of the assessments service: the reads its routes answer, free of HTTP.

The public sees what was assessed, when and by whom, never a rating or score (R11);
every event of an assessment, results included, is for the board and the auditor.
"""

from __future__ import annotations

from typing import Any

from assessments import NAME
from assessments.application import EVENT_TYPES, known_experts, known_organisation
from assessments.domain import model
from assessments.domain.events import AssessmentEvent
from clr_events.application.postgres import PostgresUnitsOfWork
from clr_events.application.uow import StreamReader, read_existing
from clr_events.pg import Pool
from clr_events.rules import NotFoundError


async def assessment_events(store: StreamReader, assessment_id: str) -> list[AssessmentEvent]:
    """Every event of an assessment, results included (NotFoundError: no such assessment)."""
    return await read_existing(
        store, EVENT_TYPES, model.assessment_stream(assessment_id), "assessment"
    )


async def public_assessment(store: StreamReader, assessment_id: str) -> dict[str, Any]:
    """What was assessed, when, by whom, and its approval: no ratings or scores (R11)."""
    assessment = model.Assessment.replay(await assessment_events(store, assessment_id))
    recorded, approval = assessment.conducted, assessment.approval
    return {
        **recorded.model_dump(
            include={
                "assessment_id",
                "org_id",
                "kind",
                "level",
                "conducted_on",
                "mode",
                "expert_ids",
                "criteria_version",
            }
        ),
        "approved_on": approval.approved_on if approval else None,
        "approver": approval.approver if approval else None,
    }


async def organisation_assessments(pool: Pool, org_id: str) -> list[dict[str, Any]]:
    """An organisation's assessments (public fields only), in the order they were conducted."""
    rows = await pool.fetch(
        "SELECT assessment_id, org_id, kind, conducted_on, approved_on, expert_ids,"
        f" criteria_version FROM {NAME}.assessments WHERE org_id = $1"
        " ORDER BY conducted_on, assessment_id",
        org_id,
    )
    return [dict(row) for row in rows]


async def reference_organisation(units: PostgresUnitsOfWork, org_id: str) -> dict[str, Any]:
    """An organisation as this service learned it from the collaboration events.

    Raises:
        NotFoundError: not known here (yet).
    """
    async with units.reading() as uow:
        org = await known_organisation(uow.rows, org_id)
    if org is None:
        raise NotFoundError(f"organisation {org_id!r} is not known here (yet)")
    return {"org_id": org.org_id, "country": org.country, "validated_on": org.validated_on}


async def reference_expert(units: PostgresUnitsOfWork, person_id: str) -> dict[str, Any]:
    """An expert as this service learned them from the training events, with their
    certifications.

    Raises:
        NotFoundError: not known here (yet).
    """
    async with units.reading() as uow:
        found = await known_experts(uow.rows, [person_id])
    if person_id not in found:
        raise NotFoundError(f"expert {person_id!r} is not known here (yet)")
    expert = found[person_id]
    return {
        "person_id": person_id,
        "country": expert.country,
        "affiliations": sorted(expert.affiliations),
        "certifications": {
            role: {
                "valid_from": c.valid_from,
                "valid_until": c.valid_until,
                "revoked_on": c.revoked_on,
            }
            for role, c in expert.certifications.items()
        },
    }
