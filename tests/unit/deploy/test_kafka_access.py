"""Who may use which Kafka topic: the declared ACLs, the client options, and the principals
every deployment (local stack, docker-compose, Kubernetes) gives the services.

The broker enforcing these ACLs is tested in tests/integration/events/test_kafka_acls.py.
"""

from __future__ import annotations

import re
import ssl
import tomllib
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from clr_dev.installation import TOPICS, principal_env
from clr_dev.supervisor import SERVICES
from clr_events.kafka.acls import AclBinding, Operation, Pattern, Resource, load_acls
from clr_events.kafka.topics import load_specs
from clr_events.settings import ConnectionSettings
from projections.settings import ProjectionSettings

ROOT = Path(__file__).resolve().parents[3]
RESTRICTED = "assessments.decisions"
PUBLIC = {
    "collaboration.events",
    "training_certification.events",
    "assessments.events",
    "label_decisions.events",
    "label_decisions.current",
    "collaboration.checkpoints",
    "training_certification.checkpoints",
    "assessments.checkpoints",
    "label_decisions.checkpoints",
}


def granted(principal: str, operation: Operation, instance: str = "") -> set[str]:
    return {
        b.name
        for b in load_acls(TOPICS, instance)
        if b.principal == principal and b.operation == operation and b.resource == Resource.TOPIC
    }


def declared_principals() -> set[str]:
    return {b.principal for b in load_acls(TOPICS)}


def test_every_service_and_the_subscriber_are_declared_principals() -> None:
    assert declared_principals() == set(SERVICES) | {"subscriber"}


def test_every_granted_topic_is_a_declared_topic() -> None:
    topics = {spec.name for spec in load_specs(TOPICS)}
    assert {b.name for b in load_acls(TOPICS) if b.resource == Resource.TOPIC} <= topics


def test_the_subscriber_reads_the_public_topics_only_and_writes_nothing() -> None:
    assert granted("subscriber", Operation.READ) == PUBLIC
    assert granted("subscriber", Operation.WRITE) == set()
    groups = [
        b for b in load_acls(TOPICS) if b.principal == "subscriber" and b.resource == Resource.GROUP
    ]
    assert groups == [
        AclBinding("subscriber", Resource.GROUP, "subscriber.", Operation.READ, Pattern.PREFIXED)
    ]


def test_label_decisions_alone_reads_the_restricted_topic_and_assessments_alone_writes_it() -> None:
    # the writer reads what it wrote too: its relay's last records, on restart
    readers = {p for p in declared_principals() if RESTRICTED in granted(p, Operation.READ)}
    writers = {p for p in declared_principals() if RESTRICTED in granted(p, Operation.WRITE)}
    assert (readers, writers) == ({"label_decisions", "assessments"}, {"assessments"})


def test_a_service_tails_the_event_topics_it_writes_and_nothing_else() -> None:
    tails = {
        e["name"]: set(e.get("tails", [])) for e in tomllib.loads(TOPICS.read_text())["principal"]
    }
    for principal, tailed in tails.items():
        assert tailed <= {t for t in granted(principal, Operation.WRITE) if not t.endswith(".dlq")}
    assert tails["assessments"] == {"assessments.events", RESTRICTED}


def test_each_topic_has_one_writer() -> None:
    writers: dict[str, list[str]] = {}
    for principal in declared_principals():
        for topic in granted(principal, Operation.WRITE):
            writers.setdefault(topic, []).append(principal)
    assert {topic: len(names) for topic, names in writers.items() if len(names) > 1} == {}


def test_a_service_s_consumer_groups_are_its_own_and_prefixed_by_the_instance() -> None:
    for binding in load_acls(TOPICS, "abc"):
        assert binding.name.startswith("abc.")
        if binding.resource == Resource.GROUP and binding.principal != "subscriber":
            assert binding.name.startswith(f"abc.{binding.principal}")


def test_plaintext_is_the_default_and_carries_no_credentials() -> None:
    bare = ConnectionSettings.model_construct(kafka_bootstrap_servers="k:9092")
    assert bare.kafka_options() == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_options_carry_the_principal_and_tls_a_context() -> None:
    settings = ConnectionSettings.model_construct(
        kafka_bootstrap_servers="k:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username="collaboration",
        kafka_password=SecretStr("secret"),
        kafka_ssl_cafile="",
    )
    options = settings.kafka_options()
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {
        "bootstrap_servers": "k:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "collaboration",
        "sasl_plain_password": "secret",
    }
    other = settings.as_principal("subscriber", "other").kafka_options()
    assert (other["sasl_plain_username"], other["sasl_plain_password"]) == ("subscriber", "other")


def test_faust_logs_in_as_the_same_principal() -> None:
    settings = ProjectionSettings.model_construct(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_username="projections",
        kafka_password=SecretStr("secret"),
        kafka_bootstrap_servers="k:9092",
    )
    credentials = settings.faust_credentials()
    assert credentials is not None
    assert (credentials.username, credentials.password) == ("projections", "secret")  # type: ignore[attr-defined]
    plain = ProjectionSettings.model_construct(
        kafka_security_protocol="PLAINTEXT", kafka_bootstrap_servers="k:9092"
    )
    assert plain.faust_credentials() is None


def test_each_service_is_started_as_its_own_principal_from_the_passwords_file(
    tmp_path: Path,
) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text("admin=a1\ncollaboration=c1\n")
    env = {"CLR_KAFKA_PASSWORDS_FILE": str(passwords)}
    assert principal_env("collaboration", env) == {
        "CLR_KAFKA_USERNAME": "collaboration",
        "CLR_KAFKA_PASSWORD": "c1",
    }
    assert principal_env("collaboration", {}) == {}  # no passwords: the environment's own
    with pytest.raises(KeyError):
        principal_env("projections", env)


def test_the_local_stack_knows_every_principal_and_admin() -> None:
    script = (ROOT / "deploy" / "local" / "stack.sh").read_text()
    (names,) = re.findall(r'^PRINCIPALS="([^"]+)"$', script, re.M)
    assert set(names.split()) == declared_principals() | {"admin"}


def test_compose_logs_each_service_in_as_itself_and_the_broker_knows_every_principal() -> None:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = document["services"]
    for name in SERVICES:
        environment = services[name]["environment"]
        assert environment["CLR_KAFKA_USERNAME"] == name
        assert environment["CLR_KAFKA_PASSWORD"].startswith(f"${{CLR_KAFKA_{name.upper()}_PASSWORD")
        assert environment["CLR_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert services["topics"]["environment"]["CLR_KAFKA_USERNAME"] == "admin"
    kafka = services["kafka"]["environment"]
    assert "PLAINTEXT:PLAINTEXT" not in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert kafka["KAFKA_SUPER_USERS"] == "User:admin"
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    logins = kafka["KAFKA_LISTENER_NAME_HOST_PLAIN_SASL_JAAS_CONFIG"]
    assert set(re.findall(r"user_(\w+)=", logins)) == declared_principals() | {"admin"}


@pytest.mark.parametrize("name", [*SERVICES, "topics"])
def test_kubernetes_gives_each_container_its_own_principal(name: str) -> None:
    file = ROOT / "deploy" / "k8s" / f"{name.replace('_', '-')}.yaml"
    (workload, *_) = yaml.safe_load_all(file.read_text())
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    principal = "admin" if name == "topics" else name
    assert env["CLR_KAFKA_USERNAME"]["value"] == principal
    assert env["CLR_KAFKA_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "clr-kafka-passwords", "key": principal}
    }
