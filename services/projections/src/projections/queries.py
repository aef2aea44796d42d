"""Every read of the read models, through the ``projections.*`` views (never a generation).

Status is derived from dates on the day asked (R10, ``clr_events.labels``): withdrawn from
``withdrawn_on`` on; valid up to ``valid_until``; then in the renewal window up to the
renewal deadline the label's decision carries; then expired. Only a decision recorded
before decisions carried their deadline falls back to the windows configured here.

Today (the default), with nothing asked of the past, a label's dates are its current row
(``labels``). Any other day (valid time) is answered from the label's history: the
validity segment that governs the day (``clr_events.labels.period_on``), so the list, an
organisation's page and the counts agree on every day. ``recorded_at`` (transaction time)
answers from the segments as they were recorded then (``segment_versions``), and the
history and ever-awarded totals from the decisions recorded by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from clr_events.labels import LabelStatus, status_sql
from clr_events.pg import Connection
from projections.params import like_pattern
from projections.settings import ProjectionSettings

LEVELS = ("bronze", "silver", "gold")
V = "projections"


def _status_sql(on: str, settings: ProjectionSettings) -> str:
    """R10 (``clr_events.labels``) on the label row ``l``, on the day ``on``."""
    windows = " ".join(
        f"WHEN '{level}' THEN {int(settings.renewal_windows.months(level))}" for level in LEVELS
    )
    # a decision recorded before decisions carried their deadline: the configured window
    deadline = (
        "coalesce(l.renewal_deadline, (l.valid_until + make_interval(months =>"
        f" CASE l.level {windows} ELSE 12 END))::date)"
    )
    return status_sql(on, "l.valid_until", deadline, "l.withdrawn_on")


def _segments(recorded_at: str | None) -> str:
    """The validity segments now, or as recorded at the moment ``recorded_at`` (SQL)."""
    if recorded_at is None:
        return f"{V}.labels_segments"
    return (
        "(SELECT DISTINCT ON (org_id, level, seq) org_id, level, seq, valid_from, valid_until,"
        " withdrawn_on, renewal_deadline, awarded_on, renewed_on"
        f" FROM {V}.labels_segment_versions WHERE recorded_at <= {recorded_at}"
        " ORDER BY org_id, level, seq, position DESC)"
    )


def _governing(on: str, recorded_at: str | None, org: str | None = None) -> str:
    """Per label, the segment that governs the day ``on``: the latest to begin on or before
    it (``clr_events.labels.period_on``); a label not begun by then has none (SQL)."""
    only = f" AND g.org_id = {org}" if org is not None else ""
    return (
        f"(SELECT DISTINCT ON (g.org_id, g.level) g.* FROM {_segments(recorded_at)} g"
        f" WHERE g.valid_from <= {on}{only}"
        " ORDER BY g.org_id, g.level, g.valid_from DESC, g.seq DESC)"
    )


_RECORDED_BY_2 = " AND (recorded_at IS NULL OR recorded_at <= $2)"
"""A history row recorded by the moment ``$2`` (no recorded time: applied by a generation
made before history rows carried one, so recorded before any moment asked of it)."""


def _current(on: date, recorded_at: datetime | None) -> bool:
    """Whether the current label rows answer: today, as recorded now."""
    return recorded_at is None and on == date.today()


def _valid_segment(on: str) -> str:
    return (
        f"s.valid_from <= {on} AND {on} <= s.valid_until"
        f" AND (s.withdrawn_on IS NULL OR {on} < s.withdrawn_on)"
    )


@dataclass(frozen=True)
class ListFilter:
    """Filters of the public label list."""

    on: date
    country: str | None = None
    level: str | None = None
    sector: str | None = None
    q: str | None = None
    status: str = "valid"
    """valid (the default), in_renewal_window, expired, withdrawn, or all."""
    expires_by: date | None = None
    """Only labels whose ``valid_until`` is on or before this day."""
    limit: int | None = 100
    """None: every matching row (the exports)."""
    offset: int = 0
    recorded_at: datetime | None = None
    """As recorded at this moment (transaction time); None: now."""


PUBLIC_COLUMNS = (
    "name",
    "country",
    "sector",
    "website",
    "level",
    "valid_until",
    "awarded_on",
    "renewed_on",
    "status",
    "org_id",
    "eccp_profile_id",
)
"""The columns of the public label list (ESCA's, plus award date and ids), in order."""


async def label_list(
    conn: Connection, f: ListFilter, settings: ProjectionSettings
) -> tuple[int, list[dict[str, Any]]]:
    """The public label list: (total matching, one page of rows)."""
    where: list[str] = ["true"]
    args: list[Any] = [f.on]
    for column, value in (("country", f.country), ("level", f.level)):
        if value:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    for column, value in (("sector", f.sector), ("name", f.q)):
        if value:
            args.append(like_pattern(value))
            where.append(f"{column} ILIKE ${len(args)} ESCAPE '\\'")
    if f.status != "all":
        args.append(f.status)
        where.append(f"status = ${len(args)}")
    if f.expires_by:
        args.append(f.expires_by)
        where.append(f"valid_until <= ${len(args)}")
    if _current(f.on, f.recorded_at):
        source = f"{V}.labels_labels"
    else:
        if f.recorded_at is not None:
            args.append(f.recorded_at)
        source = _governing("$1", f"${len(args)}" if f.recorded_at is not None else None)
    sql = (
        "SELECT * FROM (SELECT coalesce(o.name, l.org_id) AS name, o.country, o.sector,"
        " o.website, l.level, l.valid_until, l.awarded_on, l.renewed_on,"
        f" {_status_sql('$1', settings)} AS status, l.org_id, o.eccp_profile_id"
        f" FROM {source} l LEFT JOIN {V}.labels_orgs o USING (org_id)) AS t"
        f" WHERE {' AND '.join(where)}"
    )
    total = await conn.fetchval(f"SELECT count(*) FROM ({sql}) AS t", *args)
    page = await conn.fetch(
        f"{sql} ORDER BY country, name, level"
        f" LIMIT {'ALL' if f.limit is None else int(f.limit)} OFFSET {int(f.offset)}",
        *args,
    )
    return int(total), [dict(r) for r in page]


async def counts(conn: Connection, on: date, recorded_at: datetime | None = None) -> dict[str, Any]:
    """Valid labels on a day per level and per country, and ever-awarded totals by then;
    ``recorded_at``: as recorded at that moment."""
    moment = [] if recorded_at is None else [recorded_at]
    rows = await conn.fetch(
        f"SELECT coalesce(o.country, '??') AS country, s.level,"
        " count(DISTINCT s.org_id) AS n"
        f" FROM {_segments('$2' if moment else None)} s"
        f" LEFT JOIN {V}.labels_orgs o USING (org_id)"
        f" WHERE {_valid_segment('$1')} GROUP BY 1, 2",
        on,
        *moment,
    )
    by_level = dict.fromkeys(LEVELS, 0)
    by_country: dict[str, dict[str, int]] = {}
    for row in rows:
        by_level[row["level"]] = by_level.get(row["level"], 0) + row["n"]
        by_country.setdefault(row["country"], dict.fromkeys(LEVELS, 0))[row["level"]] = row["n"]
    ever = await conn.fetch(
        f"SELECT level, count(DISTINCT org_id) AS organisations, count(*) AS awards"
        f" FROM {V}.labels_history WHERE kind = 'awarded' AND on_date <= $1"
        f"{_RECORDED_BY_2 if moment else ''} GROUP BY level",
        on,
        *moment,
    )
    return {
        "as_of": on,
        **({"recorded_at": recorded_at} if recorded_at is not None else {}),
        "valid": {"total": sum(by_level.values()), "by_level": by_level},
        "by_country": dict(sorted(by_country.items())),
        "ever_awarded": {
            r["level"]: {"organisations": r["organisations"], "awards": r["awards"]} for r in ever
        },
    }


async def series(
    conn: Connection, start: date, end: date, recorded_at: datetime | None = None
) -> list[dict[str, Any]]:
    """Valid labels per level on the first day of every month from ``start`` to ``end``;
    ``recorded_at``: as recorded at that moment."""
    moment = [] if recorded_at is None else [recorded_at]
    rows = await conn.fetch(
        "SELECT d::date AS day, s.level, count(DISTINCT s.org_id) AS n"
        " FROM generate_series(date_trunc('month', $1::date), $2::date, interval '1 month') d"
        f" JOIN {_segments('$3' if moment else None)} s ON {_valid_segment('d::date')}"
        " GROUP BY 1, 2 ORDER BY 1",
        start,
        end,
        *moment,
    )
    out: dict[date, dict[str, Any]] = {}
    for row in rows:
        point = out.setdefault(row["day"], {"day": row["day"], **dict.fromkeys(LEVELS, 0)})
        point[row["level"]] = row["n"]
    return list(out.values())


async def countries(conn: Connection) -> list[str]:
    """Countries of the organisations the label register knows."""
    rows = await conn.fetch(f"SELECT DISTINCT country FROM {V}.labels_orgs ORDER BY 1")
    return [r["country"] for r in rows]


async def first_award(conn: Connection) -> date | None:
    """The day of the first award in the register."""
    day: date | None = await conn.fetchval(f"SELECT min(valid_from) FROM {V}.labels_segments")
    return day


async def experts(
    conn: Connection,
    on: date,
    role: str | None,
    country: str | None,
    recorded_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Experts certified on a day, by role and country (no names: ``projections.names``);
    another day than today, or ``recorded_at``: from every period of each certification (as
    recorded at that moment), the latest period in force on the day."""
    args: list[Any] = [on]
    where = [
        "c.valid_from <= $1 AND $1 <= c.valid_until AND (c.revoked_on IS NULL OR $1 < c.revoked_on)"
    ]
    for column, value in (("c.role", role), ("p.country", country)):
        if value:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if _current(on, recorded_at):
        source = f"{V}.experts_certifications"
    else:
        recorded = ""
        if recorded_at is not None:
            args.append(recorded_at)
            recorded = f" WHERE recorded_at <= ${len(args)}"
        periods = (
            "SELECT DISTINCT ON (person_id, role, seq) person_id, role, seq, valid_from,"
            f" valid_until, revoked_on FROM {V}.experts_certification_versions{recorded}"
            " ORDER BY person_id, role, seq, position DESC"
        )
        source = (
            "(SELECT DISTINCT ON (person_id, role) * FROM (" + periods + ") AS v"
            " WHERE valid_from <= $1 AND $1 <= valid_until"
            " AND (revoked_on IS NULL OR $1 < revoked_on) ORDER BY person_id, role, seq DESC)"
        )
    rows = await conn.fetch(
        "SELECT p.person_id, p.country, c.role, c.valid_from, c.valid_until,"
        " p.erased_on IS NOT NULL AS erased"
        f" FROM {source} c JOIN {V}.experts_people p USING (person_id)"
        f" WHERE {' AND '.join(where)} ORDER BY c.role, p.country, p.person_id",
        *args,
    )
    return [dict(r) for r in rows]


async def organisation(
    conn: Connection,
    org_id: str,
    on: date,
    settings: ProjectionSettings,
    recorded_at: datetime | None = None,
) -> dict[str, Any] | None:
    """An organisation's page: profile, labels, history, partnerships, agreements, missions.

    ``on`` other than today, or ``recorded_at``: each label as its history makes it on that
    day (``expired_on``: the day after ``valid_until`` once that has passed), as recorded
    at that moment; the history holds the decisions recorded by then.
    """
    org = await conn.fetchrow(f"SELECT * FROM {V}.organisations_orgs WHERE org_id = $1", org_id)
    if org is None:
        org = await conn.fetchrow(f"SELECT * FROM {V}.labels_orgs WHERE org_id = $1", org_id)
    moment = [] if recorded_at is None else [recorded_at]
    status = _status_sql("$2", settings)
    if _current(on, recorded_at):
        labels = await conn.fetch(
            f"SELECT l.level, l.awarded_on, l.renewed_on, l.valid_until, l.expired_on,"
            f" l.withdrawn_on, {status} AS status"
            f" FROM {V}.labels_labels l WHERE l.org_id = $1 ORDER BY l.level",
            org_id,
            on,
        )
    else:
        labels = await conn.fetch(
            "SELECT level, awarded_on, renewed_on, valid_until,"
            f" CASE WHEN status IN ('{LabelStatus.IN_RENEWAL_WINDOW}', '{LabelStatus.EXPIRED}')"
            " THEN valid_until + 1 END AS expired_on, withdrawn_on, status"
            " FROM (SELECT l.level, l.awarded_on, l.renewed_on, l.valid_until, l.withdrawn_on,"
            f" {status} AS status FROM {_governing('$2', '$3' if moment else None, '$1')} l)"
            " AS t ORDER BY level",
            org_id,
            on,
            *moment,
        )
    if org is None and not labels:
        return None
    history = await conn.fetch(
        "SELECT position, level, kind, on_date, valid_until, previous_valid_until, detail"
        f" FROM {V}.labels_history WHERE org_id = $1"
        f"{_RECORDED_BY_2 if moment else ''} ORDER BY position",
        org_id,
        *moment,
    )
    partnerships = await conn.fetch(
        "SELECT p.partnership_id, p.name, p.strand, p.call_id, p.start_on, p.duration_months,"
        f" m.joined_on FROM {V}.organisations_members m"
        f" JOIN {V}.organisations_partnerships p USING (partnership_id)"
        " WHERE m.org_id = $1 ORDER BY p.start_on",
        org_id,
    )
    agreements = await conn.fetch(
        "SELECT a.agreement_id, a.third_country, a.signed_on, a.place, a.extends"
        f" FROM {V}.organisations_parties x JOIN {V}.organisations_agreements a"
        " USING (agreement_id) WHERE x.org_id = $1 ORDER BY a.signed_on",
        org_id,
    )
    missions = await conn.fetch(
        f"SELECT event_id, theme, held_on FROM {V}.organisations_missions WHERE org_id = $1"
        " ORDER BY held_on",
        org_id,
    )
    profile = dict(org) if org is not None else {"org_id": org_id}
    return {
        "organisation": profile,
        "labels": [dict(r) for r in labels],
        "history": [dict(r) for r in history],
        "partnerships": [dict(r) for r in partnerships],
        "agreements": [dict(r) for r in agreements],
        "missions": [dict(r) for r in missions],
    }


async def feed_head(conn: Connection) -> int:
    """The feed's watermark: every public label event up to it is in the feed."""
    head = await conn.fetchval(f"SELECT head FROM {V}.labels_feed_head")
    return int(head or 0)


async def feed_page(conn: Connection, after: int, limit: int) -> tuple[int, list[str]]:
    """(head, structured CloudEvents after ``after`` up to the head, in position order)."""
    head = await feed_head(conn)
    rows = await conn.fetch(
        f"SELECT document AS d FROM {V}.labels_feed WHERE position > $1"
        " AND position <= $2 ORDER BY position LIMIT $3",
        after,
        head,
        limit,
    )
    return head, [r["d"] for r in rows]


async def current_labels(
    conn: Connection, org_ids: list[str], on: date, settings: ProjectionSettings
) -> list[dict[str, Any]]:
    """The ``label_decisions.current`` snapshot of each organisation."""
    rows = await conn.fetch(
        "SELECT l.org_id, o.name, o.country, o.sector, o.website, max(l.position) OVER w AS pos,"
        f" l.level, {_status_sql('$2', settings)} AS status, l.awarded_on, l.renewed_on,"
        " l.valid_until, l.expired_on, l.withdrawn_on"
        f" FROM {V}.labels_labels l LEFT JOIN {V}.labels_orgs o USING (org_id)"
        " WHERE l.org_id = ANY($1) WINDOW w AS (PARTITION BY l.org_id) ORDER BY l.org_id, l.level",
        org_ids,
        on,
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        snapshot = out.setdefault(
            r["org_id"],
            {
                "org_id": r["org_id"],
                "name": r["name"],
                "country": r["country"],
                "sector": r["sector"],
                "website": r["website"],
                "labels": [],
                "position": r["pos"],
                "as_of": on,
            },
        )
        snapshot["labels"].append(
            {
                k: r[k]
                for k in (
                    "level",
                    "status",
                    "awarded_on",
                    "renewed_on",
                    "valid_until",
                    "expired_on",
                    "withdrawn_on",
                )
            }
        )
    return list(out.values())
