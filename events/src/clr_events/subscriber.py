"""What a subscriber needs to switch safely between Kafka and the HTTP feed.

The cursor of both is the label_decisions global position (``ce_globalposition``). Kafka's
partitions advance independently, so a consumer stopped part-way has applied events above
positions it has not seen yet: its highest position is **not** a safe cursor. The safe
point is the end of the unbroken ``prevposition`` chain of what it applied:

    chain = Chain()                       # or Chain(start=W), from a snapshot's feed position
    for record in consumer:               # any order across partitions
        if chain.seen(position):          # a repeat, or an event the feed served already
            continue
        apply(record)
        chain.applied(position, prevposition)
    # to the feed: GET /api/feed?after={chain.safe_point}, skipping chain.seen(position)

The other way, from the feed's cursor to Kafka, ``offsets_after`` finds in each partition the
first offset whose record lies after the cursor: seek there and skip positions at or below
the cursor (and repeats, by ``Chain.seen``).

Headers on Kafka are strings (``b"42"``); the HTTP feed's attributes are JSON integers.
``position_of`` reads either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    return int(value)


def position_of(attributes: Mapping[str, Any]) -> tuple[int, int | None]:
    """``(globalposition, prevposition)`` from a feed event (integers) or from a Kafka
    record's headers (``ce_*``, strings as bytes)."""
    if "globalposition" in attributes:
        position = _int(attributes["globalposition"])
        previous = _int(attributes.get("prevposition"))
    else:
        position = _int(attributes.get("ce_globalposition"))
        previous = _int(attributes.get("ce_prevposition"))
    if position is None:
        raise ValueError("not a registry event: no globalposition")
    return position, previous


class Chain:
    """The end of the unbroken ``prevposition`` chain of the events a consumer applied.

    ``start``: the cursor it started from (0: the beginning of the topic; a snapshot's
    ``ce_feedposition``; the feed's ``next``). Events applied out of order (another
    partition is behind) wait above the end until the events that link them arrive; only
    those are held in memory. To resume after a restart, keep ``safe_point`` and
    ``ahead`` and build ``Chain(start=safe_point, ahead=ahead)``.
    """

    def __init__(self, start: int = 0, ahead: Mapping[int, int] | None = None) -> None:
        self._end = start
        self._next: dict[int, int] = {}
        """prevposition -> position, of the events applied above the end."""
        self._ahead: set[int] = set()
        for position, previous in (ahead or {}).items():
            self.applied(position, previous)

    @property
    def safe_point(self) -> int:
        """The highest position up to which every event was applied: the cursor to give the
        feed (``after=``), or to keep."""
        return self._end

    @property
    def ahead(self) -> dict[int, int]:
        """Events applied above the safe point, ``{position: prevposition}``."""
        return {position: previous for previous, position in self._next.items()}

    def seen(self, position: int) -> bool:
        """Whether the event at ``position`` was applied (or lies at or below the start)."""
        return position <= self._end or position in self._ahead

    def applied(self, position: int, prevposition: int | None) -> None:
        """Note that the event at ``position`` (naming ``prevposition``) was applied.

        An event without ``prevposition`` (published before the relay stamped one) links
        to nothing: the chain ends before it.
        """
        if self.seen(position) or prevposition is None:
            return
        self._next[prevposition] = position
        self._ahead.add(position)
        while (following := self._next.pop(self._end, None)) is not None:
            self._ahead.discard(following)
            self._end = following


async def _position_from(
    consumer: AIOKafkaConsumer,
    partition: TopicPartition,
    offset: int,
    end: int,
    source: bytes | None,
) -> tuple[int, int] | None:
    """(offset, position) of the first registry event at or after ``offset`` (None: none
    before ``end``); records that are not registry events (or not from ``source``) are
    passed over."""
    consumer.seek(partition, offset)
    while offset < end:
        record = await consumer.getone(partition)
        offset = record.offset + 1
        headers = dict(record.headers or ())
        if source is not None and headers.get("ce_source") != source:
            continue
        try:
            position, _ = position_of(headers)
        except ValueError:
            continue
        return record.offset, position
    return None


async def offsets_after(
    consumer: AIOKafkaConsumer, topic: str, position: int, *, source: str | None = None
) -> dict[TopicPartition, int]:
    """For each partition of ``topic``, the offset of its first event after ``position``
    (its end offset if it has none yet): read from there, skip events at or below
    ``position``, and nothing after it is missed.

    A binary search per partition (a few reads each): within a partition positions rise,
    except where the relay repeated events after a crash, and a repeat goes back no
    further than its checkpoint and sends again everything after it in order, so an event
    above ``position`` met before a record at or below it comes again after that record.

    ``consumer``: started, without a group or with manual assignment; this assigns it the
    topic's partitions (seek afterwards to the offsets returned). ``source``: only records
    with this ``ce_source`` count (say ``/label_decisions``), others are passed over.
    """
    if not consumer.partitions_for_topic(topic):
        await consumer.end_offsets([TopicPartition(topic, 0)])  # loads the topic's metadata
    partitions = [
        TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(partitions)
    wanted = source.encode() if source is not None else None
    firsts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    found: dict[TopicPartition, int] = {}
    for partition in partitions:
        low, high = firsts[partition], ends[partition]
        # the answer lies in [low, high]: the events before ``low`` are at or below
        # ``position`` (or come again after it), the first event from ``high`` is above it
        while low < high:
            middle = (low + high) // 2
            at = await _position_from(consumer, partition, middle, ends[partition], wanted)
            if at is None or at[1] > position:
                high = middle
            else:
                low = at[0] + 1
        found[partition] = low
    return found
