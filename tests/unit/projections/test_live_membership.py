"""A killed projections instance gives its partitions up in seconds, not a minute."""

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
