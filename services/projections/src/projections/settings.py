"""Settings of the projections service (environment, ``CLR_`` prefix)."""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT
from pydantic import Field

from clr_events.service.runtime import ServiceSettings
from clr_events.settings import RenewalWindows


class ProjectionSettings(ServiceSettings):
    """The service settings (``CLR_BACKGROUND``: run the agents here) plus the read side's."""

    consumer_group: str = "projections"
    batch_max: int = 500
    batch_within_seconds: float = Field(default=0.02, gt=0)
    """How long an agent gathers a batch after its first event (``live.batches``)."""
    renewal_windows: RenewalWindows = Field(default_factory=RenewalWindows)
    """R10's fallback for decisions recorded before they carried their renewal deadline
    (``CLR_RENEWAL_WINDOW_MONTHS_BRONZE|SILVER|GOLD``: ``clr_events.settings``)."""
    expiring_soon_months: int = 6
    current_publish_interval_seconds: float = 0.5
    lag_cache_seconds: float = 1.0  # lag is read from the broker at most this often
    query_timeout_seconds: float = 5.0
    """``statement_timeout`` of the public reads' pool (never the agents' or a rebuild's)."""
    query_pool_max_size: int = 10
    cache_max_age_seconds: int = 30
    """``Cache-Control: public, max-age`` of public GETs (pages, API, exports)."""
    session_timeout_seconds: float = 10.0
    """The faust consumer's Kafka session: how soon a killed instance's partitions move."""
    training_certification_url: str = ""
    """Where the expert list asks for people's names (``GET /names``); empty: names are
    not shown. Names are never kept in a read model (docs/erasure.md)."""
    group_instance_id: str = ""
    """Kafka static group membership (``CLR_GROUP_INSTANCE_ID``), unique per instance;
    empty: dynamic membership."""

    def faust_credentials(self) -> CredentialsT | None:
        """The Kafka principal of ``kafka_options`` in faust's terms (None: PLAINTEXT)."""
        options = self.kafka_options()
        if "sasl_mechanism" in options:
            return faust.SASLCredentials(
                username=options["sasl_plain_username"],
                password=options["sasl_plain_password"],
                mechanism=options["sasl_mechanism"],
                ssl_context=options.get("ssl_context"),
            )
        if "ssl_context" in options:
            return faust.SSLCredentials(options["ssl_context"])
        return None
