"""Sealing personal data under a key per data subject."""

from __future__ import annotations

import pytest

from clr_events import personal


def test_sealed_text_opens_with_its_key_for_its_subject_only() -> None:
    key = personal.new_key()
    sealed = personal.seal(key, "person:p-1", "Anna Müller")
    assert personal.is_sealed(sealed) and "Anna" not in sealed
    assert personal.unseal(key, "person:p-1", sealed) == "Anna Müller"
    assert sealed != personal.seal(key, "person:p-1", "Anna Müller")  # a new nonce each time
    with pytest.raises(ValueError, match="another"):
        personal.unseal(key, "person:p-2", sealed)  # moved to another subject
    with pytest.raises(ValueError, match="another"):
        personal.unseal(personal.new_key(), "person:p-1", sealed)
    with pytest.raises(ValueError, match="not sealed"):
        personal.unseal(key, "person:p-1", "Anna Müller")


def test_without_its_key_sealed_text_is_none() -> None:
    sealed = personal.seal(personal.new_key(), "person:p-1", "Anna")
    assert personal.open_or_none(None, "person:p-1", sealed) is None
    assert personal.open_or_none(personal.new_key(), "person:p-1", None) is None
