"""The subscribers in other languages (``clients/``): built from their sources the way a
fresh machine builds them (Maven Central, the Go toolchain, Node.js), with every cache
under the project's ``.local/``, and the Python fold they are checked against.

The fold is the one clients/README.md defines: per label record (the subject), its
``org_id``, ``level``, ``status`` (the last of awarded, renewed, expired, withdrawn; a
correction leaves it), ``valid_until`` (the last one an event carried), ``position`` (the
last ``globalposition`` applied) and ``events`` (how many were applied); an event at or
below its subject's ``position`` is a repeat and skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clr_events.codec import from_kafka
from clr_events.envelope import Envelope
from clr_events.errors import EnvelopeError, EventsError
from clr_events.registry import registry

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
LOCAL = ROOT / ".local"
STATUS = {
    "LabelAwarded": "awarded",
    "LabelRenewed": "renewed",
    "LabelExpired": "expired",
    "LabelWithdrawn": "withdrawn",
}


BIGINT_MAX = 2**63 - 1


def label_event(key: bytes | None, value: bytes | None, headers: Any) -> Envelope | None:
    """The record as a label event, or None when a subscriber must refuse it: not a
    CloudEvent, a position beyond 64 bits, or a label event whose data does not fit its
    contract or whose subject is not ``<org_id>:<level>`` (what the fold relies on)."""
    try:
        envelope = from_kafka(key, value, headers)
    except EnvelopeError:
        return None
    if (envelope.globalposition or 0) > BIGINT_MAX or (envelope.prevposition or 0) > BIGINT_MAX:
        return None
    name = envelope.type.split(".")[1] if "." in envelope.type else ""
    if name in STATUS or name == "LabelRecordCorrected":
        try:
            contract = registry.decode(envelope.type, envelope.data)
        except (ValidationError, EventsError):
            return None
        record = f"{getattr(contract, 'org_id', '')}:{getattr(contract, 'level', '')}"
        if envelope.subject != record:
            return None
    return envelope


def fold(events: list[Envelope]) -> dict[str, dict[str, Any]]:
    """The reference fold of label events (in any order that keeps each subject's order)."""
    labels: dict[str, dict[str, Any]] = {}
    for e in events:
        assert e.subject is not None and e.globalposition is not None
        known = labels.get(e.subject)
        if known is not None and known["position"] >= e.globalposition:
            continue
        name = e.type.split(".")[1]
        if name not in STATUS and name != "LabelRecordCorrected":
            continue
        label = labels.setdefault(e.subject, {"events": 0})
        label.update(org_id=e.data["org_id"], level=e.data["level"], position=e.globalposition)
        if name in STATUS:
            label["status"] = STATUS[name]
        if e.data.get("valid_until") is not None:
            label["valid_until"] = e.data["valid_until"]
        label["events"] += 1
    return labels


def tool(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"no {name} on this machine: {install}")
    return path


def run(command: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a command to its end; its standard output (a failure shows both streams)."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def summary(stdout: str) -> dict[str, Any]:
    """A client's summary: the last line of its output, a JSON object."""
    parsed: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return parsed


def build_java() -> list[str]:
    """The Java subscriber, packaged by Maven (kafka-clients from Maven Central); its command."""
    mvn = tool("mvn", "apt-get install maven")
    java = tool("java", "apt-get install default-jre-headless")
    project = CLIENTS / "java"
    run(
        [mvn, "-q", "-B", f"-Dmaven.repo.local={LOCAL / 'maven'}", "-DskipTests", "package"],
        cwd=project,
    )
    target = project / "target"
    return [java, "-cp", f"{target}/*:{target}/lib/*", "registry.subscriber.LabelSubscriber"]


def build_go() -> list[str]:
    """The Go feed follower (the standard library only), vetted, tested and built; its command."""
    go = tool("go", "install Go 1.22 or later")
    binary = LOCAL / "clients" / "labelfeed"
    env = {
        "GOCACHE": str(LOCAL / "go" / "cache"),
        "GOMODCACHE": str(LOCAL / "go" / "mod"),
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    run([go, "vet", "./..."], cwd=CLIENTS / "go", env=env)
    run([go, "test", "./..."], cwd=CLIENTS / "go", env=env)
    run([go, "build", "-o", str(binary), "."], cwd=CLIENTS / "go", env=env)
    return [str(binary)]


def build_node() -> list[str]:
    """The Node.js stream follower (no dependencies), after its own unit tests; its command."""
    node = tool("node", "install Node.js 20 or later")
    run([node, "--test"], cwd=CLIENTS / "node")
    return [node, str(CLIENTS / "node" / "label-stream.mjs")]
