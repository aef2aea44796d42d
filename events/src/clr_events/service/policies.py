"""``GET /policy`` and ``GET /policy/{version}``: a service's versioned rules as evidence,
the same routes for every kind of rules a service runs by (public: the rules are no
secret; a service with two kinds serves each under its own path).

A policy's document is its canonical form (``clr_events.application.fingerprint``): every
setting and, where it has them, its rules' texts, with its ``fingerprint``; every version
that was ever in force stays readable, so a decision that records a version can be
checked against that version's rules.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from clr_events.application.aggregate import Policies
from clr_events.application.fingerprint import canonical, fingerprint
from clr_events.rules import NotFoundError
from clr_events.service.inputs import Code


def document(policy: Any) -> dict[str, Any]:
    """A policy version as evidence: every setting, its rules' texts, its fingerprint."""
    return {**canonical(policy), "fingerprint": fingerprint(policy)}


def router(registry: Policies[Any], in_force: Any, path: str = "/policy") -> APIRouter:
    """The routes of one kind of policy: ``path`` (``in_force``, the version the service
    runs by, with every known version) and ``path/{version}`` (any one)."""
    routes = APIRouter(tags=["policy"])
    what = registry.what
    current = {**document(in_force), "versions": list(registry)}

    @routes.get(
        path,
        description=f"The {what} in force: its version, every setting and rule, its"
        " fingerprint, and every known version.",
    )
    async def get_policy() -> dict[str, Any]:
        return current

    @routes.get(
        f"{path}/{{version}}",
        description=f"Any version of the {what} (versions are immutable and never removed),"
        " with its fingerprint.",
    )
    async def get_policy_version(version: Code) -> dict[str, Any]:
        if version not in registry:
            raise NotFoundError(f"no {what} {version!r}; known: {', '.join(registry)}")
        return document(registry[version])

    return routes
