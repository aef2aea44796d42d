"""Signed notes (C2SP signed-note), checkpoints (C2SP tlog-checkpoint) and witness
cosignatures (C2SP tlog-cosignature), with Ed25519 keys.

A checkpoint is a note whose text is three lines, each ending in a newline::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

followed by a blank line and one signature line per signer,
``— <key name> <base64(key hash (4 bytes) || signature)>`` (U+2014, then a space). The
log's key hash is the first four bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``
and its signature is Ed25519 over the note text. A witness cosignature (type 0x04) signs
``"cosignature/v1\\ntime <seconds>\\n" || note text`` and carries
``key hash || timestamp (8 bytes, big-endian) || signature``. Keys are written as the Go
``note`` package writes them: ``<name>+<key hash hex>+<base64(type || public key)>`` for
a verifier key, ``PRIVATE+KEY+<name>+<key hash hex>+<base64(type || seed)>`` for a signer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
"""The signature type of a log's Ed25519 key (C2SP signed-note)."""
COSIGNATURE_V1 = 0x04
"""The signature type of a witness's timestamped Ed25519 cosignature (C2SP tlog-cosignature)."""
DASH = "\u2014"


class NoteError(ValueError):
    """A note, checkpoint or key that is not well formed."""


def b64(raw: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    """Decode standard base64, strictly.

    Raises:
        NoteError: not base64.
    """
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise NoteError(f"not base64: {text!r}") from error


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"a key name is non-empty, without spaces or '+': {name!r}")


