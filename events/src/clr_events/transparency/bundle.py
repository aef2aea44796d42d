"""The audit bundle, and its offline verification.

A bundle is a directory (or a zip of one) holding, per store, every event in canonical
form with its chain hash, the store's signed checkpoints and its public keys, and a
manifest::

    manifest.json
    stores/<store>/events.jsonl       one event a line, positions 1..N in order
    stores/<store>/checkpoints.jsonl  one signed checkpoint a line ({"tree_size", "note", ...})
    stores/<store>/keys.txt           the log's verifier keys, one a line

``verify`` needs nothing but the bundle (and, to catch a rewrite that was signed again,
checkpoints held from before): no database, no network, no service. It recomputes every
content digest and chain hash and names each altered, missing or reordered position,
rebuilds the Merkle tree, checks every checkpoint's signature and that the tree matches
it, names positions no checkpoint covers (extra), and a cut tail or a consistent rewrite
of the chain against any checkpoint signed before. docs/canonical-form.md has the bytes.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from clr_events.store.hashing import GENESIS_HASH, digest_of
from clr_events.transparency.merkle import MerkleTree, verify_consistency
from clr_events.transparency.note import Checkpoint, Note, NoteError, VerifierKey, b64

FORMAT = "clr-audit-bundle/1"
MANIFEST = "manifest.json"


def store_files(store: str) -> dict[str, str]:
    """The paths of a store's files inside a bundle."""
    return {
        "events": f"stores/{store}/events.jsonl",
        "checkpoints": f"stores/{store}/checkpoints.jsonl",
        "keys": f"stores/{store}/keys.txt",
    }


class Bundle:
    """A bundle on disk: a directory, or a zip file of one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if path.is_file():
            self._zip = zipfile.ZipFile(path)
            names = [n for n in self._zip.namelist() if n.endswith(MANIFEST)]
            if not names:
                raise FileNotFoundError(f"{path}: no {MANIFEST} in the zip")
            self._prefix = min(names, key=len)[: -len(MANIFEST)]

    def exists(self, name: str) -> bool:
        """Whether the bundle holds ``name``."""
        if self._zip is not None:
            return self._prefix + name in self._zip.namelist()
        return (self.path / name).is_file()

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """One of the bundle's files, as bytes."""
        if self._zip is not None:
            with self._zip.open(self._prefix + name) as handle:
                yield handle
        else:
            with (self.path / name).open("rb") as handle:
                yield handle

    def read(self, name: str) -> bytes:
        """A whole file."""
        with self.open(name) as handle:
            return handle.read()

    def manifest(self) -> dict[str, Any]:
        """The manifest (not trusted: the signatures are)."""
        manifest: dict[str, Any] = orjson.loads(self.read(MANIFEST))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} bundle: {manifest.get('format')!r}")
        return manifest

    def close(self) -> None:
        """Close the zip, if any."""
        if self._zip is not None:
            self._zip.close()


def event_line(
    position: int,
    stream_id: str,
    version: int,
    event_id: str,
    type_: str,
    schema_version: int,
    data_json: str,
    metadata_json: str,
    recorded_at: str,
    hash_: bytes,
) -> bytes:
    """One event in canonical form, a line of ``events.jsonl`` (``data`` and ``metadata``
    are the stored JSON *text*, as hashed)."""
    return (
        orjson.dumps(
            {
                "position": position,
                "stream_id": stream_id,
                "version": version,
                "event_id": event_id,
                "type": type_,
                "schema_version": schema_version,
                "data": data_json,
                "metadata": metadata_json,
                "recorded_at": recorded_at,
                "hash": hash_.hex(),
            }
        )
        + b"\n"
    )


@dataclass(frozen=True)
class Problem:
    """One finding: what is wrong and at which positions."""

    store: str
    kind: str
    """altered, missing, reordered, extra, rewritten, cut, signature, split-view, unreadable"""
    first: int | None
    last: int | None
    message: str

    def line(self) -> str:
        """The finding as one line of text."""
        where = ""
        if self.first is not None:
            where = (
                f" position {self.first}"
                if self.last in (None, self.first)
                else f" positions {self.first}..{self.last}"
            )
        return f"{self.store}:{where} {self.kind}: {self.message}"


