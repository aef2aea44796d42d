"""``projections.live.batches`` on a real faust stream over an in-memory channel: events
come in order, in batches of at most ``max_`` taken ``within`` seconds of their first; a
batch is acknowledged only once the caller asks for the next one, never when the caller
abandons it (its task cancelled mid-apply, or the batches closed while it is out), nor
is anything the stream reads once the batches are closed; an idle stream does not wake
the batches up.

A real stream, not a fake, so that these break when faust's private stream API (what
``batches`` borrows from ``Stream.take_events``) changes under them. Acknowledgement is
read where faust records it, on the event's message (``Message.acked``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import ChannelT, EventT

from projections.live import batches

WAIT = 5.0
"""Seconds before an await that should have finished fails the test (not a timing claim:
generous, for a shared and noisy machine)."""


@dataclass
class Source:
    """A faust app's in-memory channel and a stream over it."""

    app: faust.App
    channel: ChannelT[Any]
    stream: faust.Stream[Any]

    async def send(self, *values: int) -> None:
        for value in values:
            await self.channel.send(value=value)


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[Source]:
    # faust-streaming 0.15.3 has no memory:// transport: a Kafka URL nothing listens on,
    # whose consumer the stream uses for its acks but nothing ever starts
    app = faust.App(
        "test-batches",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=str(tmp_path),
    )
    # a worker resumes flow once it has partitions; suspended, a stream skips every event
    app.flow_control.resume()
    channel = app.channel()
    stream = app.stream(channel)
    assert isinstance(stream, faust.Stream)
    try:
        yield Source(app, channel, stream)
    finally:
        # closes the batches registered with the stream and stops its passive reader
        await asyncio.wait_for(stream.stop(), WAIT)
        # the consumer's thread, never started, made an event loop of its own
        thread = getattr(app.consumer, "_thread", None)
        if thread is not None:
            thread.thread_loop.close()


def take(stream: faust.Stream[Any], max_: int, within: float) -> AsyncGenerator[list[Any], None]:
    agen = batches(stream, max_, within)
    assert isinstance(agen, AsyncGenerator)  # closable, as faust's Stream.on_stop closes it
    return agen


async def next_batch(agen: AsyncGenerator[list[Any], None]) -> list[EventT[Any]]:
    return await asyncio.wait_for(agen.__anext__(), WAIT)


def values(batch: list[EventT[Any]]) -> list[Any]:
    return [event.value for event in batch]


def acked(batch: list[EventT[Any]]) -> list[bool]:
    return [event.message.acked for event in batch]


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {WAIT} s")


async def settle(task: asyncio.Future[Any]) -> None:
    """Cancel a task if it still runs, and wait for it to end."""
    task.cancel()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), WAIT)


async def test_events_come_in_order_in_batches_of_at_most_max_the_last_after_within(
    source: Source,
) -> None:
    agen = take(source.stream, max_=2, within=0.5)
    await source.send(0, 1, 2, 3, 4)
    try:
        taken = [values(await next_batch(agen)) for _ in range(3)]
    finally:
        await asyncio.wait_for(agen.aclose(), WAIT)
    # the last one, one event short of full, can only have been taken by the timeout
    assert taken == [[0, 1], [2, 3], [4]]


async def test_a_batch_is_acknowledged_only_once_the_caller_asks_for_the_next(
    source: Source,
) -> None:
    agen = take(source.stream, max_=2, within=WAIT)
    await source.send(0, 1)
    first = await next_batch(agen)
    assert values(first) == [0, 1]
    await asyncio.sleep(0.05)  # time for a stray acknowledgement (the stream's own) to land
    assert acked(first) == [False, False]  # out with the caller: being applied
    asking = asyncio.ensure_future(agen.__anext__())
    try:
        await wait_until(lambda: all(acked(first)))
        assert not asking.done()  # acknowledged as the caller asked, before the next batch
        await source.send(2, 3)
        second = await asyncio.wait_for(asking, WAIT)
        assert values(second) == [2, 3]
        assert acked(second) == [False, False]
    finally:
        await settle(asking)
        await asyncio.wait_for(agen.aclose(), WAIT)


async def test_a_batch_whose_consumer_is_cancelled_mid_apply_is_never_acknowledged(
    source: Source,
) -> None:
    stream = source.stream
    agen = take(stream, max_=2, within=WAIT)
    taken: list[list[EventT[Any]]] = []

    async def consume() -> None:
        async for batch in agen:
            taken.append(batch)
            await asyncio.Event().wait()  # applying it, until cancelled

    await source.send(0, 1, 2)
    consumer = asyncio.ensure_future(consume())
    try:
        await wait_until(lambda: bool(taken))
    finally:
        await settle(consumer)
    assert consumer.cancelled()
    assert values(taken[0]) == [0, 1]
    assert acked(taken[0]) == [False, False]
    # faust stops the agent's stream, whose on_stop closes the batches registered with
    # it: where faust's own take_events acknowledges the batch it had out
    await asyncio.wait_for(stream.stop(), WAIT)
    assert acked(taken[0]) == [False, False]
    with pytest.raises(StopAsyncIteration):  # closed
        await agen.__anext__()
    assert stream._processors == []
    assert stream.enable_acks is False


async def put(channel: ChannelT[Any], value: int) -> EventT[Any]:
    """Put ``value`` on the channel as an event; the event (to see its acknowledgement)."""
    concrete: Any = channel  # faust's Channel, whose private helper makes the event
    event: EventT[Any] = concrete._future_message_to_event(channel.as_future_message(value=value))
    await channel.put(event)
    return event


async def test_a_batch_out_when_the_batches_are_closed_is_never_acknowledged(
    source: Source,
) -> None:
    stream = source.stream
    processors = list(stream._processors)
    agen = take(stream, max_=2, within=WAIT)
    await source.send(0, 1)
    batch = await next_batch(agen)
    assert values(batch) == [0, 1]
    assert stream.enable_acks is False  # acknowledged by the batches, not the stream
    assert len(stream._processors) == len(processors) + 1
    await asyncio.wait_for(agen.aclose(), WAIT)
    assert acked(batch) == [False, False]
    assert stream._processors == processors
    # the stream's reader goes on until the stream stops, and nobody applies what it
    # reads now: none of that may be acknowledged (faust's take_events turns acks back on)
    assert stream.enable_acks is False
    later = [await put(source.channel, value) for value in (2, 3)]
    await wait_until(lambda: source.channel.empty())
    await asyncio.sleep(0.05)  # time for a stray acknowledgement to land
    assert acked(later) == [False, False]


async def test_an_idle_stream_does_not_wake_the_batches(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = source.stream
    waits = 0
    wait_for_stopped = stream.wait_for_stopped

    async def counted(*coros: Any, **kwargs: Any) -> bool:
        nonlocal waits
        waits += 1
        return await wait_for_stopped(*coros, **kwargs)

    monkeypatch.setattr(stream, "wait_for_stopped", counted)
    agen = take(stream, max_=2, within=0.02)
    asking = asyncio.ensure_future(agen.__anext__())
    try:
        await asyncio.sleep(0.3)  # fifteen times within, no event
        assert not asking.done()
        # one wait, for a first event, with no timeout (faust's take_events: one a tick)
        assert waits == 1
        await source.send(0)
        batch = await asyncio.wait_for(asking, WAIT)
        assert values(batch) == [0]
        assert waits == 2  # and one more, for the batch to fill within its 0.02 s
    finally:
        await settle(asking)
        await asyncio.wait_for(agen.aclose(), WAIT)
