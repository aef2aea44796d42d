"""Create the topics declared in a TOML file; safe to run again.

    python -m clr_events.kafka.topics deploy/kafka/topics.toml

Missing topics are created with their partitions and configs; existing ones keep their
data, get more partitions if the declaration asks for more, and have their declared
configs set. Fewer partitions than exist cannot be declared (Kafka cannot shrink a topic).

Replication: a topic without a declared ``replication_factor`` gets three replicas on a
cluster of three brokers or more (one on a single broker, two on two), and with more than
two replicas ``min.insync.replicas`` is one less: a write the producers send with
``acks=all`` is taken once two replicas have it, so a broker can go away with no outage
and nothing acknowledged is lost.
The ``[[principal]]`` tables of the same file become ACLs (clr_events.kafka.acls); run this
as a super user (the local stack's ``admin``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from clr_events.kafka.acls import ensure_acls, load_acls
from clr_events.settings import ConnectionSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """One declared topic."""

    name: str
    partitions: int = 1
    replication_factor: int = 0
    """0: as many replicas as brokers, up to three (``replicas``)."""
    config: dict[str, str] = field(default_factory=dict)

    def replicas(self, brokers: int) -> int:
        """The replication factor on a cluster of ``brokers``."""
        return self.replication_factor or min(3, max(1, brokers))

    def configs(self, brokers: int) -> dict[str, str]:
        """The declared configs, with ``min.insync.replicas`` one less than the replicas
        when there are more than two (unless declared)."""
        replicas = self.replicas(brokers)
        if replicas <= 2:
            return self.config
        return {"min.insync.replicas": str(replicas - 1), **self.config}


def load_specs(path: Path, instance: str = "") -> list[TopicSpec]:
    """Read ``[[topic]]`` tables from a TOML file (names prefixed with ``instance.``)."""
    document = tomllib.loads(path.read_text())
    prefix = f"{instance}." if instance else ""
    return [
        TopicSpec(
            name=prefix + entry["name"],
            partitions=int(entry.get("partitions", 1)),
            replication_factor=int(entry.get("replication_factor", 0)),
            config={key: str(value) for key, value in entry.get("config", {}).items()},
        )
        for entry in document["topic"]
    ]


async def ensure_topics(settings: ConnectionSettings, specs: list[TopicSpec]) -> dict[str, str]:
    """Bring the broker in line with ``specs``; returns what was done per topic."""
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        existing = await admin.describe_topics([spec.name for spec in specs])
        partitions = {
            topic["topic"]: len(topic["partitions"])
            for topic in existing
            if topic["error_code"] == 0
        }
        actions: dict[str, str] = {}
        new = [spec for spec in specs if spec.name not in partitions]
        if new:
            await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        spec.replicas(brokers),
                        topic_configs=spec.configs(brokers),
                    )
                    for spec in new
                ]
            )
            actions.update({spec.name: f"created ({spec.partitions} partitions)" for spec in new})
        for spec in specs:
            if spec.name not in partitions:
                continue
            have = partitions[spec.name]
            if spec.partitions < have:
                raise ValueError(f"{spec.name} has {have} partitions; a topic cannot shrink")
            if spec.partitions > have:
                await admin.create_partitions({spec.name: NewPartitions(spec.partitions)})
                actions[spec.name] = f"partitions {have} -> {spec.partitions}"
            else:
                actions[spec.name] = "exists"
            if configs := spec.configs(brokers):
                responses = await admin.alter_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=configs)]
                )
                for response in responses:
                    for error_code, error_message, *_ in response.resources:
                        if error_code:
                            raise RuntimeError(f"{spec.name}: configs refused: {error_message}")
        await _wait_for_leaders(admin, [spec.name for spec in specs])
        return actions
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30
) -> None:
    """Return once every partition has a leader, so producers do not start against none."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        topics = await admin.describe_topics(names)
        if all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(partition["leader"] >= 0 for partition in topic["partitions"])
            for topic in topics
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics without partition leaders after {timeout} s: {names}")
        await asyncio.sleep(0.1)


def main() -> None:
    """Command line: create or update the declared topics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="TOML file of [[topic]] tables")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = ConnectionSettings()
    actions = asyncio.run(ensure_topics(settings, load_specs(args.file, settings.instance)))
    for name, action in sorted(actions.items()):
        log.info("%-45s %s", name, action)
    bindings = load_acls(args.file, settings.instance)
    if asyncio.run(ensure_acls(settings, bindings)):
        log.info("%d ACLs in place", len(bindings))
    else:
        log.warning("the broker has no authorizer: ACLs not created (any client may do anything)")


if __name__ == "__main__":
    main()
