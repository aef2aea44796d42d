"""The test vectors of docs/canonical-form.md (docs/vectors/) against the code, and the
documented byte layout against the vectors by an independent re-implementation (hashlib
and the cryptography package only), as an auditor in another language would check it.

Regenerate the files (only when the format changes on purpose, with a new format
version): ``uv run python -m tests.unit.events.test_transparency_vectors``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from clr_events.store.hashing import GENESIS_HASH, chain, content_digest, format_time
from clr_events.transparency.bundle import (
    FORMAT,
    MANIFEST,
    event_line,
    store_files,
    verify_bundle,
)
from clr_events.transparency.merkle import MerkleTree
from clr_events.transparency.note import (
    COSIGNATURE_V1,
    Checkpoint,
    Note,
    SignerKey,
    sign_checkpoint,
)

VECTORS = Path(__file__).resolve().parents[3] / "docs" / "vectors"
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
"""The leaf inputs of the Certificate Transparency reference tests (RFC 6962's tree, which
RFC 9162 keeps)."""
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
"""Their published roots by tree size."""
CT_INCLUSION = [  # (leaf index, tree size, audit path) of the reference tests
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [  # (first, second, proof) of the reference tests
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
LOG_SEED = bytes(range(32))
WITNESS_SEED = bytes(range(32, 64))
LOG_NAME = "registry.example/vectors/collaboration"
WITNESS_NAME = "witness.example"
COSIGNED_AT = 1767225600  # 2026-01-01T00:00:00Z

EVENTS = [
    (
        "org-1",
        UUID("00000000-0000-4000-8000-000000000001"),
        "OrganisationRegistered",
        1,
        '{"org_id":"org-1","name":"Clüster Nørd","country":"DK"}',
        '{"actor":"alice","correlation_id":"c-1"}',
        datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC),
    ),
    (
        "org-1",
        UUID("00000000-0000-4000-8000-000000000002"),
        "OrganisationValidated",
        1,
        '{"org_id":"org-1","validated_on":"2026-01-02"}',
        "{}",
        datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
    ),
    (
        "org-2",
        UUID("00000000-0000-4000-8000-000000000003"),
        "OrganisationRegistered",
        2,
        '{"org_id":"org-2","name":"Cluster \\"Süd\\"","country":"AT"}',
        '{"actor":"bob"}',
        datetime(2026, 1, 3, 0, 0, 0, 1, tzinfo=UTC),
    ),
]


def build_event_vectors() -> dict[str, Any]:
    previous = GENESIS_HASH
    versions: dict[str, int] = {}
    events = []
    for position, (stream, event_id, type_, schema, data, metadata, at) in enumerate(
        EVENTS, start=1
    ):
        version = versions[stream] = versions.get(stream, 0) + 1
        digest = content_digest(stream, event_id, type_, schema, data, metadata, at)
        hashed = chain(previous, position, version, digest)
        events.append(
            {
                "position": position,
                "stream_id": stream,
                "version": version,
                "event_id": str(event_id),
                "type": type_,
                "schema_version": schema,
                "data": data,
                "metadata": metadata,
                "recorded_at": format_time(at),
                "content_digest": digest.hex(),
                "previous_hash": previous.hex(),
                "hash": hashed.hex(),
            }
        )
        previous = hashed
    return {"genesis_hash": GENESIS_HASH.hex(), "events": events}


def build_merkle_vectors(event_hashes: list[bytes]) -> dict[str, Any]:
    ct = MerkleTree()
    ct.extend(bytes.fromhex(leaf) for leaf in CT_LEAVES)
    ours = MerkleTree()
    ours.extend(event_hashes)
    return {
        "reference": {
            "leaf_inputs": CT_LEAVES,
            "roots": {str(n): ct.root(n).hex() for n in range(len(CT_LEAVES) + 1)},
            "inclusion": [
                {"index": i, "size": n, "proof": [p.hex() for p in ct.inclusion_proof(i, n)]}
                for i, n, _ in CT_INCLUSION
            ],
            "consistency": [
                {"first": m, "second": n, "proof": [p.hex() for p in ct.consistency_proof(m, n)]}
                for m, n, _ in CT_CONSISTENCY
            ],
        },
        "events": {
            "leaf_inputs": [h.hex() for h in event_hashes],
            "leaf_hashes": [ours.leaf(i).hex() for i in range(ours.size)],
            "roots": {str(n): ours.root(n).hex() for n in range(ours.size + 1)},
            "inclusion": [
                {"index": i, "size": 3, "proof": [p.hex() for p in ours.inclusion_proof(i, 3)]}
                for i in range(3)
            ],
            "consistency": [
                {"first": m, "second": 3, "proof": [p.hex() for p in ours.consistency_proof(m, 3)]}
                for m in range(4)
            ],
        },
    }


def build_checkpoint_vectors(root: bytes) -> dict[str, Any]:
    log = SignerKey.from_seed(LOG_NAME, LOG_SEED)
    witness = SignerKey.from_seed(WITNESS_NAME, WITNESS_SEED, COSIGNATURE_V1)
    note = sign_checkpoint(Checkpoint(LOG_NAME, 3, root), log)
    cosigned = note.with_signature(witness.sign(note.text, timestamp=COSIGNED_AT))
    return {
        "log_seed": LOG_SEED.hex(),
        "log_signer_key": log.text(),
        "log_verifier_key": log.verifier.text(),
        "log_key_hash": log.verifier.hash.hex(),
        "checkpoint_text": note.text,
        "note": note.render(),
        "witness_seed": WITNESS_SEED.hex(),
        "witness_verifier_key": witness.verifier.text(),
        "cosigned_at": COSIGNED_AT,
        "cosigned_note": cosigned.render(),
    }


def build() -> dict[str, bytes]:
    """Every vector file, by its path under docs/vectors."""
    events = build_event_vectors()
    hashes = [bytes.fromhex(e["hash"]) for e in events["events"]]
    merkle = build_merkle_vectors(hashes)
    checkpoint = build_checkpoint_vectors(bytes.fromhex(merkle["events"]["roots"]["3"]))
    files = {
        "event-hash.json": events,
        "merkle.json": merkle,
        "checkpoint.json": checkpoint,
    }
    out = {
        name: orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        for name, doc in files.items()
    }
    store = store_files("collaboration")
    out["bundle/" + store["events"]] = b"".join(
        event_line(
            e["position"],
            e["stream_id"],
            e["version"],
            e["event_id"],
            e["type"],
            e["schema_version"],
            e["data"],
            e["metadata"],
            e["recorded_at"],
            bytes.fromhex(e["hash"]),
        )
        for e in events["events"]
    )
    out["bundle/" + store["checkpoints"]] = (
        orjson.dumps({"tree_size": 3, "note": checkpoint["note"]}) + b"\n"
    )
    out["bundle/" + store["keys"]] = (checkpoint["log_verifier_key"] + "\n").encode()
    out["bundle/" + MANIFEST] = (
        orjson.dumps(
            {
                "format": FORMAT,
                "stores": [{"name": "collaboration", "origin": LOG_NAME, "tree_size": 3}],
            },
            option=orjson.OPT_INDENT_2,
        )
        + b"\n"
    )
    return out


def test_the_vector_files_are_what_the_code_computes() -> None:
    for name, content in build().items():
        assert (VECTORS / name).read_bytes() == content, name


def test_the_reference_vectors_are_the_published_ones() -> None:
    merkle = json.loads((VECTORS / "merkle.json").read_text())["reference"]
    assert merkle["roots"] == {str(n): root for n, root in CT_ROOTS.items()}
    assert [(v["index"], v["size"], v["proof"]) for v in merkle["inclusion"]] == CT_INCLUSION
    assert [(v["first"], v["second"], v["proof"]) for v in merkle["consistency"]] == CT_CONSISTENCY


# ---------------------------------------------------- an independent re-implementation


def _sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, recursively, straight from the text."""
    if not leaves:
        return _sha()
    if len(leaves) == 1:
        return _sha(b"\x00", leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _sha(b"\x01", _mth(leaves[:k]), _mth(leaves[k:]))


def test_the_event_hash_as_documented() -> None:
    vectors = json.loads((VECTORS / "event-hash.json").read_text())
    previous = bytes.fromhex(vectors["genesis_hash"])
    assert previous == bytes(32)
    for e in vectors["events"]:
        texts = [
            e["stream_id"],
            e["event_id"],
            e["type"],
            str(e["schema_version"]),
            e["data"],
            e["metadata"],
            e["recorded_at"],
        ]
        digest = _sha(*(len(t.encode()).to_bytes(8, "big") + t.encode() for t in texts))
        assert digest.hex() == e["content_digest"]
        assert e["previous_hash"] == previous.hex()
        hashed = _sha(
            previous, e["position"].to_bytes(8, "big"), e["version"].to_bytes(8, "big"), digest
        )
        assert hashed.hex() == e["hash"]
        previous = hashed
    assert vectors["events"][0]["recorded_at"] == "2026-01-02T03:04:05.678900+00:00"
    assert vectors["events"][1]["recorded_at"] == "2026-01-02T03:04:06.000000+00:00"


def test_the_merkle_vectors_as_documented() -> None:
    merkle = json.loads((VECTORS / "merkle.json").read_text())
    for part in ("reference", "events"):
        leaves = [bytes.fromhex(x) for x in merkle[part]["leaf_inputs"]]
        for size, root in merkle[part]["roots"].items():
            assert _mth(leaves[: int(size)]).hex() == root


def test_the_checkpoint_and_cosignature_as_documented() -> None:
    vectors = json.loads((VECTORS / "checkpoint.json").read_text())
    events_root = json.loads((VECTORS / "merkle.json").read_text())["events"]["roots"]["3"]
    text = vectors["checkpoint_text"]
    assert text == f"{LOG_NAME}\n3\n{base64.b64encode(bytes.fromhex(events_root)).decode()}\n"
    name, key_hash_hex, key_b64 = vectors["log_verifier_key"].split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x01 and name == LOG_NAME
    assert _sha(name.encode(), b"\n", raw).hex()[:8] == key_hash_hex
    body, signatures = vectors["note"].split("\n\n")
    assert body + "\n" == text
    dash, signer, value = signatures.rstrip("\n").split(" ")
    assert dash == "\u2014" and signer == LOG_NAME
    blob = base64.b64decode(value)
    assert blob[:4].hex() == key_hash_hex
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], text.encode())  # raises if bad
    cosignature = vectors["cosigned_note"].rstrip("\n").split("\n")[-1].split(" ")
    w_name, w_hash, w_key = vectors["witness_verifier_key"].split("+", 2)
    w_raw = base64.b64decode(w_key)
    assert w_raw[0] == 0x04 and cosignature[1] == w_name == WITNESS_NAME
    assert _sha(w_name.encode(), b"\n", w_raw).hex()[:8] == w_hash
    blob = base64.b64decode(cosignature[2])
    assert blob[:4].hex() == w_hash and int.from_bytes(blob[4:12], "big") == COSIGNED_AT
    message = f"cosignature/v1\ntime {COSIGNED_AT}\n".encode() + text.encode()
    Ed25519PublicKey.from_public_bytes(w_raw[1:]).verify(blob[12:], message)
    assert Note.parse(vectors["cosigned_note"]).render() == vectors["cosigned_note"]


def test_the_vector_bundle_verifies() -> None:
    (report,) = verify_bundle(VECTORS / "bundle")
    assert report.ok and report.events == 3 and report.signed_size == 3, report.problems


if __name__ == "__main__":
    shutil.rmtree(VECTORS, ignore_errors=True)
    for name, content in build().items():
        (VECTORS / name).parent.mkdir(parents=True, exist_ok=True)
        (VECTORS / name).write_bytes(content)
