"""An auditor's bundle, end to end: the collaboration service on an installation of its
own signs checkpoints; the bundle exported over HTTP and by ``clr-audit export`` verifies
offline, a witness co-signs; then every insider's tampering is caught by ``clr-audit
verify`` against checkpoints held from before: on copies of the bundle (an altered event,
a consistent rewrite, a cut tail, a forged append, a reorder, a dropped event) and in the
database itself with the append-only trigger disabled (a consistent rewrite of the chain,
then the same with the checkpoints deleted and signed again)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import orjson
import pytest

from clr_dev import supervisor
from clr_dev.installation import install, principal_env, service_env, uninstall
from clr_events.settings import ConnectionSettings
from clr_events.store.hashing import GENESIS_HASH, chain, digest_of, format_time
from tests.e2e.conftest import PORT_BASE, System
from tests.e2e.scenario import organisation

PORT = PORT_BASE + 50
AUDIT = [sys.executable, "-m", "clr_events.transparency.audit"]
EVENTS = "stores/collaboration/events.jsonl"
CHECKPOINTS = "stores/collaboration/checkpoints.jsonl"


@dataclass
class Scratch:
    """One service on a scratch installation, and how to start it again."""

    settings: ConnectionSettings
    env: dict[str, str]
    logs: Path
    running: supervisor.Running | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{PORT}"

    def start(self) -> None:
        self.running = supervisor.start(self.logs, ports={"collaboration": PORT}, env=self.env)

    def launch(self) -> None:
        """Start the service without waiting for it to be ready (it may refuse to be)."""
        running = supervisor.Running({"collaboration": self.url}, self.logs)
        running.environments["collaboration"] = {
            **os.environ,
            **self.env,
            **principal_env("collaboration", {**os.environ, **self.env}),
            "CLR_PORT": str(PORT),
        }
        running.launch("collaboration")
        self.running = running

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


@pytest.fixture(scope="module")
def scratch(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scratch]:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = asyncio.run(install(base, "clr_tlog"))
    env = {
        **service_env(settings, "s" * 64),
        "CLR_TLOG_EVERY_EVENTS": "8",
        "CLR_TLOG_EVERY_SECONDS": "1",
        "CLR_TLOG_KEY_DIR": str(tmp_path_factory.mktemp("tlog-keys")),
    }
    scratch = Scratch(settings, env, tmp_path_factory.mktemp("tlog-logs"))
    scratch.start()
    try:
        yield scratch
    finally:
        scratch.stop()
        asyncio.run(uninstall(base, settings))


@pytest.fixture
async def system(scratch: Scratch, kafka_bootstrap: str) -> AsyncIterator[System]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        yield System(
            {"collaboration": scratch.url},
            client,
            kafka_bootstrap,
            "s" * 64,
            scratch.settings.instance,
            scratch.settings.database_url,
        )


def audit(*args: str | Path) -> tuple[int, dict[str, Any]]:
    """``clr-audit verify ... --json``: its status and report."""
    done = subprocess.run(
        [*AUDIT, "verify", *map(str, args), "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def problems(report: dict[str, Any]) -> list[tuple[str, int | None, int | None]]:
    return [(p["kind"], p["first"], p["last"]) for s in report["stores"] for p in s["problems"]]


async def head(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT position FROM collaboration.event_store_head"))
    finally:
        await conn.close()


async def signed_to_head(system: System) -> int:
    """Wait until the latest checkpoint covers every event; its size."""
    target = await head(system.database_url)

    async def covered() -> int:
        answer = await system.get("collaboration", "/transparency/checkpoint")
        if answer.status_code != 200:
            return 0
        size = int(answer.text.splitlines()[1])
        return size if size >= target else 0

    result: int = await system.until(covered, "a checkpoint of the head", timeout=30)
    return result


async def hold_checkpoints(system: System, directory: Path) -> None:
    """What an auditor keeps from before: every checkpoint, one note a file."""
    answer = await system.get("collaboration", "/transparency/checkpoints?limit=1000")
    keep(directory, {item["tree_size"]: item["note"] for item in answer.json()["checkpoints"]})


def keep(directory: Path, notes: dict[int, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for size, note in notes.items():
        (directory / f"{size}.note").write_text(note)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def lines(bundle: Path, name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (bundle / name).read_bytes().splitlines()]


def write(bundle: Path, name: str, items: list[dict[str, Any]]) -> None:
    (bundle / name).write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))


def rehash(events: list[dict[str, Any]], start: int = 0) -> None:
    """Recompute the chain from ``events[start]`` on, as an insider covering a change."""
    previous = GENESIS_HASH if start == 0 else bytes.fromhex(events[start - 1]["hash"])
    for event in events[start:]:
        digest = digest_of(
            (
                event["stream_id"],
                event["event_id"],
                event["type"],
                str(event["schema_version"]),
                event["data"],
                event["metadata"],
                event["recorded_at"],
            )
        )
        previous = chain(previous, event["position"], event["version"], digest)
        event["hash"] = previous.hex()


def altered_data(event: dict[str, Any]) -> str:
    data = orjson.loads(event["data"])
    data["name"] = "Forged Cluster"
    return orjson.dumps(data).decode()


async def test_bundles_verify_and_every_tampering_is_caught(
    system: System, scratch: Scratch, tmp_path: Path
) -> None:
    for _ in range(3):
        await organisation(system)
    early = await signed_to_head(system)
    for _ in range(3):
        await organisation(system)
    first_size = await signed_to_head(system)
    assert early < first_size
    trusted = tmp_path / "trusted"
    await hold_checkpoints(system, trusted)

    # a witness co-signs, and again after more events, checking consistency in between
    log_key = (await system.get("collaboration", "/transparency/key")).json()["keys"][-1]
    witness = [
        sys.executable,
        "-m",
        "clr_events.transparency.witness",
        "--state",
        str(tmp_path / "witness"),
        "--name",
        "witness.example",
        "--log-key",
        log_key,
        "--url",
        scratch.url,
    ]
    done = await asyncio.to_thread(run, *witness)
    witness_key = done.stdout.splitlines()[0].removeprefix("witness key: ")
    for _ in range(6):
        await organisation(system)
    size = await signed_to_head(system)
    assert size > first_size
    await asyncio.to_thread(run, *witness)

    # the bundle, over HTTP (auditor) and from the command line, verifies offline
    answer = await system.get("collaboration", "/transparency/export.zip", "auditor")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    assert (await system.get("collaboration", "/transparency/export.zip")).status_code == 401
    zipped = tmp_path / "bundle.zip"
    zipped.write_bytes(answer.content)
    status, report = audit(zipped, "--trusted-checkpoints", trusted)
    assert (status, problems(report)) == (0, []), report
    assert report["stores"][0]["events"] == size and report["stores"][0]["trusted"] >= 1
    status, report = audit(
        zipped, "--trusted-checkpoints", tmp_path / "witness", "--witness-key", witness_key
    )
    assert (status, problems(report)) == (0, []), report
    bundle = tmp_path / "bundle"
    await asyncio.to_thread(
        run, *AUDIT, "export", "--database-url", system.database_url, "--out", str(bundle)
    )
    with zipfile.ZipFile(zipped) as archive:
        assert archive.read(EVENTS) == (bundle / EVENTS).read_bytes()
    assert audit(bundle, "--trusted-checkpoints", trusted)[0] == 0
    sizes = sorted(item["tree_size"] for item in lines(bundle, CHECKPOINTS))

    def copy(name: str) -> Path:
        return Path(shutil.copytree(bundle, tmp_path / name))

    k = 5  # the position tampered with

    # an event altered in place
    altered = copy("altered")
    events = lines(altered, EVENTS)
    events[k - 1]["data"] = altered_data(events[k - 1])
    write(altered, EVENTS, events)
    status, report = audit(altered)
    assert status == 1 and ("altered", k, k) in problems(report)

    # altered and every later hash recomputed (a consistent rewrite), its checkpoints kept
    rewritten = copy("rewritten")
    events = lines(rewritten, EVENTS)
    events[k - 1]["data"] = altered_data(events[k - 1])
    rehash(events, k - 1)
    write(rewritten, EVENTS, events)
    status, report = audit(rewritten)
    assert status == 1
    assert {kind for kind, *_ in problems(report)} >= {"rewritten"}
    assert not {kind for kind, *_ in problems(report)} & {"altered", "missing", "reordered"}
    first, last = next((a, b) for kind, a, b in problems(report) if kind == "rewritten")
    assert first is not None and last is not None and first <= k <= last

    # the same with the bundle's checkpoints that cover it removed: the held ones catch it
    covering = [c for c in lines(rewritten, CHECKPOINTS) if c["tree_size"] < k]
    write(rewritten, CHECKPOINTS, covering)
    status, report = audit(rewritten)
    assert status == 1 and "extra" in {kind for kind, *_ in problems(report)}
    status, report = audit(rewritten, "--trusted-checkpoints", trusted)
    assert status == 1 and "rewritten" in {kind for kind, *_ in problems(report)}

    # the tail cut at an earlier checkpoint, later checkpoints removed
    cut = copy("cut")
    keep = max(s for s in sizes if s < first_size)
    write(cut, EVENTS, lines(cut, EVENTS)[:keep])
    write(cut, CHECKPOINTS, [c for c in lines(cut, CHECKPOINTS) if c["tree_size"] <= keep])
    assert audit(cut)[0] == 0  # self-consistent: only what was held before can tell
    status, report = audit(cut, "--trusted-checkpoints", trusted)
    assert status == 1 and ("cut", keep + 1, first_size) in problems(report), report

    # a forged event appended with a correct chain hash
    forged = copy("forged")
    events = lines(forged, EVENTS)
    extra = dict(events[-1])
    extra.update(position=size + 1, version=99, event_id=str(UUID(int=1)))
    events.append(extra)
    rehash(events, len(events) - 1)
    write(forged, EVENTS, events)
    status, report = audit(forged)
    assert (status, problems(report)) == (1, [("extra", size + 1, size + 1)]), report

    # two events reordered
    reordered = copy("reordered")
    events = lines(reordered, EVENTS)
    events[k - 1], events[k] = events[k], events[k - 1]
    write(reordered, EVENTS, events)
    status, report = audit(reordered)
    assert status == 1 and ("reordered", k, k) in problems(report), report

    # a middle event dropped
    dropped = copy("dropped")
    events = lines(dropped, EVENTS)
    del events[k - 1]
    write(dropped, EVENTS, events)
    status, report = audit(dropped)
    assert status == 1 and ("missing", k, k) in problems(report), report

    # in the database: the trigger disabled, event k changed, the chain and head recomputed
    scratch.stop()
    await rewrite_database(system.database_url, k)
    scratch.launch()
    unready = await system.until(
        lambda: unready_reason(system), "the signer refusing the rewritten store", timeout=30
    )
    assert "checkpoints" in unready
    rewritten_db = tmp_path / "rewritten-db"
    await asyncio.to_thread(
        run, *AUDIT, "export", "--database-url", system.database_url, "--out", str(rewritten_db)
    )
    status, report = audit(rewritten_db)
    assert status == 1 and "rewritten" in {kind for kind, *_ in problems(report)}, report
    assert not {kind for kind, *_ in problems(report)} & {"altered", "missing"}

    # the insider deletes the checkpoints too; the log signs the rewritten store afresh
    scratch.stop()
    conn = await asyncpg.connect(system.database_url)
    try:
        await conn.execute("DELETE FROM collaboration.tlog_checkpoints")
    finally:
        await conn.close()
    scratch.start()
    await signed_to_head(system)
    resigned = tmp_path / "resigned-db"
    await asyncio.to_thread(
        run, *AUDIT, "export", "--database-url", system.database_url, "--out", str(resigned)
    )
    assert audit(resigned)[0] == 0  # self-consistent, and signed
    status, report = audit(resigned, "--trusted-checkpoints", trusted)
    assert status == 1 and "rewritten" in {kind for kind, *_ in problems(report)}, report
    # the witness co-signed the head before: two signed trees of one size, a split view
    status, report = audit(
        resigned, "--trusted-checkpoints", tmp_path / "witness", "--witness-key", witness_key
    )
    kinds = {kind for kind, *_ in problems(report)}
    assert status == 1 and {"rewritten", "split-view"} <= kinds, report


async def unready_reason(system: System) -> str:
    try:
        answer = await system.get("collaboration", "/readyz")
    except httpx.HTTPError:  # not listening yet
        return ""
    return answer.text if answer.status_code == 503 and "checkpoints" in answer.text else ""


async def rewrite_database(database_url: str, position: int) -> None:
    """An insider with the database: trigger off, one event changed, the chain recomputed."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                "ALTER TABLE collaboration.event_store DISABLE TRIGGER event_store_append_only"
            )
            data = await conn.fetchval(
                "SELECT data::text FROM collaboration.event_store WHERE position = $1", position
            )
            forged = altered_data({"data": data})
            await conn.execute(
                "UPDATE collaboration.event_store SET data = $1::json WHERE position = $2",
                forged,
                position,
            )
            rows = await conn.fetch(
                "SELECT position, stream_id, version, event_id::text, type, schema_version,"
                " data::text, metadata::text, recorded_at FROM collaboration.event_store"
                " ORDER BY position"
            )
            previous = GENESIS_HASH
            for row in rows:
                digest = digest_of(
                    (row[1], row[3], row[4], str(row[5]), row[6], row[7], format_time(row[8]))
                )
                previous = chain(previous, row[0], row[2], digest)
                await conn.execute(
                    "UPDATE collaboration.event_store SET hash = $1 WHERE position = $2",
                    previous,
                    row[0],
                )
            await conn.execute("UPDATE collaboration.event_store_head SET hash = $1", previous)
    finally:
        await conn.close()
