"""The label register: public label list, counts as of any date, history, the public feed.

Fed by ``label_decisions.events`` (decisions) and ``collaboration.events`` (the public
columns of each organisation: name, country, sector, website). Tables:

- ``orgs``: the public columns of every registered organisation;
- ``labels``: one row per label record (organisation and level): the latest award, its
  validity and renewal deadline, renewal, expiry and withdrawal, and the last position
  applied (a republished event at or below it is a repeat and changes nothing);
- ``segments``: the periods in which a label was valid. An award opens one; a renewal
  before ``valid_until`` extends it (no gap), a renewal inside the renewal window opens a
  new one from the renewal day (the label was not valid in between); a withdrawal ends
  it; a correction (R15) moves its end. Counts "as of" a day count the segments holding
  that day, so any past day can be replayed; the status of one label on a day is the
  status of its segment that governs the day (R10 from the label's history,
  ``clr_events.labels.period_on``), so it agrees with the counts;
- ``segment_versions``: every state a segment has been in, with the position and the
  recorded time of the decision that made it (append-only): the segments as they were
  recorded at any past moment (transaction time), before later decisions and corrections;
- ``history``: every public decision, by position, with its recorded time (the
  organisation page);
- ``feed``: every public event as the CloudEvent it was (the structured JSON document as
  text: it is only ever served as it is), by label_decisions position, and
  ``feed_head``: the end of the unbroken ``prevposition`` chain, the feed's watermark
  (an event published before ``prevposition`` existed, without one, ends the chain);
- ``current_outbox``: organisations whose ``label_decisions.current`` snapshot is due.

Never an indicator score or result (R11): the contracts carry none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from clr_events.codec import to_structured
from clr_events.contracts import collaboration, label_decisions
from clr_events.labels import Period, renewal_extends
from clr_events.pg import Connection
from projections.core import Event

LABEL_TOPIC = "label_decisions.events"
DECISIONS = frozenset(
    {
        label_decisions.LabelAwarded,
        label_decisions.LabelRenewed,
        label_decisions.LabelExpired,
        label_decisions.LabelWithdrawn,
        label_decisions.LabelRecordCorrected,
    }
)
"""The label decisions this read model folds (by exact class: ``isinstance`` on a pydantic
model goes through ``ABCMeta`` and showed in the rebuild's profile)."""


@dataclass
class _Label:
    org_id: str
    level: str
    awarded_on: date | None = None
    renewed_on: date | None = None
    valid_until: date | None = None
    expired_on: date | None = None
    withdrawn_on: date | None = None
    position: int = 0
    renewal_deadline: date | None = None
    changed: bool = False


@dataclass
class _Segment:
    seq: int
    valid_from: date
    valid_until: date
    withdrawn_on: date | None = None
    renewal_deadline: date | None = None
    awarded_on: date | None = None
    renewed_on: date | None = None
    changed: bool = False

    def row(self) -> tuple[Any, ...]:
        """The segment's columns after (org_id, level, seq), in table order."""
        return (
            self.valid_from,
            self.valid_until,
            self.withdrawn_on,
            self.renewal_deadline,
            self.awarded_on,
            self.renewed_on,
        )


SEGMENT = (
    "valid_from date NOT NULL, valid_until date NOT NULL, withdrawn_on date,"
    " renewal_deadline date, awarded_on date, renewed_on date"
)
"""A validity segment's columns (``segments`` and ``segment_versions``)."""


class LabelRegister:
    """The read model behind the public list, the counts, the history and the feed."""

    name: str = "labels"
    layout: int = 1
    """The version of its tables and of what it writes: raise it with any change to either,
    and the service rebuilds the read model before writing to it (``projections.layouts``)."""
    topics: tuple[str, ...] = (LABEL_TOPIC, "collaboration.events")
    tables: dict[str, str] = {
        "orgs": "org_id text PRIMARY KEY, name text NOT NULL, country text NOT NULL,"
        " sector text NOT NULL, region text, website text, eccp_profile_id text",
        "labels": "org_id text NOT NULL, level text NOT NULL, awarded_on date,"
        " renewed_on date, valid_until date, expired_on date, withdrawn_on date,"
        " position bigint NOT NULL, renewal_deadline date, PRIMARY KEY (org_id, level)",
        "segments": "org_id text NOT NULL, level text NOT NULL, seq integer NOT NULL,"
        f" {SEGMENT}, PRIMARY KEY (org_id, level, seq)",
        "segment_versions": "org_id text NOT NULL, level text NOT NULL, seq integer NOT NULL,"
        f" position bigint NOT NULL, recorded_at timestamptz NOT NULL, {SEGMENT},"
        " PRIMARY KEY (org_id, level, seq, position)",
        "history": "position bigint PRIMARY KEY, org_id text NOT NULL, level text NOT NULL,"
        " kind text NOT NULL, on_date date NOT NULL, valid_until date,"
        " previous_valid_until date, detail text, recorded_at timestamptz",
        "feed": "position bigint PRIMARY KEY, prevposition bigint, type text NOT NULL,"
        " org_id text NOT NULL, document text NOT NULL",
        "feed_head": "one boolean PRIMARY KEY DEFAULT true CHECK (one), head bigint NOT NULL",
        "current_outbox": "org_id text PRIMARY KEY, position bigint NOT NULL",
    }
    upgrades: tuple[str, ...] = (
        "ALTER TABLE {schema}.labels ADD COLUMN IF NOT EXISTS renewal_deadline date",
        "ALTER TABLE {schema}.segments ADD COLUMN IF NOT EXISTS renewal_deadline date,"
        " ADD COLUMN IF NOT EXISTS awarded_on date, ADD COLUMN IF NOT EXISTS renewed_on date",
        "ALTER TABLE {schema}.history ADD COLUMN IF NOT EXISTS recorded_at timestamptz",
        "CREATE TABLE IF NOT EXISTS {schema}.segment_versions (org_id text NOT NULL,"
        " level text NOT NULL, seq integer NOT NULL, position bigint NOT NULL,"
        f" recorded_at timestamptz NOT NULL, {SEGMENT},"
        " PRIMARY KEY (org_id, level, seq, position))",
        "INSERT INTO {schema}.segment_versions SELECT org_id, level, seq, 0, '-infinity',"
        " valid_from, valid_until, withdrawn_on, renewal_deadline, awarded_on, renewed_on"
        " FROM {schema}.segments WHERE NOT EXISTS (SELECT FROM {schema}.segment_versions)",
    )
    """A generation made before label decisions carried their renewal deadline gets the
    column (empty: those labels fall back to the configured windows until rebuilt); one
    made before the read model kept segment versions and recorded times gets the columns,
    and the table with one version of each segment as it stands, at position 0, recorded
    at ``-infinity`` (its history's recorded times are empty, read likewise): a past day
    reads its segments (without their award and renewal days), and as recorded at any
    moment it reads as now, until it is rebuilt (``make rebuild-projection NAME=labels``),
    which records the real history."""
    partitioned: bool = True
    """Labels, segments, history and feed rows by the decision's key (``org_id:level``),
    orgs by the organisation's; the snapshot outbox is per organisation, across levels, so
    it is upserted in ``org_id`` order."""
    indexes: tuple[str, ...] = (
        "CREATE INDEX ON {schema}.history (org_id)",
        "CREATE INDEX ON {schema}.segments (valid_from, valid_until)",
        "CREATE INDEX ON {schema}.segment_versions (recorded_at)",
        "CREATE INDEX ON {schema}.labels (valid_until)",
    )

    async def apply(self, conn: Connection, events: list[Event]) -> None:
        """Fold the batch in memory, then write each table in one statement."""
        # an organisation registered twice in one batch: the later registration wins (one
        # upsert cannot touch a row twice)
        registered = {
            e.contract.org_id: e.contract
            for e in events
            if type(e.contract) is collaboration.OrganisationRegistered
        }
        if registered:
            await self._orgs(conn, list(registered.values()))
        decisions = [e for e in events if type(e.contract) in DECISIONS]
        if decisions:
            await self._decisions(conn, decisions)

    async def _orgs(
        self, conn: Connection, registered: list[collaboration.OrganisationRegistered]
    ) -> None:
        await conn.execute(
            "INSERT INTO orgs SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
            " $4::text[], $5::text[], $6::text[], $7::text[])"
            " ON CONFLICT (org_id) DO UPDATE SET name = excluded.name,"
            " country = excluded.country, sector = excluded.sector, region = excluded.region,"
            " website = excluded.website, eccp_profile_id = excluded.eccp_profile_id",
            *zip(
                *[
                    (o.org_id, o.name, o.country, o.sector, o.region, o.website, o.eccp_profile_id)
                    for o in registered
                ],
                strict=True,
            ),
        )

    async def _decisions(self, conn: Connection, events: list[Event]) -> None:
        """Fold the batch's decisions into their labels and latest segments in memory,
        then write each table in one statement."""
        keyed = [(_key(e.contract), e) for e in events]
        labels, segments = await _latest(conn, {key for key, _ in keyed})
        touched, versions, history, feed = _fold_batch(keyed, labels, segments)
        changed = [label for label in labels.values() if label.changed]
        if not changed:
            return
        await _write_labels(conn, changed)
        if touched:
            await _write_segments(conn, touched)
        # A position reaches history and feed once: only an event above its label's
        # position gets this far, so plain COPY (no conflict to handle) is enough.
        await conn.copy_records_to_table("segment_versions", records=versions)
        await conn.copy_records_to_table("history", records=history)
        await conn.copy_records_to_table("feed", records=feed)
        await _snapshots_due(conn, changed)

    async def settle(self, conn: Connection) -> None:
        """Advance the feed's head."""
        await _advance_feed_head(conn)


_Key = tuple[str, str]
"""A label record's key: (org_id, level)."""

_SegmentKey = tuple[str, str, int]
"""A validity segment's key: (org_id, level, seq)."""


async def _latest(
    conn: Connection, keys: set[_Key]
) -> tuple[dict[_Key, _Label], dict[_Key, _Segment]]:
    """The stored labels of ``keys`` and the latest validity segment of each."""
    orgs, levels = [k[0] for k in keys], [k[1] for k in keys]
    labels = {
        (r["org_id"], r["level"]): _Label(**dict(r))
        for r in await conn.fetch(
            "SELECT * FROM labels WHERE (org_id, level) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[]))",
            orgs,
            levels,
        )
    }
    segments = {
        (r["org_id"], r["level"]): _Segment(
            r["seq"],
            r["valid_from"],
            r["valid_until"],
            r["withdrawn_on"],
            r["renewal_deadline"],
            r["awarded_on"],
            r["renewed_on"],
        )
        for r in await conn.fetch(
            "SELECT DISTINCT ON (org_id, level) * FROM segments WHERE (org_id, level) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[]))"
            " ORDER BY org_id, level, seq DESC",
            orgs,
            levels,
        )
    }
    return labels, segments


def _fold_batch(
    keyed: list[tuple[_Key, Event]],
    labels: dict[_Key, _Label],
    segments: dict[_Key, _Segment],
) -> tuple[
    dict[_SegmentKey, _Segment], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]
]:
    """Fold the decisions in order into ``labels`` and ``segments`` (a label missing from
    ``labels`` is added), skipping one at or below its label's position (a republished
    event); returns the segments to write by (org_id, level, seq), and the segment
    version, history and feed rows of the decisions folded."""
    touched: dict[_SegmentKey, _Segment] = {}
    versions: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    feed: list[tuple[Any, ...]] = []
    for key, event in keyed:
        label = labels.setdefault(key, _Label(*key))
        position = event.envelope.globalposition
        if position <= label.position:
            continue  # a republished event this label has already seen
        label.position, label.changed = position, True
        segment, row = _fold(label, segments.get(key), event)
        recorded_at = event.envelope.time
        if segment is not None:
            segments[key] = segment
            if segment.changed:
                touched[(*key, segment.seq)] = segment
            if type(event.contract) is not label_decisions.LabelExpired:
                versions.append((*key, segment.seq, position, recorded_at, *segment.row()))
        history.append((position, *key, *row, recorded_at))
        feed.append(
            (
                position,
                event.envelope.prevposition,
                event.envelope.type,
                key[0],
                to_structured(event.envelope).decode(),
            )
        )
    return touched, versions, history, feed


