"""Every operation of every running service, fuzzed from its own OpenAPI document.

Schemathesis reads each service's ``/openapi.json`` and sends what it describes: valid
requests and invalid ones (wrong types, missing fields, out-of-range values, odd bytes),
once with a bearer token holding every role and once with none. Each answer must be no
server error (no 5xx), carry a status the document lists for the operation, in the media
type it lists, matching the schema it gives (problem+json for errors).

The services run on an installation of their own (database, topics, ports), started for
this module. The settings are in ``schemathesis.toml`` beside this file: a fixed seed, no example
database and no cache, so a run is repeatable; a bounded number of examples per
operation; hostile values (NUL, integers beyond 64 bits, dates at the ends of the
calendar) mixed into the generated ones; the event stream (``/api/feed/stream``, which
never ends by itself) read for at most a second or three events a request. Schemathesis
runs as its command line, the interface it documents; a failure shows its output, which
names each failing operation with a curl command that reproduces it.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.service.auth import AuthSettings, Role, mint
from clr_events.settings import ConnectionSettings
from tests.e2e.conftest import PORT_BASE, Running

CONFIG = Path(__file__).with_name("schemathesis.toml")
RUNS = [(service, mode) for service in supervisor.SERVICES for mode in ("token", "anonymous")]
PORTS = {name: PORT_BASE + 50 + port % 100 for name, port in supervisor.SERVICES.items()}
"""Beside the session's services (PORT_BASE + 0..4)."""


@pytest.fixture(scope="module")
def fuzzed_system(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Every service on an installation of its own: what the fuzzing writes (hostile values,
    expiry runs on any day, thousands of records) must not change what other tests see."""
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = asyncio.run(install(base, "clr_fuzz"))
    secret = secrets.token_hex(32)
    running = supervisor.start(
        tmp_path_factory.mktemp("fuzzed-service-logs"),
        ports=PORTS,
        env=service_env(settings, secret),
    )
    try:
        yield Running(running.urls, secret, settings.instance, settings.database_url)
    finally:
        running.stop()
        asyncio.run(uninstall(base, settings))


def fuzz(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """Run schemathesis against one service's document; its exit code and output."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("service", "mode"), RUNS, ids=[f"{s}-{m}" for s, m in RUNS])
def test_every_operation_answers_as_its_document_says(
    service: str, mode: str, fuzzed_system: Running
) -> None:
    headers = {}
    if mode == "token":
        settings = AuthSettings(secret=fuzzed_system.secret)
        token = mint("fuzzer", [role.value for role in Role], settings)
        headers["Authorization"] = f"Bearer {token}"
    code, output = fuzz(fuzzed_system.urls[service], headers)
    assert code == 0, output
