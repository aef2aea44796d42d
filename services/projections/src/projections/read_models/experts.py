"""The expert register: certified experts by role and country, with their validity.

Fed by ``training_certification.events``. No names: personal data is not published, and
the expert list asks for names per response (``projections.names``); an erasure is kept
(``erased_on``) so the list can say so. A certification is shown while it is valid
(``valid_from`` to ``valid_until``) and not revoked; the register holds the dates, so
"certified on a day" is a query, not a stored status. ``certifications`` holds each role's
current certification (today's answer); ``certification_versions`` is append-only: every
state of every certification period (a certification again opens a new period, ``seq``),
keyed by the training_certification position of the event that made it, with its recorded
time, so any past day is answered from the history, as recorded at any past moment.
"""

from __future__ import annotations

from typing import Any

from clr_events.contracts import training_certification as tc
from clr_events.pg import Connection
from projections.core import Event

VERSIONS = (
    "person_id text NOT NULL, role text NOT NULL, seq integer NOT NULL,"
    " position bigint NOT NULL, recorded_at timestamptz NOT NULL, valid_from date NOT NULL,"
    " valid_until date NOT NULL, revoked_on date, PRIMARY KEY (person_id, role, seq, position)"
)

_NEXT_VERSION = """
INSERT INTO certification_versions
SELECT $1::text, $2::text, {seq}, $3::bigint, $4::timestamptz, {valid_from}, {valid_until},
       {revoked_on}
FROM (SELECT max(seq) AS seq, max(position) AS position FROM certification_versions
      WHERE person_id = $1 AND role = $2) AS top
LEFT JOIN LATERAL (SELECT * FROM certification_versions v WHERE v.person_id = $1
      AND v.role = $2 AND v.seq = top.seq ORDER BY v.position DESC LIMIT 1) AS latest ON true
WHERE (top.position IS NULL OR top.position < $3){guard}
"""
"""A certification period's next version, from its latest: once per event (a republished
event, at or below the last position seen for the role, adds nothing)."""


class ExpertRegister:
    """People and their role certifications."""

    name: str = "experts"
    layout: int = 1
    """The version of its tables and of what it writes: raise it with any change to either,
    and the service rebuilds the read model before writing to it (``projections.layouts``)."""
    topics: tuple[str, ...] = ("training_certification.events",)
    tables: dict[str, str] = {
        "people": "person_id text PRIMARY KEY, country text NOT NULL, erased_on date",
        "certifications": "person_id text NOT NULL, role text NOT NULL,"
        " valid_from date NOT NULL, valid_until date NOT NULL, revoked_on date,"
        " certified_by text, PRIMARY KEY (person_id, role)",
        "certification_versions": VERSIONS,
    }
    upgrades: tuple[str, ...] = (
        "ALTER TABLE {schema}.people DROP COLUMN IF EXISTS name CASCADE",
        "ALTER TABLE {schema}.people ADD COLUMN IF NOT EXISTS erased_on date",
        "CREATE TABLE IF NOT EXISTS {schema}.certification_versions (" + VERSIONS + ")",
        "INSERT INTO {schema}.certification_versions SELECT person_id, role, 1, 0, '-infinity',"
        " valid_from, valid_until, revoked_on FROM {schema}.certifications"
        " WHERE NOT EXISTS (SELECT FROM {schema}.certification_versions)",
    )
    """A generation made when names were published in plain text loses them (and gets
    ``erased_on``). One made before the versions were kept gets the table, with one version
    of each certification as it stands (position 0, recorded at ``-infinity``): a past day
    reads as before until the generation is rebuilt, which records every period."""
    partitioned: bool = True  # people and certifications by person: the key of every event
    indexes: tuple[str, ...] = ("CREATE INDEX ON {schema}.certifications (role, valid_until)",)

    async def settle(self, conn: Connection) -> None:
        """Nothing is derived from the whole."""

    async def apply(self, conn: Connection, events: list[Event]) -> None:
        """One statement per event: these streams are small."""
        for event in events:
            c = event.contract
            if isinstance(c, tc.PersonRegistered):
                await conn.execute(
                    "INSERT INTO people (person_id, country) VALUES ($1, $2)"
                    " ON CONFLICT (person_id) DO UPDATE SET country = excluded.country",
                    c.person_id,
                    c.country,
                )
            elif isinstance(c, tc.PersonalDataErased):
                await conn.execute(
                    "UPDATE people SET erased_on = $2 WHERE person_id = $1",
                    c.person_id,
                    c.erased_on,
                )
            if type(c) in _PERIODS:
                await _version(conn, event)
            if isinstance(c, tc.ExpertCertified):
                await conn.execute(
                    "INSERT INTO certifications VALUES ($1, $2, $3, $4, NULL, $5)"
                    " ON CONFLICT (person_id, role) DO UPDATE SET"
                    " valid_from = excluded.valid_from, valid_until = excluded.valid_until,"
                    " revoked_on = NULL, certified_by = excluded.certified_by",
                    c.person_id,
                    c.role,
                    c.valid_from,
                    c.valid_until,
                    c.certified_by,
                )
            elif isinstance(c, tc.CertificationRenewed):
                await conn.execute(
                    "UPDATE certifications SET valid_until = $3 WHERE person_id = $1 AND role = $2",
                    c.person_id,
                    c.role,
                    c.valid_until,
                )
            elif isinstance(c, tc.CertificationRevoked):
                await conn.execute(
                    "UPDATE certifications SET revoked_on = $3 WHERE person_id = $1 AND role = $2",
                    c.person_id,
                    c.role,
                    c.revoked_on,
                )


_PERIODS = (tc.ExpertCertified, tc.CertificationRenewed, tc.CertificationRevoked)


async def _version(conn: Connection, event: Event) -> None:
    """Append the version of a certification period the event makes."""
    c = event.contract
    if type(c) is tc.ExpertCertified:
        sql = _NEXT_VERSION.format(
            seq="coalesce(top.seq, 0) + 1",
            valid_from="$5::date",
            valid_until="$6::date",
            revoked_on="NULL",
            guard="",
        )
        args: tuple[Any, ...] = (c.valid_from, c.valid_until)
    elif type(c) is tc.CertificationRenewed:
        sql = _NEXT_VERSION.format(
            seq="top.seq",
            valid_from="latest.valid_from",
            valid_until="$5::date",
            revoked_on="latest.revoked_on",
            guard=" AND top.seq IS NOT NULL",
        )
        args = (c.valid_until,)
    else:
        assert type(c) is tc.CertificationRevoked
        sql = _NEXT_VERSION.format(
            seq="top.seq",
            valid_from="latest.valid_from",
            valid_until="latest.valid_until",
            revoked_on="$5::date",
            guard=" AND top.seq IS NOT NULL",
        )
        args = (c.revoked_on,)
    await conn.execute(
        sql, c.person_id, c.role, event.envelope.globalposition, event.envelope.time, *args
    )