def key_hash(name: str, key_type: int, public_key: bytes) -> bytes:
    """The four bytes naming a key in its signature lines."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class VerifierKey:
    """A public key and its name: what a log or a witness publishes."""

    name: str
    key_type: int
    public_key: bytes

    @property
    def hash(self) -> bytes:
        """The key hash that opens this key's signatures."""
        return key_hash(self.name, self.key_type, self.public_key)

    def text(self) -> str:
        """``<name>+<hash hex>+<base64(type || public key)>``."""
        return f"{self.name}+{self.hash.hex()}+{b64(bytes([self.key_type]) + self.public_key)}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read a verifier key; its hash must match.

        Raises:
            NoteError: not a verifier key of a known type.
        """
        name, _, rest = text.strip().partition("+")
        hash_hex, _, key_b64 = rest.partition("+")
        raw = unb64(key_b64)
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError("a verifier key is an Ed25519 (0x01) or cosignature (0x04) key")
        _check_name(name)
        key = cls(name, raw[0], raw[1:])
        if key.hash.hex() != hash_hex:
            raise NoteError(f"the key hash of {name!r} does not match its key")
        return key

    def _ed25519(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def verifies(self, text: str, signature: Signature) -> bool:
        """Whether ``signature`` on note text ``text`` was made by this key."""
        if signature.name != self.name or signature.key_hash != self.hash:
            return False
        message = text.encode()
        raw = signature.signature
        if self.key_type == COSIGNATURE_V1:
            if len(raw) != 72:
                return False
            moment = int.from_bytes(raw[:8], "big")
            message = cosigned_message(text, moment)
            raw = raw[8:]
        try:
            self._ed25519().verify(raw, message)
        except InvalidSignature:
            return False
        return True


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a witness signs: ``cosignature/v1``, the time, then the checkpoint text."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True)
class SignerKey:
    """A private key and its name (a log's, type 0x01, or a witness's, type 0x04)."""

    name: str
    key_type: int
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str, key_type: int = ED25519) -> SignerKey:
        """A new key."""
        _check_name(name)
        return cls(name, key_type, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes, key_type: int = ED25519) -> SignerKey:
        """The key of a 32-byte seed (test vectors)."""
        _check_name(name)
        return cls(name, key_type, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def verifier(self) -> VerifierKey:
        """The public half."""
        return VerifierKey(self.name, self.key_type, _raw_public(self.private_key.public_key()))

    def text(self) -> str:
        """``PRIVATE+KEY+<name>+<hash hex>+<base64(type || seed)>``."""
        seed = self.private_key.private_bytes_raw()
        raw = bytes([self.key_type]) + seed
        return f"PRIVATE+KEY+{self.name}+{self.verifier.hash.hex()}+{b64(raw)}"

    @classmethod
    def parse(cls, text: str) -> SignerKey:
        """Read a signer key.

        Raises:
            NoteError: not a signer key.
        """
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a signer key")
        raw = unb64(parts[4])
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError("a signer key is an Ed25519 (0x01) or cosignature (0x04) key")
        key = cls.from_seed(parts[2], raw[1:], raw[0])
        if key.verifier.hash.hex() != parts[3]:
            raise NoteError("the key hash does not match the key")
        return key

    def sign(self, text: str, *, timestamp: int | None = None) -> Signature:
        """Sign note text (a cosignature carries ``timestamp``, now by default)."""
        if self.key_type == COSIGNATURE_V1:
            moment = int(time.time()) if timestamp is None else timestamp
            raw = moment.to_bytes(8, "big") + self.private_key.sign(cosigned_message(text, moment))
        else:
            raw = self.private_key.sign(text.encode())
        return Signature(self.name, self.verifier.hash, raw)


def load_or_create_key(path: Path, name: str, key_type: int = ED25519) -> SignerKey:
    """The signer key kept in ``path``; a new one written there (mode 600) the first time.

    Raises:
        NoteError: the file holds a key of another name.
    """
    if path.exists():
        key = SignerKey.parse(path.read_text())
        if key.name != name:
            raise NoteError(f"{path} holds the key of {key.name!r}, not {name!r}")
        return key
    key = SignerKey.generate(name, key_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key.text() + "\n")
    return key


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        """``— <name> <base64(key hash || signature)>``."""
        return f"{DASH} {self.name} {b64(self.key_hash + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note: its text (ending in a newline) and its signatures."""

    text: str
    signatures: tuple[Signature, ...]

    def render(self) -> str:
        """The note as it is served and stored."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signature(self, signature: Signature) -> Note:
        """The same note with one more signature (a witness's)."""
        return Note(self.text, (*self.signatures, signature))

    def signed_by(self, key: VerifierKey) -> bool:
        """Whether one of the note's signatures is a valid one of ``key``."""
        return any(key.verifies(self.text, s) for s in self.signatures)

    @classmethod
    def parse(cls, rendered: str) -> Note:
        """Read a signed note.

        Raises:
            NoteError: not a signed note.
        """
        text, sep, block = rendered.rpartition("\n\n")
        if not sep or not block.endswith("\n"):
            raise NoteError("a note is text, a blank line, then signature lines")
        signatures = []
        for line in block[:-1].split("\n"):
            dash, _, rest = line.partition(" ")
            name, _, value = rest.partition(" ")
            if dash != DASH or not name or " " in value:
                raise NoteError(f"not a signature line: {line!r}")
            raw = unb64(value)
            if len(raw) < 5:
                raise NoteError(f"signature too short: {line!r}")
            signatures.append(Signature(name, raw[:4], raw[4:]))
        return cls(text + "\n", tuple(signatures))


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement of a log: its origin, tree size and root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint's note text."""
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint's note text.

        Raises:
            NoteError: not a checkpoint.
        """
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint is at least three lines, each ending in a newline")
        origin, size, root = lines[0], lines[1], unb64(lines[2])
        if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("a checkpoint's origin and decimal tree size")
        if len(root) != 32:
            raise NoteError("a checkpoint's root hash is 32 bytes")
        return cls(origin, int(size), root, tuple(lines[3:-1]))


def sign_checkpoint(checkpoint: Checkpoint, key: SignerKey) -> Note:
    """A checkpoint, signed."""
    text = checkpoint.text()
    return Note(text, (key.sign(text),))


def open_checkpoint(rendered: str, key: VerifierKey) -> tuple[Checkpoint, Note]:
    """A checkpoint note checked against the log's key.

    Raises:
        NoteError: not a checkpoint, or not signed by ``key``.
    """
    note = Note.parse(rendered)
    if not note.signed_by(key):
        raise NoteError(f"the checkpoint is not signed by {key.name!r}")
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != key.name:
        raise NoteError(f"the checkpoint's origin {checkpoint.origin!r} is not {key.name!r}")
    return checkpoint, note
