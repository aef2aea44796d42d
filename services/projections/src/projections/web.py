"""The public registry page: server-rendered HTML that works without JavaScript."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from clr_events.service.problems import ProblemError
from projections import queries
from projections.api import Filter, runtime_of
from projections.params import Blank, Country, Id, Role, earliest_start, http_url
from projections.queries import LEVELS

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.tests["http_url"] = http_url  # websites are links only when http(s)
router = APIRouter(include_in_schema=False)

COLOURS = {"bronze": "#8a4b14", "silver": "#4b5660", "gold": "#7a5c00"}
"""Label colours, each at least 4.5:1 against white (WCAG AA)."""


def chart(points: list[dict[str, Any]], width: int = 720, height: int = 240) -> dict[str, Any]:
    """Polylines of valid labels per level over time, in SVG coordinates."""
    pad_left, pad_bottom, pad_top = 48, 28, 12
    top = int(max([max(p[level] for level in LEVELS) for p in points] + [1]))
    span = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return round(pad_left + i * (width - pad_left - 8) / span, 1)

    def y(n: Any) -> float:
        return round(height - pad_bottom - int(n) * (height - pad_bottom - pad_top) / top, 1)

    lines = [
        {
            "level": level,
            "colour": COLOURS[level],
            "points": " ".join(f"{x(i)},{y(p[level])}" for i, p in enumerate(points)),
            "last": points[-1][level] if points else 0,
        }
        for level in LEVELS
    ]
    years = [
        {"x": x(i), "label": p["day"].year} for i, p in enumerate(points) if p["day"].month == 1
    ]
    ticks = [{"y": y(n), "label": n} for n in sorted({0, top // 2, top})]
    return {"width": width, "height": height, "lines": lines, "years": years, "ticks": ticks}


def _page_link(request: Request, **changes: Any) -> str:
    params = {**request.query_params, **{k: str(v) for k, v in changes.items()}}
    return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})


@router.get("/", response_class=HTMLResponse)
async def registry(request: Request, f: Filter) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        total, items = await queries.label_list(conn, f, runtime.settings)
        figures = await queries.counts(conn, f.on)
        first = await queries.first_award(conn)
        start = max(first, earliest_start(f.on)) if first else None
        points = await queries.series(conn, start, f.on) if start else []
        countries = await queries.countries(conn)
    page = f.limit or total  # the page always pages; None only for the exports
    query = urlencode({k: v for k, v in request.query_params.items() if k not in ("offset",)})
    return templates.TemplateResponse(
        request,
        "registry.html",
        {
            "f": f,
            "total": total,
            "items": items,
            "figures": figures,
            "chart": chart(points) if points else None,
            "points": points,
            "countries": countries,
            "levels": LEVELS,
            "export_query": query,
            "next": _page_link(request, offset=f.offset + page)
            if f.offset + page < total
            else None,
            "previous": _page_link(request, offset=max(f.offset - page, 0)) if f.offset else None,
        },
    )


@router.get("/organisations/{org_id}", response_class=HTMLResponse)
async def organisation(request: Request, org_id: Id) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        page = await queries.organisation(conn, org_id, date.today(), runtime.settings)
    if page is None:
        raise ProblemError(404, "Not found", f"no organisation {org_id}")
    return templates.TemplateResponse(request, "organisation.html", {"page": page})


@router.get("/experts", response_class=HTMLResponse)
async def experts(
    request: Request,
    role: Annotated[Role | None, Blank] = None,
    country: Annotated[Country | None, Blank] = None,
) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        people = await queries.experts(conn, date.today(), role or None, country or None)
    await runtime.names.fill(people)
    return templates.TemplateResponse(
        request, "experts.html", {"people": people, "role": role, "country": country}
    )


@router.get("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "subscribe.html", {})
