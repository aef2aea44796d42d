"""Webhook settings (environment, ``CLR_WEBHOOK_`` prefix)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from projections.webhooks.delivery import DeliverySettings
from projections.webhooks.policy import RetryPolicy

WEEK = 7 * 24 * 3600


class WebhookSettings(BaseSettings):
    """How subscriptions are accepted and delivered.

    ``allow_private_targets`` is for development and tests only: it accepts ``http`` and
    loopback or private addresses (``http://127.0.0.1:…``). Left off (the default), an
    endpoint must be ``https`` and resolve to public addresses only, checked when it is
    registered and again on every connection.
    """

    model_config = SettingsConfigDict(env_prefix="CLR_WEBHOOK_")

    allow_private_targets: bool = False
    timeout_seconds: float = Field(15.0, gt=0, le=60)
    """An attempt with no full answer by then has failed (the specification: 15-30 s)."""
    max_in_flight: int = Field(16, ge=1, le=256)
    """Label records delivered at once per subscription (each record's events in order)."""
    batch: int = Field(200, ge=1, le=1000)
    """Feed events read per round; the cursor moves once a round is delivered."""
    idle_poll_seconds: float = Field(5.0, gt=0)
    """How often an idle loop looks at the feed without a notification."""
    cursor_interval_seconds: float = Field(0.5, ge=0)
    """While events keep coming, the cursor is written at most this often (and at once
    when the loop has caught up): a restart re-sends at most this much."""
    retry_first_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(3600.0, gt=0)
    dead_after_seconds: float = Field(3 * 24 * 3600.0, ge=0)
    dead_after_attempts: int = Field(20, ge=1)
    """Dead (no more attempts until resumed) once failing this long and this often."""
    rotation_overlap_seconds: int = Field(24 * 3600, ge=0, le=WEEK)
    """How long a rotated secret still signs, unless the rotation says otherwise."""

    def delivery(self) -> DeliverySettings:
        """What the delivery loops need."""
        return DeliverySettings(
            allow_private_targets=self.allow_private_targets,
            timeout_seconds=self.timeout_seconds,
            max_in_flight=self.max_in_flight,
            batch=self.batch,
            idle_poll_seconds=self.idle_poll_seconds,
            cursor_interval_seconds=self.cursor_interval_seconds,
            policy=RetryPolicy(
                first_seconds=self.retry_first_seconds,
                max_seconds=self.retry_max_seconds,
                dead_after_seconds=self.dead_after_seconds,
                dead_after_attempts=self.dead_after_attempts,
            ),
        )
