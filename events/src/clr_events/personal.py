"""Personal data under a key per data subject (crypto-shredding).

A person's name is stored only sealed: AES-256-GCM under a key of its own data subject,
kept in the owning service's ``subject_keys`` table, never in an event, a topic or an
export. The hash chain hashes the stored bytes, so the sealed text is what it covers:
erasing the key (``erase``) leaves every copy of the sealed text (the store, its backups,
the bundles exported from it) unreadable while every hash still verifies.

Sealed text: ``sealed:v1:`` + base64url (no padding) of the 12-byte nonce, the ciphertext
and the 16-byte tag; the associated data is the subject's id, so a sealed value cannot be
opened as another subject's. Keys are read and written through the unit of work's
``Rows`` (the key is created in the transaction of the first event that needs it), or by
``keys`` at a service's edge, where names are opened for the responses that show them.
See docs/erasure.md.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clr_events.application.uow import Rows
from clr_events.pg import Connection, Pool

PREFIX = "sealed:v1:"
TABLE = "subject_keys"
"""A service's keys, one per data subject, in the service's schema: ``subject`` (text,
primary key), ``key`` (bytea), ``created_at``, ``erased_at``, key null exactly when erased
(an erased subject keeps its row). Each service that seals creates it in one of its
versioned migrations (training_certification: ``0002_sealed_names.sql``)."""
NONCE_BYTES = 12


class ErasedError(Exception):
    """The data subject's key was erased: nothing new is sealed for them."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"the personal data of {subject!r} was erased")


def new_key() -> bytes:
    """A fresh 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


def is_sealed(value: object) -> bool:
    """Whether ``value`` is sealed text."""
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(key: bytes, subject: str, text: str) -> str:
    """``text`` sealed under the subject's key."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, text.encode(), subject.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(key: bytes, subject: str, value: str) -> str:
    """The text sealed in ``value``.

    Raises:
        ValueError: not sealed text, or not sealed under this key for this subject.
    """
    if not is_sealed(value):
        raise ValueError("not sealed text")
    body = value[len(PREFIX) :]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    try:
        text = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], subject.encode())
    except InvalidTag as wrong:
        raise ValueError("sealed under another key or for another subject") from wrong
    return text.decode()


def open_or_none(key: bytes | None, subject: str, value: str | None) -> str | None:
    """The text of a sealed value, or None: no value, or the subject's key is gone."""
    if value is None or key is None:
        return None
    return unseal(key, subject, value)


# ------------------------------------------------------------ in a unit of work
async def key_for(rows: Rows, subject: str) -> bytes:
    """The subject's key, made (in the unit of work) if they have none yet.

    Raises:
        ErasedError: the subject's key was erased.
    """
    found = await rows.find(TABLE, ("key", "erased_at"), subject=subject)
    if found:
        if found[0]["key"] is None:
            raise ErasedError(subject)
        return bytes(found[0]["key"])
    key = new_key()
    await rows.insert(TABLE, {"subject": subject}, {"key": key, "erased_at": None})
    return key


async def erase(rows: Rows, subject: str, at: datetime) -> bool:
    """Erase the subject's key in the unit of work; whether there was one to erase."""
    found = await rows.find(TABLE, ("key",), subject=subject)
    if not found or found[0]["key"] is None:
        return False
    await rows.update(TABLE, {"subject": subject}, {"key": None, "erased_at": at})
    return True


# ------------------------------------------------------------ at the edge
async def keys(db: Pool | Connection, schema: str, subjects: Iterable[str]) -> dict[str, bytes]:
    """The keys of those ``subjects`` that have one (an erased subject has none)."""
    rows = await db.fetch(
        f"SELECT subject, key FROM {schema}.{TABLE} WHERE subject = ANY($1::text[])"
        " AND key IS NOT NULL",
        list(subjects),
    )
    return {r["subject"]: bytes(r["key"]) for r in rows}
