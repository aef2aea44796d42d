"""The faust consumer: a killed instance gives its partitions up in seconds, not a
minute, and a fetch brings a steady stream several events at a time."""

from __future__ import annotations

from projections.live import LiveProjections
from projections.settings import ProjectionSettings


def test_the_faust_consumer_session_is_short_and_static_membership_is_configurable() -> None:
    settings = ProjectionSettings(group_instance_id="projections-1")
    live = LiveProjections(None, None, settings, [])  # type: ignore[arg-type]  # not started
    conf = live.app.conf
    # faust's default is 60 s: the next instance's rebalance waited that long for the dead one
    assert conf.broker_session_timeout == settings.session_timeout_seconds == 10.0
    assert conf.broker_heartbeat_interval * 3 < conf.broker_session_timeout
    assert conf.consumer_group_instance_id == "projections-1"
    dynamic = LiveProjections(None, None, ProjectionSettings(), [])  # type: ignore[arg-type]
    assert dynamic.app.conf.consumer_group_instance_id is None


async def test_the_faust_consumer_fetches_with_the_group_consumers_options() -> None:
    # faust fixes fetch_max_wait_ms at 1,500 ms and fetch_min_bytes at 1: each new event
    # was a fetch, a batch and a transaction of its own
    settings = ProjectionSettings(consumer_fetch_max_wait_ms=70, consumer_fetch_min_bytes=1234)
    live = LiveProjections(None, None, settings, [])  # type: ignore[arg-type]  # not started
    thread = live.app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(live.app.transport)
    try:
        # what the consumer's start() builds its fetcher from
        assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (70, 1234)
        assert settings.consumer_fetch_options() == {
            "fetch_max_wait_ms": 70,
            "fetch_min_bytes": 1234,
        }
    finally:
        await consumer.stop()
