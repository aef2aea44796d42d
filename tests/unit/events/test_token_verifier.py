"""The token verifier remembers a verified token until it expires, and nothing refused."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from clr_events.service.auth import AuthSettings, TokenVerifier, mint
from clr_events.service.problems import ProblemError

SETTINGS = AuthSettings(secret=SecretStr("s" * 32), leeway_seconds=0)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Counting(TokenVerifier):
    decoded = 0

    def _decode(self, token: str) -> tuple[object, float]:  # type: ignore[override]
        self.decoded += 1
        return super()._decode(token)


def test_a_verified_token_is_remembered_until_it_expires() -> None:
    clock = Clock()
    verifier = Counting(SETTINGS, clock=clock)
    token = mint("alice", ["assessor"], SETTINGS, ttl_seconds=60)
    assert verifier.verify(token).subject == "alice"
    assert verifier.verify(token).subject == "alice"
    assert verifier.decoded == 1
    clock.now += 61  # past its expiry: not taken from memory, verified again
    verifier.verify(token)
    assert verifier.decoded == 2


def test_a_refused_token_is_refused_every_time() -> None:
    verifier = Counting(SETTINGS)
    forged = mint("mallory", ["registry_admin"], AuthSettings(secret=SecretStr("x" * 32)))
    for _ in range(2):
        with pytest.raises(ProblemError):
            verifier.verify(forged)
    assert verifier.decoded == 2


def test_the_oldest_token_is_forgotten_first() -> None:
    verifier = Counting(SETTINGS, cache_size=2)
    tokens = [mint(f"user{i}", ["assessor"], SETTINGS) for i in range(3)]
    for token in tokens:
        verifier.verify(token)
    verifier.verify(tokens[2])
    verifier.verify(tokens[1])
    assert verifier.decoded == 3
    verifier.verify(tokens[0])
    assert verifier.decoded == 4
