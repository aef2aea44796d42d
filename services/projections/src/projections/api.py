"""The public JSON API, the exports and the feed (no token: everything here is public)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from clr_events.months import add_months
from clr_events.service.problems import ProblemError
from projections import queries
from projections.core import CONTROL
from projections.cursors import check_cursor
from projections.opendata import LICENCE
from projections.params import (
    MAX_SERIES_MONTHS,
    Blank,
    Country,
    Day,
    Id,
    Limit,
    Offset,
    Position,
    RecordedAt,
    Role,
    Text,
    earliest_start,
)
from projections.queries import PUBLIC_COLUMNS, ListFilter

router = APIRouter(tags=["public"])

Status = Literal["valid", "in_renewal_window", "expired", "withdrawn", "all"]
Level = Literal["bronze", "silver", "gold"]


def runtime_of(request: Request) -> Any:
    """The projections runtime of the app (its ``reads`` pool has the statement timeout)."""
    return request.app.state.runtime


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON with dates as ISO strings."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def list_filter(
    on: Annotated[Day | None, Blank] = None,
    country: Annotated[Country | None, Blank] = None,
    level: Annotated[Level | None, Blank] = None,
    sector: Annotated[Text | None, Blank] = None,
    q: Annotated[Text | None, Blank] = None,
    status: Status = "valid",
    limit: Limit = 100,
    offset: Offset = 0,
    recorded_at: Annotated[RecordedAt | None, Blank] = None,
) -> ListFilter:
    """The list's query parameters (shared by the API, the exports and the page): ``on``
    (valid time, default today) and ``recorded_at`` (transaction time, default now)."""
    return ListFilter(
        on or date.today(),
        country=country,
        level=level,
        sector=sector or None,
        q=q or None,
        status=status,
        limit=limit,
        offset=offset,
        recorded_at=recorded_at,
    )


Filter = Annotated[ListFilter, Depends(list_filter)]

LICENCE_LINK = f'<{LICENCE.url}>; rel="license"'
"""The open data's licence (CC BY 4.0) on the exports, as a ``Link`` header (RFC 8288)."""


async def labels_lag(request: Request) -> int | None:
    """Messages the label register has still to apply (None: unknown)."""
    lag: int | None = (await runtime_of(request).lags()).get("labels")
    return lag


@router.get("/api/labels", summary="The public label list (currently valid labels by default)")
async def labels(request: Request, f: Filter) -> Response:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        total, items = await queries.label_list(conn, f, runtime.settings)
    body = {"total": total, "on": f.on, "items": items}
    if f.recorded_at is not None:
        body["recorded_at"] = f.recorded_at
    return json_response(body)


async def _all_rows(request: Request, f: ListFilter) -> list[dict[str, Any]]:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        _, items = await queries.label_list(
            conn, replace(f, limit=None, offset=0), runtime.settings
        )
    return items


@router.get("/exports/labels.csv", summary="The public label list as CSV (same filters)")
async def labels_csv(request: Request, f: Filter) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(PUBLIC_COLUMNS)
    for row in await _all_rows(request, f):
        writer.writerow(["" if row[c] is None else row[c] for c in PUBLIC_COLUMNS])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="labels-{f.on}.csv"',
            "Link": LICENCE_LINK,
        },
    )


@router.get("/exports/labels.json", summary="The public label list as JSON (same filters)")
async def labels_json(request: Request, f: Filter) -> Response:
    rows = [{c: row[c] for c in PUBLIC_COLUMNS} for row in await _all_rows(request, f)]
    return json_response(
        {"on": f.on, "license": LICENCE.url, "columns": PUBLIC_COLUMNS, "items": rows},
        headers={
            "Content-Disposition": f'attachment; filename="labels-{f.on}.json"',
            "Link": LICENCE_LINK,
        },
    )


@router.get("/api/counts", summary="Valid labels per level and country on a day; ever awarded")
async def counts(
    request: Request,
    on: Annotated[Day | None, Blank] = None,
    recorded_at: Annotated[RecordedAt | None, Blank] = None,
) -> Response:
    async with runtime_of(request).reads.acquire() as conn:
        return json_response(await queries.counts(conn, on or date.today(), recorded_at))


@router.get(
    "/api/counts/series",
    summary="Valid labels per level on the first of each month",
    description=f"At most {MAX_SERIES_MONTHS} months: without `from`, the series starts at"
    " the first award or that many months before `to`, whichever is later.",
)
async def series(
    request: Request,
    start: Annotated[Day | None, Blank, Query(alias="from")] = None,
    end: Annotated[Day | None, Blank, Query(alias="to")] = None,
    recorded_at: Annotated[RecordedAt | None, Blank] = None,
) -> Response:
    async with runtime_of(request).reads.acquire() as conn:
        last = end or date.today()
        first = start or max(await queries.first_award(conn) or last, earliest_start(last))
        if first > last:
            raise ProblemError(422, "Invalid range", "'from' is after 'to'")
        if first < earliest_start(last):
            raise ProblemError(
                422, "Invalid range", f"a series spans at most {MAX_SERIES_MONTHS} months"
            )
        return json_response(
            {
                "from": first,
                "to": last,
                "points": await queries.series(conn, first, last, recorded_at),
            }
        )


