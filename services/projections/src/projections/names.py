"""People's names for the responses that show them: asked for, never kept.

The read models hold no personal data: a person's name is sealed in training_certification
under the person's key and never published (docs/erasure.md). The expert list asks that
service's ``GET /names`` for the names of the people it shows, per response, and shows
null for anyone whose data was erased. Without ``CLR_TRAINING_CERTIFICATION_URL``, or
while that service does not answer, names are null too (the list still answers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import httpx

from clr_events.outage import Outage

log = logging.getLogger(__name__)

CHUNK = 500
"""Names asked for per request (the endpoint takes up to 1000)."""


class Names:
    """Names by person id, from training_certification's edge."""

    def __init__(self, base_url: str, *, timeout: float = 2.0) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout) if base_url else None
        self._outage = Outage("names from training_certification", log)

    async def of(self, person_ids: Iterable[str]) -> dict[str, str | None]:
        """The names of ``person_ids`` (None: erased, unknown, or not available now)."""
        ids = sorted(set(person_ids))
        if self._client is None or not ids:
            return {}
        found: dict[str, str | None] = {}
        try:
            for start in range(0, len(ids), CHUNK):
                response = await self._client.get(
                    "/names", params=[("person_id", i) for i in ids[start : start + CHUNK]]
                )
                response.raise_for_status()
                found.update({item["person_id"]: item["name"] for item in response.json()["items"]})
        except (httpx.HTTPError, ValueError, KeyError) as error:
            self._outage.failed(error)  # logged once per outage; the names are null
            return {}
        self._outage.ended()
        return found

    async def fill(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` (with ``person_id``) with each one's ``name`` set."""
        names = await self.of(r["person_id"] for r in rows)
        for row in rows:
            row["name"] = names.get(row["person_id"])
        return rows

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
