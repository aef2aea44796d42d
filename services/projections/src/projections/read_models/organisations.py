"""Organisations with their partnerships and cooperation agreements (the organisation page).

Fed by ``collaboration.events``. The label history of the page comes from the label
register; indicator scores are never here (R11).
"""

from __future__ import annotations

from typing import Any

from clr_events.contracts import collaboration as co
from clr_events.pg import Connection
from projections.core import Event


class OrganisationDirectory:
    """Profiles, validation, partnership memberships, agreements and missions."""

    name: str = "organisations"
    layout: int = 1
    """The version of its tables and of what it writes: raise it with any change to either,
    and the service rebuilds the read model before writing to it (``projections.layouts``)."""
    topics: tuple[str, ...] = ("collaboration.events",)
    tables: dict[str, str] = {
        "orgs": "org_id text PRIMARY KEY, name text NOT NULL, country text NOT NULL,"
        " sector text NOT NULL, region text, website text, eccp_profile_id text,"
        " validated_on date, waived_by_programme text",
        "partnerships": "partnership_id text PRIMARY KEY, name text NOT NULL,"
        " strand text NOT NULL, call_id text NOT NULL, start_on date NOT NULL,"
        " duration_months integer NOT NULL",
        "members": "partnership_id text NOT NULL, org_id text NOT NULL, joined_on date NOT NULL,"
        " PRIMARY KEY (partnership_id, org_id)",
        "agreements": "agreement_id text PRIMARY KEY, third_country text NOT NULL,"
        " signed_on date NOT NULL, place text, extends text",
        "parties": "agreement_id text NOT NULL, org_id text NOT NULL,"
        " PRIMARY KEY (agreement_id, org_id)",
        "missions": "event_id text NOT NULL, org_id text NOT NULL, theme text NOT NULL,"
        " held_on date NOT NULL, PRIMARY KEY (event_id, org_id)",
    }
    partitioned: bool = (
        False  # members, parties, missions: rows of partnerships, agreements, events
    )
    indexes: tuple[str, ...] = (
        "CREATE INDEX ON {schema}.members (org_id)",
        "CREATE INDEX ON {schema}.parties (org_id)",
        "CREATE INDEX ON {schema}.missions (org_id)",
    )

    async def settle(self, conn: Connection) -> None:
        """Nothing is derived from the whole."""

    async def apply(self, conn: Connection, events: list[Event]) -> None:
        """Idempotent upserts, in the events' order; a run of the same statement (say, a
        stream of new organisations) goes as one pipelined ``executemany``, one round
        trip, instead of one each."""
        sql: str | None = None
        rows: list[tuple[Any, ...]] = []
        for event in events:
            for statement, args in _statements(event.contract):
                if statement != sql:
                    if sql is not None:
                        await conn.executemany(sql, rows)
                    sql, rows = statement, []
                rows.append(args)
        if sql is not None:
            await conn.executemany(sql, rows)


def _statements(c: object) -> list[tuple[str, tuple[Any, ...]]]:
    """What an event writes: statements with their arguments, in order."""
    if isinstance(c, co.OrganisationRegistered):
        return [
            (
                "INSERT INTO orgs VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)"
                " ON CONFLICT (org_id) DO UPDATE SET name = excluded.name,"
                " country = excluded.country, sector = excluded.sector,"
                " region = excluded.region, website = excluded.website,"
                " eccp_profile_id = excluded.eccp_profile_id",
                (c.org_id, c.name, c.country, c.sector, c.region, c.website, c.eccp_profile_id),
            )
        ]
    if isinstance(c, co.ProfileValidated):
        return [
            (
                "UPDATE orgs SET validated_on = $2, waived_by_programme = $3 WHERE org_id = $1",
                (c.org_id, c.validated_on, c.waived_by_programme),
            )
        ]
    if isinstance(c, co.PartnershipFormed):
        formed = (
            "INSERT INTO partnerships VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            (c.partnership_id, c.name, c.strand, c.call_id, c.start_on, c.duration_months),
        )
        return [formed, *((_MEMBER, (c.partnership_id, o, c.start_on)) for o in c.member_org_ids)]
    if isinstance(c, co.PartnerJoined):
        return [(_MEMBER, (c.partnership_id, c.org_id, c.joined_on))]
    if isinstance(c, co.CooperationAgreementSigned):
        signed = (
            "INSERT INTO agreements VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            (c.agreement_id, c.third_country, c.signed_on, c.place, c.extends),
        )
        party = "INSERT INTO parties VALUES ($1, $2) ON CONFLICT DO NOTHING"
        return [signed, *((party, (c.agreement_id, org)) for org in c.parties)]
    if isinstance(c, co.MatchmakingEventHeld):
        mission = "INSERT INTO missions VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
        return [(mission, (c.event_id, o, c.theme, c.held_on)) for o in c.participant_org_ids]
    return []


_MEMBER = "INSERT INTO members VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