async def _write_labels(conn: Connection, changed: list[_Label]) -> None:
    """Upsert the labels the batch changed."""
    await conn.execute(
        "INSERT INTO labels SELECT * FROM unnest($1::text[], $2::text[], $3::date[],"
        " $4::date[], $5::date[], $6::date[], $7::date[], $8::bigint[], $9::date[])"
        " ON CONFLICT (org_id, level) DO UPDATE SET awarded_on = excluded.awarded_on,"
        " renewed_on = excluded.renewed_on, valid_until = excluded.valid_until,"
        " expired_on = excluded.expired_on, withdrawn_on = excluded.withdrawn_on,"
        " position = excluded.position, renewal_deadline = excluded.renewal_deadline",
        *zip(
            *[
                (
                    lb.org_id,
                    lb.level,
                    lb.awarded_on,
                    lb.renewed_on,
                    lb.valid_until,
                    lb.expired_on,
                    lb.withdrawn_on,
                    lb.position,
                    lb.renewal_deadline,
                )
                for lb in changed
            ],
            strict=True,
        ),
    )


async def _write_segments(conn: Connection, touched: dict[_SegmentKey, _Segment]) -> None:
    """Upsert the validity segments the batch opened or changed."""
    await conn.execute(
        "INSERT INTO segments SELECT * FROM unnest($1::text[], $2::text[], $3::int[],"
        " $4::date[], $5::date[], $6::date[], $7::date[], $8::date[], $9::date[])"
        " ON CONFLICT (org_id, level, seq) DO UPDATE SET valid_from = excluded.valid_from,"
        " valid_until = excluded.valid_until, withdrawn_on = excluded.withdrawn_on,"
        " renewal_deadline = excluded.renewal_deadline, awarded_on = excluded.awarded_on,"
        " renewed_on = excluded.renewed_on",
        *zip(
            *[(org, level, seq, *s.row()) for (org, level, seq), s in touched.items()],
            strict=True,
        ),
    )


