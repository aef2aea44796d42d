"""The transparency log over HTTP, the same in every service that keeps one.

Public (hashes and signatures only, nothing of the events themselves):
``/transparency/key``, ``/transparency/checkpoint`` (the latest, as a signed note),
``/transparency/checkpoints``, ``/transparency/proofs/inclusion``,
``/transparency/proofs/consistency``. The auditor: ``/transparency/export.zip``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from clr_events.service.auth import Actor, Role, require
from clr_events.service.inputs import Offset, Position
from clr_events.service.problems import INVALID_REQUEST, ProblemError
from clr_events.transparency.export import export, zip_directory
from clr_events.transparency.log import TransparencyLog
from clr_events.transparency.note import b64

router = APIRouter(prefix="/transparency", tags=["transparency"])
Auditor = Annotated[Actor, Depends(require(Role.AUDITOR))]
NO_CHECKPOINT: dict[int | str, dict[str, Any]] = {
    404: {"description": "No checkpoint has been signed yet"}
}


def _log(request: Request) -> TransparencyLog:
    tlog: TransparencyLog = request.app.state.runtime.tlog
    return tlog


def _beyond(what: str, value: int, limit: int) -> ProblemError:
    return ProblemError(
        422,
        "Beyond the log",
        f"{what} {value} is beyond the store's {limit} events",
        type_=INVALID_REQUEST,
        errors=[{"pointer": f"/query/{what}", "message": f"at most {limit}"}],
    )


async def _signed_size(tlog: TransparencyLog) -> int:
    latest = await tlog.latest()
    if latest is None:
        raise ProblemError(404, "Not found", "no checkpoint has been signed yet")
    return latest.tree_size


async def _head(tlog: TransparencyLog) -> int:
    return await tlog.store.head_position()


@router.get("/key")
async def key(request: Request) -> dict[str, Any]:
    """The log's origin and verifier keys (C2SP signed-note form), newest last."""
    tlog = _log(request)
    return {"origin": tlog.origin, "algorithm": "Ed25519", "keys": await tlog.keys()}


@router.get("/checkpoint", response_class=PlainTextResponse, responses=NO_CHECKPOINT)
async def checkpoint(request: Request) -> PlainTextResponse:
    """The latest signed checkpoint, as a C2SP tlog-checkpoint signed note."""
    latest = await _log(request).latest()
    if latest is None:
        raise ProblemError(404, "Not found", "no checkpoint has been signed yet")
    return PlainTextResponse(latest.note, headers={"Cache-Control": "no-cache"})


@router.get("/checkpoints")
async def checkpoints(
    request: Request,
    after: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Signed checkpoints by tree size, above ``after``."""
    tlog = _log(request)
    found = await tlog.checkpoints(after=after, limit=limit)
    return {"origin": tlog.origin, "checkpoints": [c.document() for c in found]}


@router.get("/proofs/inclusion", responses=NO_CHECKPOINT)
async def inclusion(
    request: Request, position: Position, tree_size: Position | None = None
) -> dict[str, Any]:
    """RFC 9162 inclusion proof of the event at ``position`` in the tree of ``tree_size``
    (by default the latest checkpoint's). The leaf input is the event's chain hash."""
    tlog = _log(request)
    size = tree_size or await _signed_size(tlog)
    head = await _head(tlog)
    if size > head:
        raise _beyond("tree_size", size, head)
    if position > size:
        raise _beyond("position", position, size)
    tree = await tlog.tree(size)
    return {
        "position": position,
        "leaf_index": position - 1,
        "tree_size": size,
        "leaf_hash": b64(tree.leaf(position - 1)),
        "root_hash": b64(tree.root(size)),
        "proof": [b64(node) for node in tree.inclusion_proof(position - 1, size)],
    }


@router.get("/proofs/consistency", responses=NO_CHECKPOINT)
async def consistency(
    request: Request, first: Offset, second: Position | None = None
) -> dict[str, Any]:
    """RFC 9162 consistency proof that the tree of ``first`` is a prefix of the tree of
    ``second`` (by default the latest checkpoint's)."""
    tlog = _log(request)
    size = second or await _signed_size(tlog)
    head = await _head(tlog)
    if size > head:
        raise _beyond("second", size, head)
    if first > size:
        raise ProblemError(
            422,
            "Sizes out of order",
            f"first ({first}) is larger than second ({size})",
            type_=INVALID_REQUEST,
            errors=[{"pointer": "/query/first", "message": f"at most {size}"}],
        )
    tree = await tlog.tree(size)
    return {
        "first": first,
        "second": size,
        "first_root": b64(tree.root(first)),
        "second_root": b64(tree.root(size)),
        "proof": [b64(node) for node in tree.consistency_proof(first, size)],
    }


@router.get(
    "/export.zip",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the bundle"}},
)
async def export_bundle(request: Request, _auditor: Auditor) -> Response:
    """The store's audit bundle up to its latest checkpoint (``clr-audit verify`` it)."""
    tlog = _log(request)
    with tempfile.TemporaryDirectory() as scratch:
        directory, target = Path(scratch) / "bundle", Path(scratch) / "bundle.zip"
        await export(tlog.pool, [tlog.schema], directory)
        await asyncio.to_thread(zip_directory, directory, target)
        body = target.read_bytes()
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{tlog.schema}-bundle.zip"'},
    )
