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
        "<org_id>",
        "RESTRICTED, not public: read by label_decisions only (the broker refuses every"
        " other principal, subscribers included); carries assessment results (R11). Keyed by"
        " organisation, so one organisation's approvals are decided in order.",
    ),
    "label_decisions.events": ("label_decisions", "<org_id>:<level>", ""),
    "label_decisions.current": (
        "label_decisions",
        "<org_id>",
        "Compacted: one record per organisation that ever had a public label decision,"
        " its label records as they stand. CloudEvents in binary mode, with"
        " ce_feedposition: read the topic to its end, then follow label_decisions.events"
        " or the HTTP feed after the highest ce_feedposition seen, skipping an"
        " organisation's events at or below its snapshot's position.",
    ),
}
"""Topic -> (context of its messages, key, note)."""

SNAPSHOTS = {"label_decisions.CurrentLabels.v1"}
RESTRICTED_TOPIC = "assessments.decisions"

_NUMBER = {"type": "string", "pattern": "^[0-9]+$"}
_AS_STRING = (
    " A decimal integer as a string (Kafka headers are bytes); the HTTP feed gives the same"
    " attribute as a JSON integer."
)


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
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_subject",
            "ce_time",
            "ce_streamversion",
            "ce_globalposition",
        ],
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {"type": "string", "description": "Event id: dedupe on (source, id)."},
            "ce_source": {"type": "string", "description": "/<service>"},
            "ce_type": {"type": "string", "description": "<context>.<EventName>.v<major>"},
            "ce_subject": {"type": "string", "description": "Aggregate id, also the key."},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_dataschema": {
                "type": "string",
                "format": "uri",
                "description": "URL of the JSON Schema, served by the projections service"
                " (<CLR_SCHEMA_BASE_URL>/<context>/<Name>.v<N>.json); events published before"
                " schemas were served name it by its $id, urn:cluster-label-registry:schema:"
                "<type>.",
            },
            "ce_publicversion": {
                **_NUMBER,
                "description": "1, 2, 3, ... per ce_subject over the events this topic carries:"
                " no gaps, so a gap means an event not yet received; a repeat (at-least-once)"
                " carries the same number. Deterministic from the producing store; present on"
                " every event published since it was introduced." + _AS_STRING,
            },
            "ce_streamversion": {
                **_NUMBER,
                "description": "Version in the producing store's stream. It also counts"
                " private events that are never published, so it HAS GAPS: check"
                " ce_publicversion instead." + _AS_STRING,
            },
            "ce_globalposition": {
                **_NUMBER,
                "description": "Position in the producing store: the HTTP feed's cursor. Skips"
                " private events." + _AS_STRING,
            },
            "ce_prevposition": {
                **_NUMBER,
                "description": "ce_globalposition of the event published before this one on"
                " this topic (0: none): the chain that proves nothing is missing across"
                " partitions." + _AS_STRING,
            },
            "ce_correlationid": {"type": "string"},
            "ce_causationid": {
                "type": "string",
                "description": "What caused the event: the id of the command"
                " (command:<hex>), of the consumed event, or of the clock run"
                " (clock-run:<job>:<hex>). On every event recorded since causes were kept.",
            },
            "ce_traceparent": {
                "type": "string",
                "description": "W3C trace context of the event's creation (CloudEvents"
                " distributed tracing extension).",
            },
            "ce_tracestate": {"type": "string", "description": "W3C tracestate, with it."},
            "content-type": {"const": "application/json"},
        },
    }
    snapshot_headers = {
        "type": "object",
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_subject",
            "ce_time",
            "ce_dataschema",
            "ce_feedposition",
            "content-type",
        ],
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {
                "type": "string",
                "description": "current:<org_id>:<position>:<as_of>: the same snapshot"
                " published twice has the same id.",
            },
            "ce_source": {"const": "/projections"},
            "ce_type": {"const": "label_decisions.CurrentLabels.v1"},
            "ce_subject": {"type": "string", "description": "The organisation id, the key."},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_dataschema": {"type": "string", "format": "uri"},
            "ce_feedposition": {
                **_NUMBER,
                "description": "Every label event at or below this feed position is reflected"
                " in the snapshots on this topic before this record: after reading the topic"
                " to its end, start the feed (after=) or Kafka (clr_events.subscriber."
                "offsets_after) from the highest value seen." + _AS_STRING,
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
        access = "restricted" if topic == RESTRICTED_TOPIC else "public"
        channels[channel_id] = {
            "address": topic,
            "description": f"Key: {key}. {note}".strip(),
            "tags": [{"name": access}],
            "x-access": access,
            "x-key": key,
            "messages": {
                t.replace(".", "_"): {"$ref": f"#/components/messages/{t.replace('.', '_')}"}
                for t in names
            },
        }
        operations[f"receive_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "tags": [{"name": access}],
            **(
                {"description": "label_decisions only: not open to subscribers."}
                if access == "restricted"
                else {}
            ),
        }
        for t in names:
            messages[t.replace(".", "_")] = {
                "name": t,
                "title": t,
                "summary": (models[t].__doc__ or "").strip().splitlines()[0],
                "contentType": "application/json",
                "headers": snapshot_headers if t in SNAPSHOTS else ce_headers,
                "payload": {"$ref": schema_path(t)},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Cluster label registry: public events",
            "version": "1",
            "description": "Topics, keys and messages of the cluster label registry. CloudEvents"
            " 1.0 binary mode: attributes in ce_* headers, the JSON payload as the value."
            " Numbers in headers are decimal strings; over HTTP (the feed) the same attributes"
            " are JSON integers. Per key, ce_publicversion counts 1, 2, 3, ... without gaps"
            " (ce_streamversion is the store's and has gaps where events are private); across"
            " partitions, ce_prevposition chains every event to the one published before it."
            " Channels tagged restricted are not open to subscribers. The JSON Schemas are"
            " served over HTTP (ce_dataschema) and through a read-only Schema Registry API"
            " (/schema-registry on the projections service; subject = ce_type).",
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
