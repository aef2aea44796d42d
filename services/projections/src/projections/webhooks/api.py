"""The webhook subscriptions' API: create, list, read, change, delete, pause, resume,
replay from a position, rotate the secret. Registry admins only; errors are RFC 9457
problems."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from clr_events.contracts import label_decisions
from clr_events.registry import registry
from clr_events.service import inputs
from clr_events.service.auth import Actor, Role, require
from clr_events.service.problems import ProblemError
from projections import queries
from projections.params import Position
from projections.webhooks import signing, store
from projections.webhooks.policy import address_allowed, target_refusal
from projections.webhooks.settings import WEEK, WebhookSettings

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
admin = require(Role.REGISTRY_ADMIN)

TARGET_REFUSED = "urn:cluster-label-registry:problem:webhook-target-refused"
BEYOND_HEAD = "urn:cluster-label-registry:problem:cursor-beyond-head"
EVENT_TYPES = frozenset(
    registry.type_of(c)
    for c in (
        label_decisions.LabelAwarded,
        label_decisions.LabelRenewed,
        label_decisions.LabelExpired,
        label_decisions.LabelWithdrawn,
        label_decisions.LabelRecordCorrected,
    )
)
"""The public label event types a subscription may choose from (the feed's types)."""
SubId = Annotated[str, StringConstraints(pattern=r"^wh_[0-9a-f]{16}$")]


def _known_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"not a public label event type; one of {sorted(EVENT_TYPES)}")
    return value


EventType = Annotated[str, StringConstraints(max_length=100), AfterValidator(_known_type)]
Description = Annotated[
    str, StringConstraints(max_length=inputs.NAME_MAX), AfterValidator(inputs.single_line)
]


class NewSubscription(BaseModel):
    """An endpoint to push the public label events to."""

    model_config = ConfigDict(extra="forbid")

    url: inputs.Url
    description: Description = ""
    types: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))] | None = (
        None
    )
    """Only these event types (default: every public label event)."""
    after: Position | None = None
    """Start after this feed position (0: the whole history); default: the feed's head now,
    so only events from now on."""


class SubscriptionChange(BaseModel):
    """What an operator may change of a subscription (absent: unchanged)."""

    model_config = ConfigDict(extra="forbid")

    url: inputs.Url | None = None
    description: Description | None = None
    types: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))] | None = (
        None
    )


class Replay(BaseModel):
    """Deliver again every event after ``after``."""

    model_config = ConfigDict(extra="forbid")

    after: Position


class Rotation(BaseModel):
    """A new signing secret; the old one keeps signing for ``overlap_seconds``."""

    model_config = ConfigDict(extra="forbid")

    overlap_seconds: Annotated[int, Field(ge=0, le=WEEK)] | None = None


def _settings(request: Request) -> WebhookSettings:
    settings: WebhookSettings = request.app.state.runtime.webhooks.settings
    return settings


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers
    )


async def _check_target(url: str, settings: WebhookSettings) -> None:
    """Refuse a target delivery may not call (422), before anything is stored.

    Raises:
        ProblemError: not https (outside development), credentials in it, or a host that
            is or resolves to a private, loopback, link-local or reserved address.
    """
    allow = settings.allow_private_targets
    refusal = target_refusal(url, allow_private=allow)
    if refusal is None:
        host = urlsplit(url).hostname or ""
        try:
            found = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), 5.0
            )
        except (OSError, TimeoutError, ValueError):  # UnicodeError: not an encodable name
            refusal = f"{host} does not resolve"
        else:
            addresses = {str(a[4][0]) for a in found}
            bad = sorted(a for a in addresses if not address_allowed(a, allow_private=allow))
            if bad:
                refusal = f"{host} resolves to an address that is not public: {', '.join(bad)}"
    if refusal is not None:
        raise ProblemError(422, "Endpoint refused", refusal, type_=TARGET_REFUSED, url=url)


async def _head(request: Request) -> int:
    async with request.app.state.runtime.pool.acquire() as conn:
        return await queries.feed_head(conn)


def _beyond(after: int, head: int) -> ProblemError:
    return ProblemError(
        422,
        "Position beyond the feed's head",
        f"position {after} is beyond the feed's head {head}: a cursor from another"
        " installation, or from the future",
        type_=BEYOND_HEAD,
        head=head,
    )


async def _status(request: Request, row: dict[str, Any]) -> dict[str, Any]:
    """A subscription as shown: its row (no secrets), the feed's head and its lag."""
    async with request.app.state.runtime.pool.acquire() as conn:
        head = await queries.feed_head(conn)
        lag = await conn.fetchval(
            "SELECT count(*) FROM projections.labels_feed WHERE position > $1 AND position <= $2",
            row["position"],
            head,
        )
    return {**row, "head": head, "lag_events": lag}


async def _found(request: Request, sub_id: str) -> dict[str, Any]:
    row = await store.one(request.app.state.runtime.pool, sub_id)
    if row is None:
        raise ProblemError(404, "Not found", f"no webhook subscription {sub_id}")
    return row


