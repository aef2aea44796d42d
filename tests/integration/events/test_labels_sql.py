"""R10 in SQL (``status_sql``) says what R10 in Python (``label_status``) says, day by day."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import product

from clr_events.labels import label_status, status_sql
from clr_events.pg import Pool


async def test_the_sql_status_agrees_with_the_rule(pool: Pool) -> None:
    until, deadline, withdrawn = date(2025, 3, 31), date(2026, 3, 31), date(2025, 9, 1)
    days = [until + timedelta(days=d) for d in (-400, -1, 0, 1, 150, 153, 365, 366, 900)]
    cases = list(
        product(days, [None, until], [None, deadline], [None, withdrawn, date(2020, 1, 1)])
    )
    expression = status_sql("c.o", "c.v", "c.d", "c.w")
    rows = await pool.fetch(
        f"SELECT {expression} AS status FROM unnest($1::date[], $2::date[], $3::date[],"
        " $4::date[]) WITH ORDINALITY AS c(o, v, d, w, n) ORDER BY n",
        *zip(*cases, strict=True),
    )
    assert [row["status"] for row in rows] == [label_status(*case).value for case in cases]
