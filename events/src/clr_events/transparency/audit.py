"""``clr-audit``: take a store's history away and prove it complete, offline.

    clr-audit export --out DIR [--store NAME ...]     every transparent store by default
    clr-audit keygen SERVICE ... [--instance NAME] [--key-dir DIR]
    clr-audit verify BUNDLE [--trusted-checkpoints PATH ...] [--trusted-key VKEY ...]
                            [--witness-key VKEY ...] [--json]

``export`` reads PostgreSQL (``CLR_DATABASE_URL``); ``verify`` reads nothing but its
arguments; ``keygen`` makes the services' signing keys ahead of their first start (to
hand them to every instance of a service, e.g. as a Kubernetes secret). More subcommands
come from other packages through the entry-point group ``clr_audit.commands``: each entry
point's name is the subcommand, its value a callable ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import zipfile
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson

from clr_events.transparency.bundle import summary, trusted_notes, verify_bundle
from clr_events.transparency.note import VerifierKey

GROUP = "clr_audit.commands"

Command = Callable[[list[str]], int]


def plugins() -> dict[str, Command]:
    """The subcommands other packages declare in ``clr_audit.commands``."""
    found: dict[str, Command] = {}
    for entry in entry_points(group=GROUP):
        found.setdefault(entry.name, entry.load())
    return found


def _keys(texts: list[str]) -> list[VerifierKey]:
    keys: list[VerifierKey] = []
    for text in texts:
        path = Path(text)
        lines = path.read_text().splitlines() if path.is_file() else [text]
        keys.extend(VerifierKey.parse(line) for line in lines if line.strip())
    return keys


def verify(argv: list[str]) -> int:
    """``clr-audit verify``: 0 when every store verifies, 1 when not, 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="clr-audit verify",
        description="Verify an audit bundle offline: chain, tree, signatures, checkpoints.",
    )
    parser.add_argument("bundle", type=Path, help="a bundle directory or its zip")
    parser.add_argument(
        "--trusted-checkpoints",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="checkpoints held from before: note files, .jsonl, bundles, or directories",
    )
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a log's verifier key known from elsewhere (text or a file of keys)",
    )
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="every trusted checkpoint must carry this witness's cosignature",
    )
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        reports = verify_bundle(
            args.bundle,
            trusted=trusted_notes(args.trusted_checkpoints),
            trusted_keys=_keys(args.trusted_key),
            witness_keys=_keys(args.witness_key),
        )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        sys.stderr.write(f"clr-audit verify: cannot read {args.bundle}: {error!r}\n")
        return 2
    seconds = time.perf_counter() - started
    if args.json:
        document = {
            "ok": all(r.ok for r in reports),
            "seconds": seconds,
            "stores": [
                {
                    "store": r.store,
                    "origin": r.origin,
                    "ok": r.ok,
                    "events": r.events,
                    "checkpoints": r.checkpoints,
                    "trusted": r.trusted,
                    "signed_size": r.signed_size,
                    "problems": [
                        {"kind": p.kind, "first": p.first, "last": p.last, "message": p.message}
                        for p in r.problems
                    ],
                }
                for r in reports
            ],
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for line in summary(reports):
            sys.stdout.write(line + "\n")
        events = sum(r.events for r in reports)
        sys.stdout.write(f"{events} events verified in {seconds:.2f} s\n")
    return 0 if all(r.ok for r in reports) else 1


def export(argv: list[str]) -> int:
    """``clr-audit export``: write a bundle from PostgreSQL."""
    parser = argparse.ArgumentParser(
        prog="clr-audit export",
        description="Export stores (events, checkpoints, keys) into a self-contained bundle.",
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle directory (or .zip)")
    parser.add_argument(
        "--store", action="append", default=[], help="a store's schema (default: every one)"
    )
    parser.add_argument("--database-url", help="default: CLR_DATABASE_URL")
    args = parser.parse_args(argv)
    manifest = asyncio.run(_export(args.out, args.store, args.database_url))
    for store in manifest["stores"]:
        sys.stdout.write(f"{store['name']}: {store['tree_size']} events\n")
    return 0


async def _export(out: Path, stores: list[str], database_url: str | None) -> dict[str, Any]:
    import tempfile

    import asyncpg

    from clr_events.settings import ConnectionSettings
    from clr_events.transparency.export import export, transparent_stores, zip_directory

    pool = await asyncpg.create_pool(
        database_url or ConnectionSettings().database_url, min_size=1, max_size=2
    )
    try:
        known = await transparent_stores(pool)
        unknown = sorted(set(stores) - set(known))
        if unknown:
            raise SystemExit(f"no transparent store named {', '.join(unknown)} (known: {known})")
        schemas = stores or known
        if out.suffix == ".zip":
            with tempfile.TemporaryDirectory() as scratch:
                manifest = await export(pool, schemas, Path(scratch))
                zip_directory(Path(scratch), out)
                return manifest
        return await export(pool, schemas, out)
    finally:
        await pool.close()


def keygen(argv: list[str]) -> int:
    """``clr-audit keygen``: each service's signing key where it will look for it (kept if
    there already); prints the verifier keys to publish."""
    from clr_events.transparency.log import TransparencySettings, signer_for

    parser = argparse.ArgumentParser(
        prog="clr-audit keygen",
        description="Make the transparency logs' signing keys (one per service, kept if made).",
    )
    parser.add_argument("services", nargs="+", help="e.g. collaboration label_decisions")
    parser.add_argument(
        "--instance", default=os.environ.get("CLR_INSTANCE", ""), help="default: CLR_INSTANCE"
    )
    parser.add_argument("--key-dir", help="default: CLR_TLOG_KEY_DIR")
    args = parser.parse_args(argv)
    settings = TransparencySettings()
    if args.key_dir:
        settings = settings.model_copy(update={"key_dir": args.key_dir})
    for service in args.services:
        key = signer_for(settings, service, args.instance)
        path = settings.key_path(service, args.instance)
        sys.stdout.write(f"{path}: {key.verifier.text()}\n")
    return 0


BUILT_IN: dict[str, Command] = {"verify": verify, "export": export, "keygen": keygen}


def main(argv: list[str] | None = None) -> int:
    """The ``clr-audit`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    commands = {**plugins(), **BUILT_IN}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        names = ", ".join(sorted(commands))
        sys.stderr.write(
            f"usage: clr-audit COMMAND [ARGS]  (commands: {names}; clr-audit COMMAND --help)\n"
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
