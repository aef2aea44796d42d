"""Backup and restore of an installation's PostgreSQL data, and the republish after the
Kafka topics were lost.

``python -m clr_events.backup backup DIR``: one ``pg_dump`` archive per schema of the
database (each service's schema with its event store, its own tables, idempotency keys,
relay checkpoints, consumer checkpoints and inbox; the projections' control schema and
read-model generations with their checkpoints), and ``manifest.json``: when, which
schemas in which order, each archive's SHA-256, and each event store's head (position
and chain hash) at the time of its dump. Each archive is consistent in itself (pg_dump
reads one snapshot); the services are independent and dedupe what they receive, so
archives taken a moment apart restore to a working whole.

``python -m clr_events.backup restore DIR [--schema S ...]``: checks the archives against
the manifest, drops each schema restored and restores it (a schema whose views read
another's tables after the one it reads), then re-hashes every event store's whole chain
and compares its head with the manifest's; any mismatch fails the restore. Stop the
services first (deploy/runbooks/restore.md).

``python -m clr_events.backup republish``: after the topics were lost and created again
(empty): every relay's checkpoint back to zero, so the relays publish each store again
from position 1, with the same event ids, positions and ``prevposition`` chain; every
consumer's checkpoint to the start of each partition, so the consumers read the new
topics from the start (their inbox drops what they had already handled, by event id).
Stop the services first (deploy/runbooks/kafka-lost.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from clr_events.store.postgres import PostgresEventStore

MANIFEST = "manifest.json"
_USER_SCHEMAS = (
    "SELECT nspname FROM pg_namespace WHERE nspname <> 'information_schema'"
    " AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'public' ORDER BY nspname"
)
_READS_FROM = """
    SELECT DISTINCT v.relnamespace::regnamespace::text AS schema,
                    t.relnamespace::regnamespace::text AS reads
      FROM pg_depend d
      JOIN pg_rewrite r ON r.oid = d.objid
      JOIN pg_class v ON v.oid = r.ev_class
      JOIN pg_class t ON t.oid = d.refobjid
     WHERE d.classid = 'pg_rewrite'::regclass AND v.relnamespace <> t.relnamespace
"""


class BackupError(RuntimeError):
    """A backup or restore cannot go on: a tool failed, an archive or a chain is wrong."""


_RUNNING = """
    SELECT count(DISTINCT pid) FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def _refuse_if_running(conn: asyncpg.Connection[Any]) -> None:
    """A running service instance holds its relays' advisory locks: refuse to go on.

    Raises:
        BackupError: some session holds an advisory lock in this database.
    """
    if sessions := await conn.fetchval(_RUNNING):
        raise BackupError(
            f"{sessions} sessions hold advisory locks (running services' relays): stop the"
            " services first"
        )


def tool(name: str) -> str:
    """The newest installed PostgreSQL client program ``name`` (``pg_dump``,
    ``pg_restore``): ``CLR_PG_BIN``, else Debian's newest ``/usr/lib/postgresql/*/bin``,
    else the one on ``PATH`` (a dump needs a client at least as new as the server).

    Raises:
        BackupError: there is none.
    """
    folders = [os.environ.get("CLR_PG_BIN", "")]
    installed = Path("/usr/lib/postgresql")
    if installed.is_dir():
        versions = [p for p in installed.iterdir() if p.name.isdigit()]
        folders += [str(p / "bin") for p in sorted(versions, key=lambda p: -int(p.name))]
    for folder in folders:
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"no {name}: install PostgreSQL's client programs")
    return found


