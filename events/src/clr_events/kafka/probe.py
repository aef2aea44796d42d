"""Is the Kafka cluster reachable? A cheap, cached answer for ``/readyz``."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka.client import AIOKafkaClient

from clr_events.settings import ConnectionSettings


class KafkaProbe:
    """Asks the cluster for its metadata (one small request, ``timeout`` seconds at most)
    and remembers the answer for ``cache_seconds``, so a readiness probe stays cheap."""

    def __init__(
        self, settings: ConnectionSettings, *, timeout: float = 1.0, cache_seconds: float = 1.0
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._client: AIOKafkaClient | None = None
        self._lock = asyncio.Lock()
        self._checked_at = -float("inf")
        self._answer: str | None = None

    async def check(self) -> str | None:
        """None when a broker answered a metadata request, else why not."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._cache_seconds:
                self._answer = await self._ask()
                self._checked_at = time.monotonic()
            return self._answer

    async def _ask(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                if self._client is None:
                    client = AIOKafkaClient(
                        **self._settings.kafka_options(), client_id="clr-readiness"
                    )
                    try:
                        await client.bootstrap()
                    except BaseException:
                        await client.close()
                        raise
                    self._client = client
                else:
                    await self._client.fetch_all_metadata()
            return None
        except TimeoutError:
            return f"no answer from the Kafka cluster in {self._timeout:.1f} s"
        except Exception as error:  # refused, unreachable, authentication failed
            return f"Kafka cluster unreachable: {error!r}"

    async def close(self) -> None:
        """Close the probe's connections."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
