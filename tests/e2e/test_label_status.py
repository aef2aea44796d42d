"""R10 says the same everywhere: label decisions, the organisation's profile in
collaboration, and the public register, in a label's renewal window and after it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.e2e import scenario
from tests.e2e.conftest import System

LABELS = "label_decisions.events"


async def statuses(system: System, org: str, valid_until: str) -> tuple[str, str, str]:
    """(label decisions, collaboration, projections) once both read sides show ``valid_until``."""

    async def profile() -> Any:
        body = (await system.get("collaboration", f"/organisations/{org}")).json()
        labels = body["labels"]
        return labels[0] if labels and labels[0]["valid_until"] == valid_until else None

    async def page() -> Any:
        response = await system.get("projections", f"/api/organisations/{org}")
        if response.status_code != 200:
            return None
        labels = response.json()["labels"]
        return labels[0] if labels and labels[0]["valid_until"] == valid_until else None

    badge = await system.until(profile, "the corrected label on the profile")
    public = await system.until(page, "the corrected label on the public page")
    decided = (await system.get("label_decisions", f"/labels/{org}")).json()["labels"][0]
    return decided["status"], badge["status"], public["status"]


async def correct(system: System, org: str, valid_until: date) -> str:
    response = await system.post(
        "label_decisions",
        f"/labels/{org}/bronze/corrections",
        {"valid_until": valid_until.isoformat(), "reason": "R10 check"},
        "labelling_board",
    )
    assert response.status_code == 201, response.text
    return valid_until.isoformat()


async def test_a_label_in_its_renewal_window_shows_so_on_every_side(system: System) -> None:
    # given a Bronze label whose validity ended a month ago (corrected to that day)
    org, _ = await scenario.bronze_label(system, "DE", "AT", "2024-03-05", "2024-04-02")
    await system.events(LABELS, f"{org}:bronze", at_least=1)
    today = date.today()
    ended = today - timedelta(days=31)
    if ended == date(2026, 3, 31):  # the award's own validity: a correction must change it
        ended -= timedelta(days=1)
    in_window = await correct(system, org, ended)

    # then every side says "in renewal window" (collaboration said "expired")
    assert await statuses(system, org, in_window) == ("in_renewal_window",) * 3

    # and once the window has passed as well, every side says "expired"
    long_ago = await correct(system, org, today - timedelta(days=800))
    assert await statuses(system, org, long_ago) == ("expired",) * 3