async def _snapshots_due(conn: Connection, changed: list[_Label]) -> None:
    """Mark the ``label_decisions.current`` snapshot of each changed label's organisation
    due, at its latest position (in ``org_id`` order: see ``partitioned``)."""
    await conn.execute(
        "INSERT INTO current_outbox SELECT org, max(pos) FROM unnest($1::text[],"
        " $2::bigint[]) AS u(org, pos) GROUP BY org ORDER BY org ON CONFLICT (org_id)"
        " DO UPDATE SET position = greatest(current_outbox.position, excluded.position)",
        [label.org_id for label in changed],
        [label.position for label in changed],
    )


async def _advance_feed_head(conn: Connection) -> None:
    """Move the watermark along the ``prevposition`` chain as far as it is unbroken.

    The feed holds one topic's public events, so in position order each event's
    ``prevposition`` is the position before it, up to the first hole: the head moves to
    the last event before the first row whose ``prevposition`` does not link. Only rows
    above the head are read (a handful in the steady state; in a rebuild, the partitions
    read ahead of the slowest one), in PostgreSQL, by the primary key.
    """
    moved = await conn.fetchval(
        """
        WITH head AS (SELECT coalesce((SELECT head FROM feed_head), 0) AS head),
        above AS (
            SELECT position, prevposition IS NOT DISTINCT FROM
                   lag(position, 1, (SELECT head FROM head)) OVER (ORDER BY position) AS linked
            FROM feed WHERE position > (SELECT head FROM head)
        ),
        reached AS (
            SELECT coalesce(max(position), (SELECT head FROM head)) AS head FROM above
            WHERE position < coalesce((SELECT min(position) FROM above WHERE NOT linked),
                                      9223372036854775807)
        )
        INSERT INTO feed_head (head) SELECT head FROM reached
        WHERE NOT EXISTS (SELECT FROM feed_head WHERE feed_head.head = reached.head)
        ON CONFLICT (one) DO UPDATE SET head = excluded.head
        RETURNING head
        """
    )
    if moved is not None:
        await conn.execute("SELECT pg_notify('projections_feed', $1::text)", str(moved))


