"""The transparency log of one service's event store, in the store's schema.

- ``TreeCache``: the Merkle tree of the store's chain hashes, held by each process and
  extended from the store on demand (64 bytes a position), for roots and proofs.
- ``TransparencyLog``: the checkpoints and keys tables, and the reads the HTTP API serves.
- ``Checkpointer``: the signer (one per store, elected like the relay): every
  ``CLR_TLOG_EVERY_EVENTS`` events or ``CLR_TLOG_EVERY_SECONDS`` seconds it adds the new
  chain hashes to the tree and signs a checkpoint of the tree at the head, stores it and
  publishes it on ``<service>.checkpoints``. It refuses to sign a store with a hole in its
  positions, a head that does not match its last event, or a tree that no longer matches
  a checkpoint it signed before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer
from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.kafka.producer import new_producer
from clr_events.migrations import events_migrations, migrate
from clr_events.outage import Outage, backoff
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings
from clr_events.store.hashing import GENESIS_HASH
from clr_events.store.postgres import PostgresEventStore
from clr_events.transparency.merkle import MerkleTree
from clr_events.transparency.note import (
    Checkpoint,
    SignerKey,
    b64,
    load_or_create_key,
    sign_checkpoint,
)

log = logging.getLogger(__name__)

_PAGE = 10_000
PUBLISH_RETRY_FIRST = 0.5
"""Seconds before publishing is tried again after a failure (doubling, with jitter)."""
PUBLISH_RETRY_MAX = 30.0


class TransparencySettings(BaseSettings):
    """``CLR_TLOG_*``: how often checkpoints are signed, where the signing key lives.

    The key is generated on first start into ``<key_dir>/<CLR_INSTANCE or default>/
    <service>.key`` (mode 600, never committed); keep that directory on persistent
    storage. The origin (the checkpoint's first line and the key's name) is
    ``<origin_prefix>/<service>``, with the installation's name between them when set.
    """

    model_config = SettingsConfigDict(env_prefix="CLR_TLOG_")

    every_events: int = 1000
    every_seconds: float = 10.0
    key_dir: str = ".local/transparency"
    origin_prefix: str = "cluster-label-registry"

    def origin(self, service: str, instance: str = "") -> str:
        """The log's origin line and key name."""
        return "/".join(p for p in (self.origin_prefix, instance, service) if p)

    def key_path(self, service: str, instance: str = "") -> Path:
        """Where the service's signing key is kept."""
        return Path(self.key_dir) / (instance or "default") / f"{service}.key"


class LogTamperedError(Exception):
    """The store no longer verifies: its chain is broken or it contradicts a checkpoint."""


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored."""

    tree_size: int
    root_hash: bytes
    note: str
    signed_at: datetime

    def document(self) -> dict[str, Any]:
        """The JSON form served and published."""
        return {
            "tree_size": self.tree_size,
            "root_hash": b64(self.root_hash),
            "signed_at": self.signed_at.isoformat(),
            "note": self.note,
        }


class TreeCache:
    """The store's Merkle tree in this process, extended from the store as asked."""

    def __init__(self, pool: Pool, schema: str) -> None:
        self._pool = pool
        self._sql = (
            f"SELECT position, hash FROM {schema}.event_store"
            " WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
        )
        self.tree = MerkleTree()
        self.last_hash = GENESIS_HASH
        """The chain hash of the tree's last leaf."""
        self._lock = asyncio.Lock()

    async def extend_to(self, size: int) -> MerkleTree:
        """The tree holding at least ``size`` leaves (read from the store if needed).

        Raises:
            LookupError: the store holds fewer than ``size`` contiguous events.
        """
        async with self._lock:
            while self.tree.size < size:
                have = self.tree.size
                rows = await self._pool.fetch(self._sql, have, size, min(_PAGE, size - have))
                if not rows or rows[-1][0] != have + len(rows):
                    raise LookupError(f"positions after {have} are not contiguous up to {size}")
                self.tree.extend(row[1] for row in rows)
                self.last_hash = bytes(rows[-1][1])
            return self.tree