@dataclass
class StoreReport:
    """The verification of one store."""

    store: str
    origin: str
    events: int = 0
    checkpoints: int = 0
    trusted: int = 0
    signed_size: int = 0
    root: bytes = b""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def add(self, kind: str, first: int | None, last: int | None, message: str) -> None:
        """Record a problem."""
        self.problems.append(Problem(self.store, kind, first, last, message))


@dataclass(frozen=True)
class _Signed:
    checkpoint: Checkpoint
    source: str


def _parse_keys(text: str) -> list[VerifierKey]:
    return [VerifierKey.parse(line) for line in text.splitlines() if line.strip()]


def trusted_notes(paths: list[Path]) -> list[tuple[Note, str]]:
    """Signed checkpoints held from before: ``*.note``/``*.txt`` files (one note each),
    ``*.jsonl`` files (one ``{"note": ...}`` a line, as in a bundle), bundles (their
    checkpoints), or directories of those; with where each came from."""
    found: list[tuple[Note, str]] = []

    def add_text(text: str, source: str) -> None:
        with suppress(NoteError):
            found.append((Note.parse(text), source))

    for path in paths:
        if path.is_dir():
            if (path / MANIFEST).is_file():
                files = sorted(path.glob("stores/*/checkpoints.jsonl"))
            else:
                files = sorted(p for p in path.rglob("*") if p.is_file())
            found.extend(trusted_notes(files))
        elif path.suffix == ".zip":
            bundle = Bundle(path)
            try:
                for store in bundle.manifest()["stores"]:
                    name = store_files(store["name"])["checkpoints"]
                    for line in bundle.read(name).splitlines():
                        add_text(orjson.loads(line)["note"], f"{path}:{name}")
            finally:
                bundle.close()
        elif path.suffix == ".jsonl":
            for line in path.read_bytes().splitlines():
                if line.strip():
                    add_text(orjson.loads(line)["note"], str(path))
        elif path.suffix in (".note", ".txt", ""):
            add_text(path.read_text(), str(path))
    return found


def verify_bundle(
    path: Path,
    *,
    trusted: list[tuple[Note, str]] | None = None,
    trusted_keys: list[VerifierKey] | None = None,
    witness_keys: list[VerifierKey] | None = None,
) -> list[StoreReport]:
    """Verify every store of a bundle; see the module's docstring."""
    bundle = Bundle(path)
    try:
        manifest = bundle.manifest()
        return [
            _verify_store(bundle, entry, trusted or [], trusted_keys or [], witness_keys or [])
            for entry in manifest["stores"]
        ]
    finally:
        bundle.close()


def _verify_store(
    bundle: Bundle,
    entry: dict[str, Any],
    trusted: list[tuple[Note, str]],
    trusted_keys: list[VerifierKey],
    witness_keys: list[VerifierKey],
) -> StoreReport:
    name, origin = entry["name"], entry["origin"]
    report = StoreReport(name, origin)
    files = store_files(name)
    keys = [k for k in _parse_keys(bundle.read(files["keys"]).decode()) if k.name == origin]
    keys += [k for k in trusted_keys if k.name == origin and k not in keys]
    if not keys:
        report.add("signature", None, None, f"no verifier key for {origin!r}")
    with bundle.open(files["events"]) as handle:
        tree = _check_chain(handle, report)
    report.events = tree.size
    signed: list[_Signed] = []
    for line in bundle.read(files["checkpoints"]).splitlines():
        if not line.strip():
            continue
        record = orjson.loads(line)
        cp = _open(record["note"], keys, origin, f"checkpoint {record.get('tree_size')}", report)
        if cp is not None:
            signed.append(_Signed(cp, "bundle"))
            report.checkpoints += 1
    for note, source in trusted:
        if note.text.split("\n", 1)[0] != origin:
            continue
        cp = _open(note.render(), keys, origin, f"trusted checkpoint from {source}", report)
        if cp is None:
            continue
        for witness in witness_keys:
            if not note.signed_by(witness):
                report.add(
                    "signature",
                    None,
                    None,
                    f"trusted checkpoint {cp.size} from {source} carries no cosignature"
                    f" of witness {witness.name!r}",
                )
        signed.append(_Signed(cp, f"trusted ({source})"))
        report.trusted += 1
    _check_checkpoints(tree, signed, report)
    return report


