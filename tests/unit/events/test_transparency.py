"""The transparency log's pure parts: the Merkle tree and its proofs, signed notes and
keys, the offline bundle verifier, ``clr-audit``'s subcommands, the verifier's ranges."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import orjson
import pytest

from clr_events.store.base import NewEvent, VerificationRangeError
from clr_events.store.memory import InMemoryEventStore
from clr_events.transparency import audit
from clr_events.transparency.bundle import verify_bundle
from clr_events.transparency.client import CheckpointMonitor, InconsistentCheckpointError
from clr_events.transparency.log import TransparencySettings, signer_for
from clr_events.transparency.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from clr_events.transparency.note import (
    COSIGNATURE_V1,
    Checkpoint,
    Note,
    NoteError,
    SignerKey,
    VerifierKey,
    load_or_create_key,
    open_checkpoint,
    sign_checkpoint,
)

VECTOR_BUNDLE = Path(__file__).resolve().parents[3] / "docs" / "vectors" / "bundle"


def naive_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def tree_of(n: int) -> tuple[MerkleTree, list[bytes]]:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    tree = MerkleTree()
    tree.extend(leaves)
    return tree, leaves


def test_roots_of_every_size_match_the_recursive_definition() -> None:
    tree, leaves = tree_of(70)
    for size in range(71):
        assert tree.root(size) == naive_root(leaves[:size])


def test_every_inclusion_and_consistency_proof_verifies_and_a_wrong_one_does_not() -> None:
    tree, _ = tree_of(40)
    for size in range(1, 41):
        root = tree.root(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert verify_inclusion(index, size, tree.leaf(index), proof, root)
            assert not verify_inclusion(index, size, tree.leaf((index + 1) % 40), proof, root)
        for first in range(size + 1):
            proof = tree.consistency_proof(first, size)
            assert verify_consistency(first, size, tree.root(first), root, proof)
            if 0 < first < size:
                assert not verify_consistency(first, size, tree.root(first), EMPTY_ROOT, proof)
                assert not verify_consistency(first, size, root, root, proof)


def test_proofs_are_logarithmic_and_sizes_out_of_range_are_refused() -> None:
    tree, _ = tree_of(1000)
    assert len(tree.inclusion_proof(333)) == 10
    assert len(tree.consistency_proof(500)) <= 2 * 10
    with pytest.raises(ValueError):
        tree.root(1001)
    with pytest.raises(ValueError):
        tree.inclusion_proof(1000, 1000)
    with pytest.raises(ValueError):
        tree.consistency_proof(11, 10)


def test_a_checkpoint_signs_opens_and_refuses_another_key_or_a_change() -> None:
    key = SignerKey.generate("registry.example/log")
    note = sign_checkpoint(Checkpoint("registry.example/log", 7, bytes(range(32))), key)
    rendered = note.render()
    checkpoint, _ = open_checkpoint(rendered, key.verifier)
    assert (checkpoint.size, checkpoint.root) == (7, bytes(range(32)))
    other = SignerKey.generate("registry.example/log")
    with pytest.raises(NoteError):
        open_checkpoint(rendered, other.verifier)
    with pytest.raises(NoteError):
        open_checkpoint(rendered.replace("\n7\n", "\n8\n"), key.verifier)
    for broken in ("no blank line\n", "a\n\nnot a signature\n", "a\n\n— name !!!\n"):
        with pytest.raises(NoteError):
            Note.parse(broken)
    with pytest.raises(NoteError):
        Checkpoint.parse("origin\n012\n" + "A" * 44 + "\n")


def test_keys_round_trip_through_their_text_and_are_kept_private(tmp_path: Path) -> None:
    for _ in range(20):  # base64 holding '+' included
        key = SignerKey.generate("name/with/slashes")
        assert SignerKey.parse(key.text()).verifier == key.verifier
        assert VerifierKey.parse(key.verifier.text()) == key.verifier
    path = tmp_path / "keys" / "log.key"
    first = load_or_create_key(path, "log.example")
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path, "log.example").verifier == first.verifier
    with pytest.raises(NoteError):
        load_or_create_key(path, "another.example")
    with pytest.raises(NoteError):
        VerifierKey.parse("log.example+00000000+" + first.verifier.text().split("+", 2)[2])


def test_clr_audit_keygen_makes_the_key_each_service_signs_with_and_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keygen", "collaboration", "label_decisions", "--instance", "eu", "--key-dir"]
    assert audit.main([*argv, str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    settings = TransparencySettings(key_dir=str(tmp_path))
    for service, line in zip(["collaboration", "label_decisions"], printed, strict=True):
        path, vkey = line.split(": ")
        assert Path(path) == tmp_path / "eu" / f"{service}.key"
        # the service, started on this directory, signs with the key made
        signer = signer_for(settings, service, "eu")
        assert signer.verifier.text() == vkey
        assert (
            signer.name == settings.origin(service, "eu") == f"cluster-label-registry/eu/{service}"
        )
    assert audit.main([*argv, str(tmp_path)]) == 0  # a second run keeps the keys
    assert capsys.readouterr().out.splitlines() == printed


def test_a_witness_cosignature_covers_its_time() -> None:
    log = SignerKey.generate("log.example")
    witness = SignerKey.generate("witness.example", COSIGNATURE_V1)
    note = sign_checkpoint(Checkpoint("log.example", 3, bytes(32)), log)
    cosigned = Note.parse(note.with_signature(witness.sign(note.text, timestamp=100)).render())
    assert cosigned.signed_by(witness.verifier) and cosigned.signed_by(log.verifier)
    forged = cosigned.signatures[1]
    moved = type(forged)(
        forged.name, forged.key_hash, (101).to_bytes(8, "big") + forged.signature[8:]
    )
    assert not Note(note.text, (moved,)).signed_by(witness.verifier)


def test_the_monitor_accepts_a_consistent_checkpoint_and_refuses_a_fork(tmp_path: Path) -> None:
    key = SignerKey.generate("log.example")
    tree, _ = tree_of(20)
    monitor = CheckpointMonitor(key.verifier, tmp_path / "last.note")
    monitor.check(sign_checkpoint(Checkpoint("log.example", 10, tree.root(10)), key).render(), [])
    monitor = CheckpointMonitor(key.verifier, tmp_path / "last.note")  # kept across runs
    assert monitor.last is not None and monitor.last.size == 10
    newer = sign_checkpoint(Checkpoint("log.example", 20, tree.root(20)), key).render()
    monitor.check(newer, tree.consistency_proof(10, 20))
    fork, _ = tree_of(25)
    forked = sign_checkpoint(Checkpoint("log.example", 25, bytes(32)), key).render()
    with pytest.raises(InconsistentCheckpointError):
        monitor.check(forked, fork.consistency_proof(20, 25))
    older = sign_checkpoint(Checkpoint("log.example", 5, tree.root(5)), key).render()
    with pytest.raises(InconsistentCheckpointError):
        monitor.check(older, [])


def copy_bundle(tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(VECTOR_BUNDLE, tmp_path / "bundle"))


def kinds(path: Path) -> list[tuple[str, int | None, int | None]]:
    (report,) = verify_bundle(path)
    return [(p.kind, p.first, p.last) for p in report.problems]


def test_the_offline_verifier_names_an_altered_and_a_missing_position(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    events = bundle / "stores/collaboration/events.jsonl"
    lines = events.read_bytes().splitlines()
    second = orjson.loads(lines[1])
    second["data"] = second["data"].replace("2026-01-02", "2025-01-02")
    events.write_bytes(lines[0] + b"\n" + orjson.dumps(second) + b"\n" + lines[2] + b"\n")
    found = kinds(bundle)
    assert ("altered", 2, 2) in found
    events.write_bytes(lines[0] + b"\n" + lines[2] + b"\n")
    found = kinds(bundle)
    assert ("missing", 2, 2) in found and ("cut", 3, 3) in found


def test_a_checkpoint_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    keys = bundle / "stores/collaboration/keys.txt"
    name = keys.read_text().split("+", 1)[0]
    keys.write_text(SignerKey.generate(name).verifier.text() + "\n")
    found = kinds(bundle)
    assert found[0][0] == "signature" and ("extra", 1, 3) in found


def test_clr_audit_finds_subcommands_in_its_entry_point_group(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[list[str]] = []

    class Entry:
        name = "redecide"

        def load(self) -> audit.Command:
            def run(argv: list[str]) -> int:
                seen.append(argv)
                return 0

            return run

    def entry_points(*, group: str) -> list[Entry]:
        assert group == "clr_audit.commands"
        return [Entry()]

    monkeypatch.setattr(audit, "entry_points", entry_points)
    assert audit.main(["redecide", "--all"]) == 0
    assert seen == [["--all"]]
    assert audit.main(["nothing-of-the-kind"]) == 2
    assert "redecide" in capsys.readouterr().err
    assert audit.main(["verify", str(VECTOR_BUNDLE)]) == 0
    assert audit.main(["verify", str(VECTOR_BUNDLE / "nothing")]) == 2


def test_the_verifier_refuses_an_empty_range_and_a_range_past_the_end() -> None:
    store = InMemoryEventStore()
    assert asyncio.run(store.verify()).ok  # an empty store: nothing to check, nothing wrong
    asyncio.run(store.append("s", 0, [NewEvent("T", {}), NewEvent("T", {})]))
    with pytest.raises(VerificationRangeError, match="after"):
        asyncio.run(store.verify(2, 1))
    with pytest.raises(VerificationRangeError, match="past the end"):
        asyncio.run(store.verify(1, 3))
    with pytest.raises(VerificationRangeError, match="past the end"):
        asyncio.run(store.verify(3))
    assert asyncio.run(store.verify(2, 2)).checked == 1
