"""``schemas/`` from the contracts: JSON Schema, AsyncAPI, golden examples, and their checks.

    python -m clr_events.schemas write    # regenerate (examples: only the missing ones)
    python -m clr_events.schemas check    # CI: fail on drift, incompatibility, bad examples

- ``jsonschema/<context>/<Name>.v<N>.json``: ``model_json_schema()`` of each registered
  contract, with ``$id`` = the envelope's ``dataschema``.
- ``asyncapi.json``: AsyncAPI 3.0 of the topics, their keys, CloudEvents headers and
  messages.
- ``examples/<type>/<n>.json``: golden payloads. One is generated (from the schema, so
  deterministic) when a type has none; after that they are never edited or deleted, and
  every one must still decode, through the upcasters, into the newest contract.
- Compatibility: within a major, every committed revision of a schema (git history) must
  be backward- and forward-compatible with the current one: no field removed that was
  required, none added as required, no optional field made required or the reverse, no
  field's type changed. Anything else is a new major with an upcaster.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from clr_events import contracts
from clr_events.envelope import schema_uri
from clr_events.registry import Contract, parse_type, registry

ROOT = Path(__file__).resolve().parents[3] / "schemas"

TOPICS: dict[str, tuple[str, str, str]] = {
    "collaboration.events": ("collaboration", "organisation:<org_id>, partnership:<id>, ...", ""),
    "training_certification.events": ("training_certification", "person:<person_id>, ...", ""),
    "assessments.events": ("assessments", "assessment:<assessment_id>", ""),
    "assessments.decisions": (
        "assessments",
        "assessment:<assessment_id>",
        "Restricted: read by label_decisions only; carries results (R11).",
    ),
    "label_decisions.events": ("label_decisions", "<org_id>:<level>", ""),
    "label_decisions.current": (
        "label_decisions",
        "<org_id>",
        "Compacted: each organisation's current labels (a snapshot, not CloudEvents).",
    ),
}
"""Topic -> (context of its messages, key, note)."""

SNAPSHOTS = {"label_decisions.CurrentLabels.v1"}
RESTRICTED_TOPIC = "assessments.decisions"


def _dump(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def schema_path(type_: str) -> str:
    """Where the JSON Schema of a type lives, relative to ``schemas/``."""
    name, major = parse_type(type_)
    context, event = name.split(".")
    return f"jsonschema/{context}/{event}.v{major}.json"


def json_schema(type_: str, model: type[Contract]) -> dict[str, Any]:
    """The JSON Schema document of one contract."""
    schema = model.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(type_),
        **schema,
    }


def _topic_of(type_: str) -> str:
    if type_ in SNAPSHOTS:
        return "label_decisions.current"
    if type_ in contracts.RESTRICTED:
        return RESTRICTED_TOPIC
    return f"{type_.split('.')[0]}.events"


def asyncapi(models: dict[str, type[Contract]]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic and message."""
    ce_headers = {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time"],
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {"type": "string", "description": "Event id: dedupe on (source, id)."},
            "ce_source": {"type": "string", "description": "/<service>"},
            "ce_type": {"type": "string", "description": "<context>.<EventName>.v<major>"},
            "ce_subject": {"type": "string", "description": "Aggregate id, also the key."},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_dataschema": {"type": "string", "description": "urn of the JSON Schema."},
            "ce_streamversion": {"type": "string", "description": "Version in the stream."},
            "ce_globalposition": {
                "type": "string",
                "description": "Position in the producing store: the HTTP feed's cursor.",
            },
            "ce_prevposition": {
                "type": "string",
                "description": "Position of the previous event on this topic (0: none).",
            },
            "ce_correlationid": {"type": "string"},
            "ce_causationid": {
                "type": "string",
                "description": "What caused the event: the id of the command"
                " (command:<hex>), of the consumed event, or of the clock run"
                " (clock-run:<job>:<hex>). On every event recorded since causes were kept.",
            },
            "content-type": {"const": "application/json"},
        },
    }
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, (_context, key, note) in TOPICS.items():
        names = sorted(t for t in models if _topic_of(t) == topic)
        channel_id = topic.replace(".", "_")
        channels[channel_id] = {
            "address": topic,
            "description": f"Key: {key}. {note}".strip(),
            "messages": {
                t.replace(".", "_"): {"$ref": f"#/components/messages/{t.replace('.', '_')}"}
                for t in names
            },
        }
        operations[f"receive_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
        for t in names:
            messages[t.replace(".", "_")] = {
                "name": t,
                "title": t,
                "summary": (models[t].__doc__ or "").strip().splitlines()[0],
                "contentType": "application/json",
                **({} if t in SNAPSHOTS else {"headers": ce_headers}),
                "payload": {"$ref": schema_path(t)},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Cluster label registry: public events",
            "version": "1",
            "description": "Topics, keys and messages of the cluster label registry. CloudEvents"
            " 1.0 binary mode: attributes in ce_* headers, the JSON payload as the value.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:19092", "protocol": "kafka", "description": "make run"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _example_value(schema: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    if "$ref" in schema:
        return _example(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        chosen = next(s for s in schema["anyOf"] if s.get("type") != "null")
        return _example_value(chosen, defs, name)
    kind = schema.get("type")
    if schema.get("format") == "date":
        return "2026-03-31"
    if schema.get("format") == "date-time":
        return "2026-03-31T09:30:00Z"
    if kind == "string":
        return {"level": "bronze", "country": "DE", "third_country": "JP"}.get(name, f"{name}-1")
    if kind == "integer":
        return 3
    if kind == "number":
        return 2.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_example_value(schema.get("items", {}), defs, name.removesuffix("s"))]
    return {}


def _example(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _example_value(prop, defs, name)
        for name, prop in schema.get("properties", {}).items()
    }


def example(model: type[Contract]) -> dict[str, Any]:
    """A deterministic example payload of a contract, every field filled."""
    schema = model.model_json_schema()
    return _example(schema, schema.get("$defs", {}))


def generated() -> dict[str, bytes]:
    """Every generated file (not the examples), by path under ``schemas/``."""
    models = registry.models()
    files = {schema_path(t): _dump(json_schema(t, m)) for t, m in sorted(models.items())}
    files["asyncapi.json"] = _dump(asyncapi(models))
    return files


# ----------------------------------------------------------------- compatibility
def _shape(schema: Any) -> Any:
    """A schema without its prose, for comparing types."""
    if isinstance(schema, dict):
        return {
            k: _shape(v)
            for k, v in schema.items()
            if k not in ("title", "description", "examples", "default")
        }
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _object_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
    for name, prop in old_props.items():
        if name not in new_props:
            if name in old_req:
                problems.append(f"{where}: required field {name!r} removed")
        elif _shape(prop) != _shape(new_props[name]):
            problems.append(f"{where}: type of {name!r} changed")
    for name in new_props:
        if name in new_req and name not in old_props:
            problems.append(f"{where}: new field {name!r} is required")
    for name in (old_req ^ new_req) & set(old_props) & set(new_props):
        change = "now required" if name in new_req else "no longer required"
        problems.append(f"{where}: field {name!r} {change}")
    return problems


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why ``new`` is not backward- and forward-compatible with ``old`` (empty: it is)."""
    problems = _object_changes("payload", old, new)
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    for name, schema in old_defs.items():
        if name in new_defs:
            problems += _object_changes(name, schema, new_defs[name])
    return problems


def _revisions(path: Path) -> list[bytes]:
    """Every committed revision of a file, newest first (none outside a git checkout)."""
    try:
        commits = subprocess.run(
            ["git", "log", "--format=%H", "--", str(path)],
            cwd=path.parent,
            capture_output=True,
            check=True,
            text=True,
        ).stdout.split()
        relative = path.relative_to(ROOT.parent)
        return [
            subprocess.run(
                ["git", "show", f"{commit}:{relative}"],
                cwd=ROOT.parent,
                capture_output=True,
                check=True,
            ).stdout
            for commit in commits
        ]
    except (OSError, subprocess.CalledProcessError):
        return []


# ------------------------------------------------------------------- commands
def write(root: Path = ROOT) -> list[str]:
    """Regenerate the files; add an example for any type without one. Returns what changed."""
    changed = []
    for relative, content in generated().items():
        path = root / relative
        if not path.exists() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            changed.append(relative)
    for type_, model in registry.models().items():
        folder = root / "examples" / type_
        if not any(folder.glob("*.json")):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "1.json").write_bytes(_dump(example(model)))
            changed.append(f"examples/{type_}/1.json")
    return changed


def check(root: Path = ROOT) -> list[str]:
    """Everything wrong with ``schemas/`` (empty when all is well)."""
    problems = []
    for relative, content in generated().items():
        path = root / relative
        if not path.exists():
            problems.append(f"{relative}: missing (run `make schemas` and commit)")
        elif path.read_bytes() != content:
            problems.append(f"{relative}: differs from the contracts (run `make schemas`)")
    known = {schema_path(t) for t in registry.models()}
    for path in sorted((root / "jsonschema").rglob("*.json")):
        relative = str(path.relative_to(root))
        if relative not in known:
            problems.append(f"{relative}: no contract has this type any more")
    for type_, model in registry.models().items():
        current = json_schema(type_, model)
        for revision in _revisions(root / schema_path(type_)):
            problems += [
                f"{type_}: {p}" for p in incompatibilities(orjson.loads(revision), current)
            ]
    types = registry.models()
    for folder in sorted((root / "examples").glob("*")):
        for path in sorted(folder.glob("*.json")):
            try:
                registry.decode(folder.name, orjson.loads(path.read_bytes()))
            except Exception as error:
                problems.append(f"examples/{folder.name}/{path.name}: does not decode: {error}")
    for type_ in types:
        if not any((root / "examples" / type_).glob("*.json")):
            problems.append(f"{type_}: no golden example (run `make schemas`)")
    return sorted(set(problems))


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description="Generate or check schemas/.")
    parser.add_argument("command", choices=["write", "check"])
    args = parser.parse_args()
    if args.command == "write":
        for relative in write():
            sys.stdout.write(f"wrote {relative}\n")
        return
    problems = check()
    for problem in problems:
        sys.stderr.write(f"schemas: {problem}\n")
    if problems:
        sys.exit(1)
    sys.stdout.write(f"schemas: {len(registry.models())} contracts, all consistent\n")


if __name__ == "__main__":
    main()
