"""Topics get as many replicas as brokers, up to three, and min.insync.replicas one less."""

from __future__ import annotations

from clr_events.kafka.topics import TopicSpec


def test_replicas_follow_the_cluster_up_to_three() -> None:
    spec = TopicSpec("t", 6, config={"retention.ms": "-1"})
    assert [spec.replicas(n) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]
    assert spec.configs(1) == spec.configs(2) == {"retention.ms": "-1"}
    assert spec.configs(3) == {"min.insync.replicas": "2", "retention.ms": "-1"}


def test_a_declared_replication_factor_or_min_insync_replicas_stands() -> None:
    spec = TopicSpec("t", 1, replication_factor=5, config={"min.insync.replicas": "3"})
    assert spec.replicas(3) == 5
    assert spec.configs(5) == {"min.insync.replicas": "3"}