def _run(command: Sequence[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()}")


def _empty_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def restore_order(schemas: Sequence[str], reads: dict[str, set[str]]) -> list[str]:
    """``schemas`` with each after the schemas its views read from (stable otherwise).

    Raises:
        BackupError: the schemas' views read from one another in a circle.
    """
    ordered: list[str] = []
    left = list(schemas)
    while left:
        ready = [s for s in left if not (reads.get(s, set()) & set(left)) - {s}]
        if not ready:
            raise BackupError(f"views read across these schemas in a circle: {left}")
        ordered += ready
        left = [s for s in left if s not in ready]
    return ordered


async def _head(conn: asyncpg.Connection[Any], schema: str) -> dict[str, Any] | None:
    """An event store's head (position, hash) in ``schema``, if it has one."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.event_store_head"):
        return None
    row = await conn.fetchrow(f"SELECT position, hash FROM {schema}.event_store_head")
    assert row is not None
    return {"position": int(row["position"]), "hash": bytes(row["hash"]).hex()}


async def backup(database_url: str, folder: Path) -> dict[str, Any]:
    """Dump every schema of the database into ``folder`` (created, must be empty) and
    write the manifest; returns it.

    Raises:
        BackupError: ``folder`` is not empty, or pg_dump failed.
    """
    await asyncio.to_thread(_empty_folder, folder)
    conn = await asyncpg.connect(database_url)
    try:
        schemas = [row[0] for row in await conn.fetch(_USER_SCHEMAS)]
        reads: dict[str, set[str]] = {}
        for row in await conn.fetch(_READS_FROM):
            reads.setdefault(row["schema"], set()).add(row["reads"])
        server = await conn.fetchval("SHOW server_version")
        entries: dict[str, dict[str, Any]] = {}
        dump = tool("pg_dump")
        for schema in schemas:
            # the head first: the dump's snapshot, taken after, has at least these events
            head = await _head(conn, schema)
            path = folder / f"{schema}.dump"
            await asyncio.to_thread(
                _run,
                [dump, "--format=custom", f"--schema={schema}", f"--file={path}", database_url],
            )
            entries[schema] = {"file": path.name, "sha256": _sha256(path), "event_store": head}
    finally:
        await conn.close()
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "server_version": server,
        "restore_order": restore_order(schemas, reads),
        "reads_from": {schema: sorted(found) for schema, found in reads.items()},
        "schemas": entries,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass(frozen=True)
class Restored:
    """A schema restored, and its event store's chain if it has one."""

    schema: str
    events: int | None
    problems: tuple[str, ...] = ()


async def restore(database_url: str, folder: Path, only: Sequence[str] = ()) -> list[Restored]:
    """Restore the schemas of the backup in ``folder`` (``only`` these, if given), each
    replacing the schema of that name, then verify every restored event store's chain.

    Raises:
        BackupError: services are running, an archive is missing or altered,
            pg_restore failed, or a restored
            chain does not verify or does not end at the manifest's head.
    """
    manifest = json.loads((folder / MANIFEST).read_text())
    entries: dict[str, dict[str, Any]] = manifest["schemas"]
    unknown = set(only) - set(entries)
    if unknown:
        raise BackupError(f"not in this backup: {sorted(unknown)}")
    wanted = set(only or entries)
    reads: dict[str, list[str]] = manifest.get("reads_from", {})
    while more := {s for s, found in reads.items() if wanted & set(found)} - wanted:
        wanted |= more  # dropping a schema drops the views that read it: restore them too
    schemas = [s for s in manifest["restore_order"] if s in wanted]
    for schema in schemas:
        path = folder / entries[schema]["file"]
        if not path.is_file() or _sha256(path) != entries[schema]["sha256"]:
            raise BackupError(f"{path.name} is missing or not the file backed up")
    conn = await asyncpg.connect(database_url)
    try:
        await _refuse_if_running(conn)
        for schema in reversed(schemas):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    pg_restore = tool("pg_restore")
    for schema in schemas:
        path = folder / entries[schema]["file"]
        await asyncio.to_thread(
            _run,
            [pg_restore, "--exit-on-error", "--no-owner", f"--dbname={database_url}", str(path)],
        )
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        return [await _verify(pool, schema, entries[schema]["event_store"]) for schema in schemas]
    finally:
        await pool.close()


async def _verify(pool: Pool, schema: str, head: dict[str, Any] | None) -> Restored:
    if head is None:
        return Restored(schema, None)
    report = await PostgresEventStore(pool, schema=schema).verify()
    problems = list(report.problems)
    # the chain's hash at the position the backup began at: the one read then
    at = await pool.fetchval(
        f"SELECT hash FROM {schema}.event_store WHERE position = $1", head["position"]
    )
    if head["position"] > 0 and (at is None or bytes(at).hex() != head["hash"]):
        problems.append(f"the chain at position {head['position']} is not the one backed up")
    if problems:
        raise BackupError(f"{schema}: the restored chain does not verify: {problems[:5]}")
    return Restored(schema, report.checked)


async def republish(database_url: str) -> dict[str, int]:
    """After the topics were created again, empty: every relay back to position zero (its
    subjects' public versions forgotten, so the events carry the same ones again) and every
    consumer back to the start of each partition; returns the rows changed per schema.

    Raises:
        BackupError: services are running (they must be stopped first).
    """
    changed: dict[str, int] = {}
    conn = await asyncpg.connect(database_url)
    try:
        await _refuse_if_running(conn)
        async with conn.transaction():
            for (schema,) in await conn.fetch(_USER_SCHEMAS):
                count = 0
                if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.relay_checkpoint"):
                    status = await conn.execute(
                        f"UPDATE {schema}.relay_checkpoint"
                        " SET position = 0, published = 0, updated_at = now()"
                    )
                    count += int(status.split()[-1])
                if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.relay_subjects"):
                    # the public versions start again with the events: republished, each
                    # carries the ce_publicversion it had (counted from the store again)
                    status = await conn.execute(f"DELETE FROM {schema}.relay_subjects")
                    count += int(status.split()[-1])
                if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.consumer_checkpoints"):
                    status = await conn.execute(
                        f'UPDATE {schema}.consumer_checkpoints SET "offset" = -1'
                    )
                    count += int(status.split()[-1])
                if count:
                    changed[schema] = count
    finally:
        await conn.close()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``backup DIR`` | ``restore DIR [--schema S]...`` | ``republish``."""
    parser = argparse.ArgumentParser(prog="python -m clr_events.backup", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup", help="dump every schema and a manifest").add_argument("dir")
    again = commands.add_parser("restore", help="restore a backup and verify every chain")
    again.add_argument("dir")
    again.add_argument("--schema", action="append", default=[], help="only this schema")
    commands.add_parser(
        "republish", help="after the topics were lost: relays and consumers from zero"
    )
    args = parser.parse_args(argv)
    say = sys.stdout.write
    url = ConnectionSettings().database_url
    try:
        if args.command == "backup":
            manifest = asyncio.run(backup(url, Path(args.dir)))
            for schema, entry in manifest["schemas"].items():
                head = entry["event_store"]
                at = f", event store at position {head['position']}" if head else ""
                say(f"{schema}: {entry['file']}{at}\n")
            say(f"backup in {args.dir}\n")
        elif args.command == "restore":
            for done in asyncio.run(restore(url, Path(args.dir), args.schema)):
                chain = f": chain verified, {done.events} events" if done.events is not None else ""
                say(f"{done.schema} restored{chain}\n")
        else:
            for schema, count in asyncio.run(republish(url)).items():
                say(f"{schema}: {count} checkpoints back to the start\n")
    except BackupError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
