"""The safe point of a consumer is the end of the unbroken chain of what it applied."""

from __future__ import annotations

import random

import pytest

from clr_events.subscriber import Chain, position_of

pytestmark = pytest.mark.unit

# a topic whose private events leave holes: (position, prevposition)
EVENTS = [(2, 0), (3, 2), (7, 3), (8, 7), (9, 8), (12, 9), (13, 12), (20, 13)]


def test_the_safe_point_stops_below_the_first_event_not_yet_applied() -> None:
    chain = Chain()
    for position, previous in [(2, 0), (3, 2), (8, 7), (12, 9), (13, 12)]:  # 7 and 9 behind
        chain.applied(position, previous)
    assert chain.safe_point == 3  # not 13: 7 and 9 are missing
    assert chain.seen(8) and chain.seen(13) and not chain.seen(7) and not chain.seen(9)
    chain.applied(7, 3)
    assert chain.safe_point == 8
    chain.applied(9, 8)
    assert chain.safe_point == 13
    assert chain.ahead == {}


def test_any_order_and_repeats_reach_the_same_end() -> None:
    rng = random.Random(7)
    for _ in range(50):
        shuffled = EVENTS + rng.sample(EVENTS, 3)  # some repeats
        rng.shuffle(shuffled)
        chain = Chain()
        for position, previous in shuffled:
            chain.applied(position, previous)
        assert chain.safe_point == 20
        assert chain.ahead == {}


def test_a_chain_resumes_from_its_kept_state() -> None:
    chain = Chain(start=3)
    chain.applied(8, 7)
    kept = Chain(start=chain.safe_point, ahead=chain.ahead)
    assert kept.safe_point == 3 and kept.seen(8)
    kept.applied(7, 3)
    assert kept.safe_point == 8


def test_an_event_without_prevposition_links_nothing() -> None:
    chain = Chain()
    chain.applied(1, None)
    assert chain.safe_point == 0


def test_positions_read_from_kafka_headers_and_from_the_feed() -> None:
    assert position_of({"ce_globalposition": b"42", "ce_prevposition": b"40"}) == (42, 40)
    assert position_of({"globalposition": 42, "prevposition": 40}) == (42, 40)
    with pytest.raises(ValueError):
        position_of({"ce_id": b"x"})
