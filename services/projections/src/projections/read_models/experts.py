"""The expert register: certified experts by role and country, with their validity.

Fed by ``training_certification.events``. No names: personal data is not published, and
the expert list asks for names per response (``projections.names``); an erasure is kept
(``erased_on``) so the list can say so. A certification is shown while it is valid
(``valid_from`` to ``valid_until``) and not revoked; the register holds the dates, so
"certified on a day" is a query, not a stored status.
"""

from __future__ import annotations

from clr_events.contracts import training_certification as tc
from clr_events.pg import Connection
from projections.core import Event


class ExpertRegister:
    """People and their role certifications."""

    name: str = "experts"
    topics: tuple[str, ...] = ("training_certification.events",)
    tables: dict[str, str] = {
        "people": "person_id text PRIMARY KEY, country text NOT NULL, erased_on date",
        "certifications": "person_id text NOT NULL, role text NOT NULL,"
        " valid_from date NOT NULL, valid_until date NOT NULL, revoked_on date,"
        " certified_by text, PRIMARY KEY (person_id, role)",
    }
    partitioned: bool = True  # people and certifications by person: the key of every event
    indexes: tuple[str, ...] = ("CREATE INDEX ON {schema}.certifications (role, valid_until)",)
    upgrades: tuple[str, ...] = (
        # a generation made when names were published in plain text: they go
        "ALTER TABLE {schema}.people DROP COLUMN IF EXISTS name CASCADE",
        "ALTER TABLE {schema}.people ADD COLUMN IF NOT EXISTS erased_on date",
    )

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
            elif isinstance(c, tc.ExpertCertified):
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