def _key(contract: Any) -> _Key:
    return str(contract.org_id), str(contract.level)


HistoryRow = tuple[str, date, date | None, date | None, str | None]
"""(kind, day, valid_until, previous_valid_until, detail) of a public decision."""


def _fold(
    label: _Label, segment: _Segment | None, event: Event
) -> tuple[_Segment | None, HistoryRow]:
    """Change a label and its latest validity segment by one decision; its history row."""
    c = event.contract
    next_seq = segment.seq + 1 if segment else 1
    if type(c) is label_decisions.LabelAwarded:
        label.awarded_on, label.valid_until = c.awarded_on, c.valid_until
        label.renewal_deadline = c.renewal_deadline
        label.renewed_on = label.expired_on = label.withdrawn_on = None
        opened = _Segment(
            next_seq,
            c.awarded_on,
            c.valid_until,
            renewal_deadline=c.renewal_deadline,
            awarded_on=c.awarded_on,
            changed=True,
        )
        return opened, ("awarded", c.awarded_on, c.valid_until, None, None)
    if type(c) is label_decisions.LabelRenewed:
        label.renewed_on, label.valid_until = c.renewed_on, c.valid_until
        label.renewal_deadline = c.renewal_deadline
        label.expired_on = None
        row: HistoryRow = ("renewed", c.renewed_on, c.valid_until, c.previous_valid_until, None)
        if segment and renewal_extends(
            Period(segment.valid_from, segment.valid_until, withdrawn_on=segment.withdrawn_on),
            c.renewed_on,
        ):
            segment.valid_until, segment.renewal_deadline = c.valid_until, c.renewal_deadline
            segment.renewed_on, segment.changed = c.renewed_on, True
            return segment, row
        opened = _Segment(
            next_seq,
            c.renewed_on,
            c.valid_until,
            renewal_deadline=c.renewal_deadline,
            awarded_on=label.awarded_on,
            renewed_on=c.renewed_on,
            changed=True,
        )
        return opened, row
    if type(c) is label_decisions.LabelExpired:
        label.expired_on = c.expired_on
        return segment, ("expired", c.expired_on, c.valid_until, None, None)
    if type(c) is label_decisions.LabelWithdrawn:
        label.withdrawn_on = c.withdrawn_on
        if segment:
            segment.withdrawn_on, segment.changed = c.withdrawn_on, True
        return segment, ("withdrawn", c.withdrawn_on, None, None, c.reason)
    if type(c) is label_decisions.LabelRecordCorrected:
        label.valid_until, label.renewal_deadline = c.valid_until, c.renewal_deadline
        if segment:
            segment.valid_until, segment.renewal_deadline = c.valid_until, c.renewal_deadline
            segment.changed = True
        day = event.envelope.time.date()
        return segment, ("corrected", day, c.valid_until, c.previous_valid_until, c.reason)
    raise ValueError(f"not a label decision: {type(c).__name__}")
