"""Writing audit bundles from the stores in PostgreSQL (``clr-audit export``, the
``/transparency/export.zip`` endpoint).

A store's bundle covers positions 1..N, N the tree size of its latest signed checkpoint:
every event in it is covered by a signature (events after it go into the next export,
once the next checkpoint is signed, within ``CLR_TLOG_EVERY_SECONDS``).
"""

from __future__ import annotations

import asyncio
import hashlib
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from clr_events.pg import Pool
from clr_events.store.hashing import format_time
from clr_events.transparency.bundle import FORMAT, MANIFEST, event_line, store_files
from clr_events.transparency.note import Checkpoint, Note, b64

_PAGE = 10_000


async def transparent_stores(pool: Pool) -> list[str]:
    """The schemas that hold an event store with a transparency log."""
    rows = await pool.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'tlog_checkpoints'"
        " AND table_schema IN (SELECT table_schema FROM information_schema.tables"
        " WHERE table_name = 'event_store') ORDER BY table_schema"
    )
    return [row[0] for row in rows]


async def export_store(pool: Pool, schema: str, out: Path) -> dict[str, Any]:
    """Write one store's files under ``out``; its manifest entry."""
    files = store_files(schema)
    for name in files.values():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        checkpoints = await conn.fetch(
            f"SELECT tree_size, root_hash, note, signed_at FROM {schema}.tlog_checkpoints"
            " ORDER BY tree_size"
        )
        keys = [row[0] for row in await conn.fetch(f"SELECT vkey FROM {schema}.tlog_keys")]
        size = checkpoints[-1]["tree_size"] if checkpoints else 0
        origin = (
            Checkpoint.parse(Note.parse(checkpoints[-1]["note"]).text).origin if checkpoints else ""
        )
        digests = {}
        events = hashlib.sha256()
        with (out / files["events"]).open("wb") as handle:
            after = 0
            while after < size:
                rows = await conn.fetch(
                    "SELECT position, stream_id, version, event_id, type, schema_version,"
                    f" data::text, metadata::text, recorded_at, hash FROM {schema}.event_store"
                    " WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3",
                    after,
                    size,
                    _PAGE,
                )
                if not rows:
                    break
                chunk = b"".join(
                    event_line(
                        r[0], r[1], r[2], str(r[3]), r[4], r[5], r[6], r[7], format_time(r[8]), r[9]
                    )
                    for r in rows
                )
                handle.write(chunk)
                events.update(chunk)
                after = rows[-1][0]
        digests[files["events"]] = events.hexdigest()
    lines = b"".join(
        orjson.dumps(
            {
                "tree_size": row["tree_size"],
                "root_hash": b64(row["root_hash"]),
                "signed_at": row["signed_at"].isoformat(),
                "note": row["note"],
            }
        )
        + b"\n"
        for row in checkpoints
    )
    (out / files["checkpoints"]).write_bytes(lines)
    (out / files["keys"]).write_text("".join(f"{key}\n" for key in keys))
    for kind in ("checkpoints", "keys"):
        digests[files[kind]] = hashlib.sha256((out / files[kind]).read_bytes()).hexdigest()
    return {"name": schema, "origin": origin, "tree_size": size, "sha256": digests}


async def export(pool: Pool, schemas: list[str], out: Path) -> dict[str, Any]:
    """Write a bundle of ``schemas`` into directory ``out``; its manifest."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "stores": [await export_store(pool, schema, out) for schema in schemas],
    }
    (out / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


def zip_directory(directory: Path, target: Path) -> None:
    """A zip of a bundle directory (its files at the zip's root)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