def _or_404(row: dict[str, Any] | None, sub_id: str) -> dict[str, Any]:
    if row is None:
        raise ProblemError(404, "Not found", f"no webhook subscription {sub_id}")
    return row


@router.post("", status_code=201, summary="Register an endpoint (the secret is shown once)")
async def create(
    request: Request, body: NewSubscription, actor: Annotated[Actor, Depends(admin)]
) -> Response:
    await _check_target(body.url, _settings(request))
    head = await _head(request)
    after = head if body.after is None else body.after
    if after > head:
        raise _beyond(after, head)
    secret = signing.new_secret()
    row = await store.create(
        request.app.state.runtime.pool,
        url=body.url,
        description=body.description,
        types=body.types,
        secret=secret,
        position=after,
        created_by=actor.subject,
    )
    return _json(
        {**await _status(request, row), "secret": secret},
        201,
        {"Location": f"/webhooks/{row['id']}"},
    )


@router.get("", summary="Every subscription with its state, cursor and lag")
async def every(request: Request, _: Annotated[Actor, Depends(admin)]) -> Response:
    rows = await store.every(request.app.state.runtime.pool)
    return _json({"subscriptions": [await _status(request, r) for r in rows]})


@router.get("/{sub_id}", summary="A subscription's state, cursor, lag and last failure")
async def one(request: Request, sub_id: SubId, _: Annotated[Actor, Depends(admin)]) -> Response:
    return _json(await _status(request, await _found(request, sub_id)))


@router.patch("/{sub_id}", summary="Change the endpoint, description or event types")
async def change(
    request: Request,
    sub_id: SubId,
    body: SubscriptionChange,
    _: Annotated[Actor, Depends(admin)],
) -> Response:
    sets = body.model_dump(exclude_unset=True)
    if sets.get("url") is None:
        sets.pop("url", None)
    if sets.get("description") is None:
        sets.pop("description", None)
    if "url" in sets:
        await _check_target(sets["url"], _settings(request))
    row = _or_404(await store.change(request.app.state.runtime.pool, sub_id, sets), sub_id)
    return _json(await _status(request, row))


@router.delete("/{sub_id}", status_code=204, summary="Remove a subscription")
async def delete(request: Request, sub_id: SubId, _: Annotated[Actor, Depends(admin)]) -> Response:
    if not await store.delete(request.app.state.runtime.pool, sub_id):
        raise ProblemError(404, "Not found", f"no webhook subscription {sub_id}")
    return Response(status_code=204)


@router.post(
    "/{sub_id}/pause",
    summary="Stop delivering (the cursor stays)",
    responses={409: {"description": "The subscription is dead: resume it instead"}},
)
async def pause(request: Request, sub_id: SubId, _: Annotated[Actor, Depends(admin)]) -> Response:
    row = await _found(request, sub_id)
    if row["state"] == "dead":
        raise ProblemError(409, "Dead", f"{sub_id} is dead: resume it to deliver again")
    if row["state"] == "active":
        row = _or_404(
            await store.change(request.app.state.runtime.pool, sub_id, {"state": "paused"}),
            sub_id,
        )
    return _json(await _status(request, row))


@router.post(
    "/{sub_id}/resume", summary="Deliver again from the cursor (a paused or dead subscription)"
)
async def resume(request: Request, sub_id: SubId, _: Annotated[Actor, Depends(admin)]) -> Response:
    row = await _found(request, sub_id)
    if row["state"] != "active":
        row = _or_404(
            await store.change(
                request.app.state.runtime.pool, sub_id, {"state": "active", **store.RECOVERED}
            ),
            sub_id,
        )
    return _json(await _status(request, row))


@router.post("/{sub_id}/replay", summary="Move the cursor: deliver every event after `after`")
async def replay(
    request: Request, sub_id: SubId, body: Replay, _: Annotated[Actor, Depends(admin)]
) -> Response:
    await _found(request, sub_id)
    head = await _head(request)
    if body.after > head:
        raise _beyond(body.after, head)
    row = _or_404(
        await store.change(request.app.state.runtime.pool, sub_id, {"position": body.after}),
        sub_id,
    )
    return _json(await _status(request, row))


@router.post(
    "/{sub_id}/secret",
    summary="Rotate the signing secret (the new one is shown once; the old one keeps"
    " signing beside it for the overlap)",
)
async def rotate(
    request: Request,
    sub_id: SubId,
    _: Annotated[Actor, Depends(admin)],
    body: Rotation | None = None,
) -> Response:
    overlap = body.overlap_seconds if body is not None else None
    if overlap is None:
        overlap = _settings(request).rotation_overlap_seconds
    secret = signing.new_secret()
    expires = await store.rotate(
        request.app.state.runtime.pool, sub_id, secret, timedelta(seconds=overlap)
    )
    if expires is None:
        raise ProblemError(404, "Not found", f"no webhook subscription {sub_id}")
    return _json({"id": sub_id, "secret": secret, "previous_secret_expires_at": expires})
