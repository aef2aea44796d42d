"""Versioned migrations: numbered SQL files applied once each, in order, with a history.

A *component* (the event store, the idempotency keys, a relay's checkpoints, a service's
own tables, ...) keeps its migrations as files in a package folder:

- ``NNNN_name.sql``: a versioned migration, applied once, in version order. Once applied
  it must never change: its checksum (SHA-256 of the file) is kept, and a start that
  finds a different file refuses (:class:`MigrationError`); a change is a new file.
- ``R_name.sql``: a repeatable one (functions, views: ``CREATE OR REPLACE``), applied
  after the versioned ones whenever its checksum differs from the one last applied.

``{schema}`` in a file stands for the schema it is applied to (``{{``/``}}`` for a brace).
Lines starting with ``--`` are documentation and are not sent.

:func:`migrate` applies what is pending in one transaction under an advisory lock per
schema (instances starting together wait for one another; the second finds nothing to
do) and records each file in ``<schema>.schema_migrations`` (component, version, name,
checksum, applied_at, baseline). PostgreSQL's DDL is transactional: a migration that
fails leaves nothing behind, and the service does not start.

Baseline: an installation made before the history existed has the tables of migration
0001 already. :func:`migrate` recognises it by the first table 0001 creates (present, with
no history for the component) and applies 0001 anyway, since every 0001 is written to be
safe to run again (``IF NOT EXISTS``), recording it with ``baseline`` true.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

from clr_events.pg import Connection, Pool

_VERSIONED = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REPEATABLE = re.compile(r"^R_([a-z0-9_]+)\.sql$")
_CREATES = re.compile(r"CREATE TABLE IF NOT EXISTS \{schema\}\.([a-z_][a-z0-9_]*)", re.I)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
HISTORY = "schema_migrations"
"""The history table, in each schema that has migrations."""


class MigrationError(RuntimeError):
    """The migrations cannot be applied: a changed or missing applied file, a bad name."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: ``version`` (None for a repeatable one), ``name``, its text."""

    version: int | None
    name: str
    text: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, hex."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def sql(self, schema: str) -> str:
        """The statements for ``schema`` (documentation lines left out)."""
        lines = [line for line in self.text.splitlines() if not line.startswith("--")]
        return "\n".join(lines).format(schema=schema)


def parse(files: Iterable[tuple[str, str]]) -> list[Migration]:
    """Migrations from ``(file name, text)`` pairs: versioned ones by version, then the
    repeatable ones by name. Other file names are ignored.

    Raises:
        MigrationError: two files with one version, or versions with a gap.
    """
    versioned: dict[int, Migration] = {}
    repeatable: list[Migration] = []
    for filename, text in files:
        if match := _VERSIONED.match(filename):
            version = int(match[1])
            if version in versioned:
                raise MigrationError(f"two migrations numbered {version}: {filename}")
            versioned[version] = Migration(version, match[2], text)
        elif match := _REPEATABLE.match(filename):
            repeatable.append(Migration(None, match[1], text))
    if sorted(versioned) != list(range(1, len(versioned) + 1)):
        raise MigrationError(f"migrations must be numbered 1, 2, 3 ...: {sorted(versioned)}")
    return [versioned[v] for v in sorted(versioned)] + sorted(repeatable, key=lambda m: m.name)


def load(package: str, folder: str = "migrations") -> list[Migration]:
    """The migrations in ``folder`` of ``package`` (a folder of SQL files beside its code)."""
    root = resources.files(package) / folder
    return parse(
        (entry.name, entry.read_text()) for entry in root.iterdir() if entry.name.endswith(".sql")
    )


@dataclass(frozen=True)
class Applied:
    """What :func:`migrate` did: versions applied, repeatables (re)applied, baselined."""

    versions: list[int]
    repeatables: list[str]
    baseline: bool

    def __bool__(self) -> bool:
        return bool(self.versions or self.repeatables)


async def migrate(
    pool: Pool | Connection,
    schema: str,
    component: str,
    migrations: Sequence[Migration],
) -> Applied:
    """Apply the pending ``migrations`` of ``component`` to ``schema`` (created if needed).

    Raises:
        MigrationError: an applied versioned file changed or is gone (the database is
            newer than this code, or a file was edited), or the names are not plain.
    """
    for identifier in (schema, component):
        if not _IDENTIFIER.match(identifier):
            raise MigrationError(f"not a plain identifier: {identifier!r}")
    if isinstance(pool, asyncpg.Pool):
        async with pool.acquire() as conn:
            return await _migrate(conn, schema, component, migrations)
    return await _migrate(pool, schema, component, migrations)


async def _migrate(
    conn: Connection,
    schema: str,
    component: str,
    migrations: Sequence[Migration],
) -> Applied:
    history = f"{schema}.{HISTORY}"
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {schema};"
            f" CREATE TABLE IF NOT EXISTS {history} ("
            " component text NOT NULL, version integer, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
            " baseline boolean NOT NULL DEFAULT false, PRIMARY KEY (component, name),"
            " UNIQUE (component, version))"
        )
        rows = await conn.fetch(
            f"SELECT version, name, checksum FROM {history} WHERE component = $1", component
        )
        done = {row["version"]: row for row in rows if row["version"] is not None}
        repeated = {row["name"]: row["checksum"] for row in rows if row["version"] is None}
        by_version = {m.version: m for m in migrations if m.version is not None}
        for version, row in sorted(done.items()):
            known = by_version.get(version)
            if known is None:
                raise MigrationError(
                    f"{schema} ({component}): migration {version} ({row['name']}) was applied"
                    " but this code does not have it: the database is newer than the code"
                )
            if known.checksum != row["checksum"]:
                raise MigrationError(
                    f"{schema} ({component}): migration {version:04d}_{known.name}.sql changed"
                    " after it was applied; an applied migration never changes, add a new one"
                )
        marker = _first_table(by_version.get(1))
        baseline = (
            not rows
            and marker is not None
            and await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.{marker}")
        )
        versions: list[int] = []
        repeatables: list[str] = []
        for migration in migrations:
            if migration.version is not None and migration.version in done:
                continue
            if migration.version is None and repeated.get(migration.name) == migration.checksum:
                continue
            await conn.execute(migration.sql(schema))
            await conn.execute(
                f"INSERT INTO {history} (component, version, name, checksum, baseline)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (component, name) DO UPDATE"
                " SET checksum = excluded.checksum, applied_at = now()",
                component,
                migration.version,
                migration.name,
                migration.checksum,
                bool(baseline) and migration.version == 1,
            )
            if migration.version is None:
                repeatables.append(migration.name)
            else:
                versions.append(migration.version)
        return Applied(versions, repeatables, bool(baseline))


def _first_table(migration: Migration | None) -> str | None:
    """The first table a migration creates (``CREATE TABLE IF NOT EXISTS {schema}.name``)."""
    found = migration and _CREATES.search(migration.text)
    return found[1] if found else None


async def history(pool: Pool | Connection, schema: str) -> list[dict[str, object]]:
    """The schema's migration history, oldest first (empty without one)."""
    found = await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.{HISTORY}")
    if not found:
        return []
    rows = await pool.fetch(
        f"SELECT component, version, name, checksum, applied_at, baseline"
        f" FROM {schema}.{HISTORY} ORDER BY applied_at, component, version NULLS LAST"
    )
    return [dict(row) for row in rows]


def events_migrations(component: str) -> list[Migration]:
    """The migrations of one of the shared library's components (``event_store``,
    ``idempotency``, ``relay``, ``consumer``, ``dlq``, ``transparency``)."""
    return load("clr_events.migrations", component)
