"""The public registry page: server-rendered HTML that works without JavaScript, in
English, French and German (``i18n``), with the open-data catalogue (``opendata``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from clr_events.service.problems import ProblemError
from projections import i18n, opendata, queries
from projections.api import Filter, runtime_of
from projections.i18n import N_
from projections.params import Blank, Country, Id, Role, earliest_start, http_url
from projections.queries import LEVELS

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.tests["http_url"] = http_url  # websites are links only when http(s)
templates.env.add_extension("jinja2.ext.i18n")
templates.env.install_gettext_callables(*i18n.CALLABLES, newstyle=True)  # type: ignore[attr-defined]
router = APIRouter(include_in_schema=False)

COLOURS = {"bronze": "#8a4b14", "silver": "#4b5660", "gold": "#7a5c00"}
"""Label colours, each at least 4.5:1 against white (WCAG AA)."""

NAMES = {
    "level": {"bronze": N_("Bronze"), "silver": N_("Silver"), "gold": N_("Gold")},
    "status": {
        "valid": N_("valid"),
        "in_renewal_window": N_("in renewal window"),
        "expired": N_("expired"),
        "withdrawn": N_("withdrawn"),
        "all": N_("all"),
    },
    "kind": {
        "awarded": N_("awarded"),
        "renewed": N_("renewed"),
        "expired": N_("expired"),
        "withdrawn": N_("withdrawn"),
        "corrected": N_("corrected"),
    },
    "role": {
        "benchmarking_expert": N_("Benchmarking expert (Bronze)"),
        "silver_auditor": N_("Silver auditor"),
        "gold_assessor": N_("Gold assessor"),
        "trainer": N_("Trainer"),
    },
}
"""The stored codes shown on the page, as messages of the catalogues."""


def name_of(kind: str, code: str | None) -> str:
    """A stored code (a level, status, decision or role) in the page's language."""
    if not code:
        return ""
    known = NAMES[kind].get(code)
    return i18n.gettext(known) if known else code.replace("_", " ")


templates.env.globals["name_of"] = name_of
templates.env.globals["country_name"] = lambda code: i18n.country_name(code, i18n.current.get())


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


def language(request: Request) -> i18n.Choice:
    """The page's language: ``?lang=``, else ``Accept-Language``, else English."""
    return i18n.choose(request.query_params.get("lang"), request.headers.get("accept-language"))


def render(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
    """A page in the visitor's language: ``?lang=``, else ``Accept-Language``, else English.

    Internal links keep an explicit ``?lang=`` (``href``), so a permalink stays in its
    language; the answer varies by ``Accept-Language`` and says its ``Content-Language``.
    """
    choice = language(request)

    def href(path: str, **params: Any) -> str:
        query = {k: v for k, v in params.items() if v not in ("", None)}
        if choice.explicit:
            query["lang"] = choice.lang
        return f"{path}?{urlencode(query)}" if query else path

    switch = [
        {"code": code, "name": name, "href": _page_link(request, lang=code)}
        for code, name in i18n.LANGUAGES.items()
    ]
    token = i18n.current.set(choice.lang)
    try:
        response = templates.TemplateResponse(
            request,
            name,
            {
                **context,
                "lang": choice.lang,
                "explicit_lang": choice.explicit,
                "switch": switch,
                "href": href,
                "licence": opendata.LICENCE,
            },
        )
    finally:
        i18n.current.reset(token)
    response.headers["Content-Language"] = choice.lang
    response.headers["Vary"] = "Accept-Language"
    response.headers["Link"] = (
        f'<{opendata.CATALOGUE_PATH}>; rel="describedby"; type="{opendata.JSONLD}",'
        f' <{opendata.LICENCE.url}>; rel="license"'
    )
    return response


@router.get("/", response_class=HTMLResponse)
async def registry(request: Request, f: Filter) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        total, items = await queries.label_list(conn, f, runtime.settings)
        figures = await queries.counts(conn, f.on, f.recorded_at)
        first = await queries.first_award(conn)
        start = max(first, earliest_start(f.on)) if first else None
        points = await queries.series(conn, start, f.on, f.recorded_at) if start else []
        countries = await queries.countries(conn)
    page = f.limit or total  # the page always pages; None only for the exports
    query = urlencode(
        {k: v for k, v in request.query_params.items() if k not in ("offset", "lang")}
    )
    lang = language(request).lang
    named = sorted(((c, i18n.country_name(c, lang)) for c in countries if c), key=lambda c: c[1])
    return render(
        request,
        "registry.html",
        {
            "f": f,
            "total": total,
            "items": items,
            "figures": figures,
            "chart": chart(points) if points else None,
            "points": points,
            "countries": named,
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
    base = str(request.base_url).rstrip("/")
    return render(
        request,
        "organisation.html",
        {"page": page, "jsonld": opendata.organisation(page, base)},
    )


@router.get("/experts", response_class=HTMLResponse)
async def experts(
    request: Request,
    role: Annotated[Role | None, Blank] = None,
    country: Annotated[Country | None, Blank] = None,
) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.reads.acquire() as conn:
        people = await queries.experts(conn, date.today(), role or None, country or None)
        everyone = await queries.experts(conn, date.today(), None, None)
    await runtime.names.fill(people)
    lang = language(request).lang
    codes = {p["country"] for p in everyone if p["country"]} | ({country} if country else set())
    countries = sorted(((c, i18n.country_name(c, lang)) for c in codes), key=lambda c: c[1])
    return render(
        request,
        "experts.html",
        {"people": people, "role": role, "country": country, "countries": countries},
    )


@router.get("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> HTMLResponse:
    return render(request, "subscribe.html", {"catalogue": opendata.CATALOGUE_PATH})


@router.get(opendata.CATALOGUE_PATH)
async def catalogue(request: Request) -> Response:
    """The open data as a DCAT-AP catalogue (JSON-LD): the label list, the counts, the feed."""
    base = str(request.base_url).rstrip("/")
    return Response(
        opendata.dumps(opendata.catalogue(base)),
        media_type=opendata.JSONLD,
        headers={"Link": f'<{opendata.LICENCE.url}>; rel="license"'},
    )