class TransparencyLog:
    """The checkpoints and keys of one store, and the tree to prove against."""

    def __init__(self, pool: Pool, store: PostgresEventStore, schema: str, origin: str) -> None:
        self.pool = pool
        self.store = store
        self.schema = schema
        self.origin = origin
        self.cache = TreeCache(pool, schema)

    async def migrate(self) -> None:
        """Apply the log's pending migrations (``clr_events/migrations/transparency``)."""
        await migrate(self.pool, self.schema, "transparency", events_migrations("transparency"))

    async def register_key(self, vkey: str) -> None:
        """Record a verifier key the log signs with (kept for ever: old checkpoints)."""
        await self.pool.execute(
            f"INSERT INTO {self.schema}.tlog_keys VALUES ($1, now()) ON CONFLICT DO NOTHING",
            vkey,
        )

    async def keys(self) -> list[str]:
        """Every verifier key the log has signed with, oldest first."""
        rows = await self.pool.fetch(
            f"SELECT vkey FROM {self.schema}.tlog_keys ORDER BY first_used, vkey"
        )
        return [row[0] for row in rows]

    async def latest(self) -> StoredCheckpoint | None:
        """The checkpoint of the largest tree, if any."""
        found = await self.checkpoints(limit=1, newest_first=True)
        return found[0] if found else None

    async def checkpoints(
        self,
        *,
        after: int = 0,
        upto: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[StoredCheckpoint]:
        """Checkpoints by tree size: above ``after``, up to ``upto``."""
        order = "DESC" if newest_first else "ASC"
        rows = await self.pool.fetch(
            f"SELECT tree_size, root_hash, note, signed_at FROM {self.schema}.tlog_checkpoints"
            f" WHERE tree_size > $1 AND ($2::bigint IS NULL OR tree_size <= $2)"
            f" ORDER BY tree_size {order} LIMIT $3",
            after,
            upto,
            limit,
        )
        return [StoredCheckpoint(*row) for row in rows]

    async def tree(self, size: int) -> MerkleTree:
        """The tree of at least ``size`` leaves.

        Raises:
            LookupError: the store holds fewer events.
        """
        return await self.cache.extend_to(size)


class Publisher(Protocol):
    """Where checkpoints are published (the ``<service>.checkpoints`` topic)."""

    async def __call__(self, checkpoints: list[StoredCheckpoint]) -> None:
        """Publish in order; raise if any is not acknowledged."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class Checkpointer:
    """Signs, stores and publishes checkpoints of one store (run by one process at a time).

    Kept across restarts of its task: what it verified stays verified.
    """

    def __init__(
        self,
        log_: TransparencyLog,
        key: SignerKey,
        *,
        every_events: int,
        every_seconds: float,
        publish: Publisher | None = None,
        on_publish_failure: Callable[[str | None], None] | None = None,
        publish_timeout: float = 10.0,
        poll_seconds: float = 0.2,
    ) -> None:
        self.log = log_
        self.key = key
        self.every_events = max(1, every_events)
        self.every_seconds = every_seconds
        self._publish = publish
        self._on_publish_failure = on_publish_failure
        self._publish_timeout = publish_timeout
        self.poll_seconds = poll_seconds
        """How often the head is read: a signature is due every ``every_events`` events
        (checked this often) or every ``every_seconds``. Polled, not woken by each commit's
        notification: one small query per poll costs the writers nothing measurable."""
        self._publish_outage = Outage(f"checkpoints of {log_.schema}: publishing", log)
        self._publish_delay = PUBLISH_RETRY_FIRST
        self._publish_not_before = 0.0
        self._maybe_unpublished = True
        """False once the table was seen without an unpublished checkpoint, until this
        signs another (or a publish fails): a store at rest is not asked every poll."""
        self.verified = 0  # positions 1..verified in the tree, contiguous
        self.signed = 0  # the largest tree size signed
        self._signed_at = 0.0
        self._resumed = False

    async def run(self, stop: asyncio.Event) -> None:
        """Sign and publish until ``stop`` is set."""
        if not self._resumed:
            await self.resume()
        while not stop.is_set():
            await self.step()
            await self.publish_pending()
            # a signature due by time is signed by the step above unless nothing is new:
            # then the next is due no sooner than the next poll (a store at rest is read
            # every poll_seconds, not at once again)
            remaining = self.every_seconds - (time.monotonic() - self._signed_at)
            wait = min(self.poll_seconds, remaining) if remaining > 0 else self.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.01, wait))

    async def resume(self) -> None:
        """Re-hash the store up to the last checkpoint and check the tree still matches it.

        Raises:
            LogTamperedError: the store's chain is broken, or its tree differs from the
                last checkpoint signed.
        """
        await self.log.register_key(self.key.verifier.text())
        latest = await self.log.latest()
        if latest is not None:
            await self._verify_to(latest.tree_size, None)
            root = (await self.log.tree(latest.tree_size)).root(latest.tree_size)
            if root != latest.root_hash:
                raise LogTamperedError(
                    f"the first {latest.tree_size} events of {self.log.schema} no longer"
                    f" match the checkpoint signed at {latest.signed_at.isoformat()}"
                )
            self.signed = latest.tree_size
        self._signed_at = time.monotonic()
        self._resumed = True

    async def step(self, *, force: bool = False) -> StoredCheckpoint | None:
        """Sign a checkpoint of the head if one is due (or ``force``); None otherwise.

        Raises:
            LogTamperedError: the new events' chain does not verify.
        """
        head = await self.log.pool.fetchrow(
            f"SELECT position, hash FROM {self.log.schema}.event_store_head"
        )
        assert head is not None
        size, head_hash = int(head[0]), bytes(head[1])
        if size <= self.signed:
            return None
        due = size - self.signed >= self.every_events
        if not (due or force or time.monotonic() - self._signed_at >= self.every_seconds):
            return None
        await self._verify_to(size, head_hash)
        root = (await self.log.tree(size)).root(size)
        note = sign_checkpoint(Checkpoint(self.log.origin, size, root), self.key).render()
        signed_at = datetime.now(UTC)
        await self.log.pool.execute(
            f"INSERT INTO {self.log.schema}.tlog_checkpoints"
            " (tree_size, root_hash, note, signed_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tree_size) DO NOTHING",
            size,
            root,
            note,
            signed_at,
        )
        self.signed, self._signed_at = size, time.monotonic()
        self._maybe_unpublished = True
        return StoredCheckpoint(size, root, note, signed_at)

    async def _verify_to(self, size: int, head_hash: bytes | None) -> None:
        """Add positions ``verified + 1 .. size`` to the tree: contiguous, and the last one
        holding the head's hash (nothing cut off under the head).

        The signer signs the stored chain hashes; re-hashing every event's content is the
        verifiers' work (``store.verify``, ``/verification``, ``clr-audit verify``): an event
        altered before its checkpoint no longer matches its signed hash, and is named.
        """
        if size <= self.verified:
            return
        try:
            await self.log.tree(size)
        except LookupError as error:
            raise LogTamperedError(f"{self.log.schema}: {error}; nothing signed") from error
        cache = self.log.cache
        if cache.tree.size == size and head_hash is not None and cache.last_hash != head_hash:
            raise LogTamperedError(
                f"{self.log.schema}: the head hash does not match the event at {size};"
                " nothing signed"
            )
        self.verified = size

    async def close(self) -> None:
        """Release the publisher's connection."""
        if self._publish is not None:
            await self._publish.close()

    async def publish_pending(self) -> int:
        """Publish the checkpoints not yet on the topic, in order; how many went out.

        A failure (Kafka away) is logged once per outage and reported, never raised:
        signing goes on, and the next round publishes what is left.
        """
        if (
            self._publish is None
            or not self._maybe_unpublished
            or time.monotonic() < self._publish_not_before
        ):
            return 0
        rows = await self.log.pool.fetch(
            f"SELECT tree_size, root_hash, note, signed_at FROM {self.log.schema}.tlog_checkpoints"
            " WHERE NOT published ORDER BY tree_size LIMIT 100"
        )
        if not rows:
            self._maybe_unpublished = False
            return 0
        pending = [StoredCheckpoint(*row) for row in rows]
        try:
            await asyncio.wait_for(self._publish(pending), self._publish_timeout)
        except Exception as error:  # Kafka away: keep signing, publish later
            pause, self._publish_delay = backoff(self._publish_delay, maximum=PUBLISH_RETRY_MAX)
            self._publish_not_before = time.monotonic() + pause
            self._publish_outage.failed(error, retry_in=pause)
            if self._on_publish_failure is not None:
                self._on_publish_failure(repr(error))
            return 0
        self._publish_outage.ended()
        self._publish_delay = PUBLISH_RETRY_FIRST
        if self._on_publish_failure is not None:
            self._on_publish_failure(None)
        await self.log.pool.execute(
            f"UPDATE {self.log.schema}.tlog_checkpoints SET published = true"
            " WHERE tree_size = ANY($1::bigint[])",
            [c.tree_size for c in pending],
        )
        return len(pending)


class CheckpointPublisher:
    """Publishes checkpoints on ``<service>.checkpoints`` with a producer of its own, made
    anew after a failure (a producer that never started is never reused)."""

    def __init__(self, settings: ConnectionSettings, service: str, origin: str) -> None:
        self._settings = settings
        self._topic = settings.topic(f"{service}.checkpoints")
        self._origin = origin
        self._producer: AIOKafkaProducer | None = None

    async def __call__(self, checkpoints: list[StoredCheckpoint]) -> None:
        """Send each checkpoint and wait for every acknowledgement."""
        try:
            if self._producer is None:
                self._producer = new_producer(self._settings)
                await self._producer.start()
            sent = []
            for checkpoint in checkpoints:
                key, value = checkpoint_record(self._origin, checkpoint)
                sent.append(await self._producer.send(self._topic, value, key=key))
            await asyncio.gather(*sent)
        except BaseException:
            producer, self._producer = self._producer, None
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.stop()
            raise

    async def close(self) -> None:
        """Stop the producer."""
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None


def checkpoint_record(origin: str, checkpoint: StoredCheckpoint) -> tuple[bytes, bytes]:
    """The Kafka key and value of a published checkpoint."""
    return origin.encode(), orjson.dumps({"origin": origin, **checkpoint.document()})


def signer_for(settings: TransparencySettings, service: str, instance: str) -> SignerKey:
    """The service's signing key (created on first use)."""
    return load_or_create_key(
        settings.key_path(service, instance), settings.origin(service, instance)
    )
