"""The id of a command: the causation id of every event it records."""

from __future__ import annotations

from clr_events.service.commands import command_id


def test_a_command_without_a_key_gets_a_new_id_each_time() -> None:
    first, second = command_id("anna"), command_id("anna")
    assert first != second
    assert first.startswith("command:") and len(first) == len("command:") + 32


def test_every_retry_of_a_keyed_command_is_the_same_command() -> None:
    assert command_id("anna", "k-1") == command_id("anna", "k-1")
    assert command_id("anna", "k-1") != command_id("bert", "k-1")
    assert command_id("anna", "k-1") != command_id("anna", "k-2")