def _check_chain(handle: IO[bytes], report: StoreReport) -> MerkleTree:
    """Re-hash every event in file order; the tree of their stored hashes."""
    tree = MerkleTree()
    append_leaf = tree.append_hash
    sha256 = hashlib.sha256
    previous_position, previous_hash = 0, GENESIS_HASH
    for number, raw in enumerate(handle, start=1):
        try:
            event = orjson.loads(raw)
            position = event["position"]
            version = event["version"]
            stored = bytes.fromhex(event["hash"])
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
            link = position.to_bytes(8, "big") + version.to_bytes(8, "big")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as error:
            report.add("unreadable", None, None, f"line {number}: {error!r}")
            continue
        expected = previous_position + 1
        if position > expected:
            report.add("missing", expected, position - 1, f"absent before position {position}")
        elif position < expected:
            report.add(
                "reordered",
                position,
                position,
                f"found after position {previous_position} (line {number})",
            )
        computed = sha256(previous_hash + link + digest).digest()
        if computed != stored:
            report.add(
                "altered",
                position,
                position,
                f"its hash does not match its content and the hash before it"
                f" (stream {event['stream_id']!r} version {version})",
            )
        append_leaf(sha256(b"\x00" + stored).digest())
        previous_position, previous_hash = position, stored
    return tree


def _open(
    rendered: str, keys: list[VerifierKey], origin: str, what: str, report: StoreReport
) -> Checkpoint | None:
    try:
        note = Note.parse(rendered)
        checkpoint = Checkpoint.parse(note.text)
    except NoteError as error:
        report.add("signature", None, None, f"{what}: not a checkpoint ({error})")
        return None
    if checkpoint.origin != origin:
        report.add("signature", None, None, f"{what}: origin {checkpoint.origin!r}")
        return None
    if not any(note.signed_by(key) for key in keys):
        report.add(
            "signature",
            None,
            None,
            f"{what} (size {checkpoint.size}): no valid signature of the log's keys"
            " (forged, or the log's key was replaced)",
        )
        return None
    return checkpoint


def _check_checkpoints(tree: MerkleTree, signed: list[_Signed], report: StoreReport) -> None:
    by_size: dict[int, _Signed] = {}
    for item in signed:
        other = by_size.get(item.checkpoint.size)
        if other is not None and other.checkpoint.root != item.checkpoint.root:
            report.add(
                "split-view",
                None,
                None,
                f"two checkpoints of size {item.checkpoint.size} with different roots, both"
                f" signed ({other.source}; {item.source}): the log was rewritten and signed again",
            )
        if other is None or other.source == "bundle":
            by_size[item.checkpoint.size] = item
    matched = 0
    for size in sorted(by_size):
        item = by_size[size]
        if size > tree.size:
            report.add(
                "cut",
                tree.size + 1,
                size,
                f"missing: checkpoint {size} ({item.source}) signed them",
            )
            continue
        if tree.root(size) != item.checkpoint.root:
            report.add(
                "rewritten",
                matched + 1,
                size,
                f"the first {size} events do not match checkpoint {size} ({item.source}):"
                f" a position in this range was changed and the chain recomputed",
            )
            continue
        matched = max(matched, size)
    report.signed_size = matched
    report.root = tree.root(matched)
    for size, item in by_size.items():
        if size <= matched and item.source != "bundle" and matched > size:
            proof = tree.consistency_proof(size, matched)
            if not verify_consistency(size, matched, item.checkpoint.root, report.root, proof):
                report.add("rewritten", None, None, f"checkpoint {size} is not a prefix")
    if tree.size > matched:
        report.add(
            "extra",
            matched + 1,
            tree.size,
            "not covered by any signed checkpoint that matches the events",
        )


def summary(reports: list[StoreReport]) -> list[str]:
    """Human-readable lines: one per store, then one per problem."""
    lines = []
    for r in reports:
        state = "OK" if r.ok else f"FAILED ({len(r.problems)} problems)"
        lines.append(
            f"{r.store}: {state}; {r.events} events, {r.checkpoints} checkpoints in the bundle,"
            f" {r.trusted} trusted; signed up to {r.signed_size}"
            + (f" (root {b64(r.root)})" if r.signed_size else "")
        )
        lines.extend(f"  {p.line()}" for p in r.problems)
    return lines