@router.get("/api/expiring", summary="Valid labels that expire within some months")
async def expiring(
    request: Request, months: Annotated[int | None, Query(ge=1, le=36)] = None
) -> Response:
    runtime = runtime_of(request)
    today = date.today()
    horizon = months or runtime.settings.expiring_soon_months
    f = ListFilter(today, expires_by=add_months(today, horizon), limit=None)
    async with runtime.reads.acquire() as conn:
        _, rows = await queries.label_list(conn, f, runtime.settings)
    soon = sorted(rows, key=lambda r: r["valid_until"])
    return json_response({"on": today, "months": horizon, "items": soon})


@router.get("/api/renewal-window", summary="Labels past valid_until whose renewal is still open")
async def renewal_window(request: Request) -> Response:
    runtime = runtime_of(request)
    f = ListFilter(date.today(), status="in_renewal_window", limit=None)
    async with runtime.reads.acquire() as conn:
        total, rows = await queries.label_list(conn, f, runtime.settings)
    return json_response({"on": f.on, "total": total, "items": rows})


@router.get("/api/experts", summary="Experts certified on a day, by role and country")
async def experts(
    request: Request,
    on: Annotated[Day | None, Blank] = None,
    role: Annotated[Role | None, Blank] = None,
    country: Annotated[Country | None, Blank] = None,
    recorded_at: Annotated[RecordedAt | None, Blank] = None,
) -> Response:
    day = on or date.today()
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        rows = await queries.experts(conn, day, role, country, recorded_at)
    body: dict[str, Any] = {"on": day, "items": await runtime.names.fill(rows)}
    if recorded_at is not None:
        body["recorded_at"] = recorded_at
    return json_response(body)


@router.get("/api/organisations/{org_id}", summary="An organisation's labels and history")
async def organisation(
    request: Request,
    org_id: Id,
    on: Annotated[Day | None, Blank] = None,
    recorded_at: Annotated[RecordedAt | None, Blank] = None,
) -> Response:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        page = await queries.organisation(
            conn, org_id, on or date.today(), runtime.settings, recorded_at
        )
    if page is None:
        raise ProblemError(404, "Not found", f"no organisation {org_id}")
    return json_response(page)


@router.get(
    "/api/feed",
    summary="Public label events after a label_decisions global position",
    description="Structured CloudEvents in position order, up to the feed's head (every public"
    " label event up to the head is in the feed). Resume with `after` = the last"
    " `globalposition` you processed, the same number Kafka carries. A cursor beyond"
    " every position the feed holds, once the feed has read everything published, is a 409"
    " problem naming the `head`.",
    responses={409: {"description": "The cursor is beyond every position the feed holds"}},
)
async def feed(
    request: Request,
    after: Position = 0,
    limit: Limit = 100,
) -> Response:
    async with runtime_of(request).reads.acquire() as conn:
        await check_cursor(conn, after, lambda: labels_lag(request))
        head, documents = await queries.feed_page(conn, after, limit)
    last = orjson.loads(documents[-1])["globalposition"] if documents else after
    body = b'{"head":%d,"after":%d,"next":%d,"events":[%s]}' % (
        head,
        after,
        last,
        b",".join(d.encode() for d in documents),
    )
    link = f'</api/feed?after={last}&limit={limit}>; rel="next"'
    return Response(body, media_type="application/json", headers={"Link": link})


@router.get(
    "/api/feed/stream",
    summary="The feed as Server-Sent Events from a position (or Last-Event-ID)",
    response_class=StreamingResponse,
    responses={409: {"description": "The cursor is beyond every position the feed holds"}},
)
async def feed_stream(
    request: Request,
    after: Position = 0,
    last_event_id: Annotated[Position | None, Header()] = None,
) -> StreamingResponse:
    """Both cursors are validated here, before the stream starts: a bad one is a 422 (an
    EventSource does not reconnect after one), never a stream that opens and then fails."""
    runtime = runtime_of(request)
    cursor = after if last_event_id is None else last_event_id
    async with runtime.reads.acquire() as conn:
        await check_cursor(conn, cursor, lambda: labels_lag(request))

    async def events() -> AsyncIterator[bytes]:
        position = cursor
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            async with runtime.reads.acquire() as conn:
                _, documents = await queries.feed_page(conn, position, 500)
            for document in documents:
                event = orjson.loads(document)
                position = event["globalposition"]
                yield f"id: {position}\nevent: {event['type']}\ndata: {document}\n\n".encode()
            if not documents:
                yield b": waiting\n\n"
                await runtime.feed_signal.wait(15.0)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/read-models", tags=["operations"], summary="Generation, lag and rebuilds")
async def read_models(request: Request) -> Response:
    runtime = runtime_of(request)
    lags = await runtime.lags()
    active = await runtime.reads.fetch(f"SELECT * FROM {CONTROL}.read_models ORDER BY name")
    rebuilds = await runtime.reads.fetch(
        f"SELECT * FROM {CONTROL}.rebuilds ORDER BY started_at DESC LIMIT 20"
    )
    return json_response(
        {
            "read_models": [{**dict(r), "lag_messages": lags.get(r["name"])} for r in active],
            "rebuilds": [dict(r) for r in rebuilds],
        }
    )
