"""docker-compose.yml, deploy/k8s and deploy/docker run the system as ``make run`` does.

No container engine runs here, so these are not started by the test suite: they are held
to the code instead. Every service the local supervisor starts is in both, with the same
command, port and probes; every setting they give is one the code reads; the Kubernetes
objects pass the API's own schemas (strict: an unknown field fails).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from clr_dev.supervisor import SERVICES
from clr_events.service.auth import AuthSettings
from clr_events.transparency.log import TransparencySettings
from label_decisions.service import DecisionSettings
from projections.settings import ProjectionSettings
from projections.webhooks.policy import address_allowed

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
INFRASTRUCTURE = {"postgres", "kafka", "topics"}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


@functools.cache
def kubernetes_objects() -> list[dict[str, Any]]:
    """Every object the kustomization lists, in its order (read once)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        document
        for resource in kustomization["resources"]
        for document in yaml.safe_load_all((K8S / resource).read_text())
    ]


def named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        o for o in kubernetes_objects() if (o["kind"], o["metadata"]["name"]) == (kind, name)
    ]
    return found


def read_settings() -> set[str]:
    """Every CLR_ variable the code reads: settings classes and direct environment reads."""
    names: set[str] = set()
    classes: list[type[BaseSettings]] = [
        ProjectionSettings,
        AuthSettings,
        DecisionSettings,
        TransparencySettings,
    ]
    for settings in classes:
        prefix = settings.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in settings.model_fields}
    for source in [*ROOT.glob("events/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        names |= set(re.findall(r"environ(?:\.get\(|\[)\"(CLR_[A-Z_]+)\"", source.read_text()))
    return names


def test_compose_runs_every_service_as_make_run_does() -> None:
    services = compose()["services"]
    assert set(services) == set(SERVICES) | INFRASTRUCTURE
    for name, port in SERVICES.items():
        service = services[name]
        assert service["command"] == ["python", "-m", name]
        assert service["environment"]["CLR_PORT"] == str(port)
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert service["healthcheck"]["test"][-3:] == ["-m", "clr_events.service.probe", "readyz"]
        assert service["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert services["topics"]["command"][-1] == "deploy/kafka/topics.toml"


@pytest.mark.parametrize("name", list(SERVICES))
def test_kubernetes_runs_every_service_with_its_probes(name: str) -> None:
    port, object_name = SERVICES[name], name.replace("_", "-")  # DNS names: no underscore
    deployment = named("Deployment", object_name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", name]
    assert {"name": "CLR_PORT", "value": str(port)} in container["env"]
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert [source for ref in container["envFrom"] for source in ref.values()] == [
        {"name": "clr-config"},
        {"name": "clr-secrets"},
    ]
    service = named("Service", object_name)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]


def test_kubernetes_objects_pass_the_api_schemas() -> None:
    objects = kubernetes_objects()
    assert {o["kind"] for o in objects} == {
        "Namespace",
        "ConfigMap",
        "Job",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for document in objects:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", list(SERVICES))
def test_kubernetes_scales_every_service_across_nodes_within_its_budget(name: str) -> None:
    object_name = name.replace("_", "-")
    deployment = named("Deployment", object_name)
    pods = deployment["spec"]["selector"]["matchLabels"]
    assert "replicas" not in deployment["spec"]  # the autoscaler's
    autoscaler = named("HorizontalPodAutoscaler", object_name)["spec"]
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": object_name,
    }
    assert 2 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]
    budget = named("PodDisruptionBudget", object_name)["spec"]
    assert budget["selector"]["matchLabels"] == pods and budget["maxUnavailable"] == 1
    pod = deployment["spec"]["template"]["spec"]
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert {t["podAffinityTerm"]["topologyKey"] for t in terms} >= {"kubernetes.io/hostname"}
    assert all(t["podAffinityTerm"]["labelSelector"]["matchLabels"] == pods for t in terms)
    (container,) = pod["containers"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_network_policies_deny_by_default_and_open_each_services_port() -> None:
    deny = named("NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    egress = named("NetworkPolicy", "dependencies")["spec"]["egress"]
    assert {p["port"] for rule in egress for p in rule["ports"]} == {53, 5432, 9093}
    kafka = named("ConfigMap", "clr-config")["data"]["CLR_KAFKA_BOOTSTRAP_SERVERS"]
    assert kafka.endswith(":9093")
    for name, port in SERVICES.items():
        object_name = name.replace("_", "-")
        policy = named("NetworkPolicy", f"{object_name}-http")["spec"]
        pods = named("Deployment", object_name)["spec"]["selector"]["matchLabels"]
        assert policy["podSelector"]["matchLabels"] == pods
        assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": port}]}]


def test_projections_may_reach_training_certification_for_names() -> None:
    url = next(
        variable["value"]
        for variable in named("Deployment", "projections")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
        if variable["name"] == "CLR_TRAINING_CERTIFICATION_URL"
    )
    host, port = url.removeprefix("http://").split(":")
    target = named("Service", host)["spec"]
    policy = named("NetworkPolicy", "projections-names")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "projections"}
    (rule,) = policy["egress"]
    assert [peer["podSelector"]["matchLabels"] for peer in rule["to"]] == [target["selector"]]
    assert rule["ports"] == [{"protocol": "TCP", "port": int(port)}]


def test_projections_may_deliver_webhooks_to_public_addresses_only() -> None:
    policy = named("NetworkPolicy", "projections-webhooks")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "projections"}
    (rule,) = policy["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}]
    blocks = [peer["ipBlock"] for peer in rule["to"]]
    assert {b["cidr"] for b in blocks} == {"0.0.0.0/0", "::/0"}
    excepted = [ipaddress.ip_network(n) for b in blocks for n in b["except"]]
    # every address the dispatcher refuses as private is outside the rule too
    for address in (
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "fd00::1",
        "fe80::1",
        "::1",
    ):
        ip = ipaddress.ip_address(address)
        assert not address_allowed(address, allow_private=False)
        assert any(ip in n for n in excepted if n.version == ip.version), address
    assert address_allowed("93.184.216.34", allow_private=False)
    assert not any(ipaddress.ip_address("93.184.216.34") in n for n in excepted if n.version == 4)


def test_every_setting_the_deployments_give_is_read_by_the_code() -> None:
    given = set(named("ConfigMap", "clr-config")["data"])
    for service in compose()["services"].values():
        given |= {key for key in service.get("environment", {}) if key.startswith("CLR_")}
    for document in kubernetes_objects():
        for container in (
            document.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            given |= {variable["name"] for variable in container.get("env", [])}
    given |= {"CLR_DATABASE_URL", "CLR_JWT_SECRET"}  # the Secret deploy/k8s/README.md asks for
    assert given - read_settings() == set()


SIGNING = [name for name in SERVICES if name != "projections"]
"""The services with a transparency log (``Runtime(..., transparency=True)``)."""


@pytest.mark.parametrize("name", SIGNING)
def test_every_instance_of_a_service_signs_with_the_one_key_it_is_given(name: str) -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    (key_dir,) = re.findall(r"ENV CLR_TLOG_KEY_DIR=(\S+)", dockerfile)
    path = TransparencySettings(key_dir=key_dir).key_path(name)
    # Kubernetes: from one secret, read-only, in every pod (a key per pod would change
    # with every restart and differ between instances)
    spec = named("Deployment", name.replace("_", "-"))["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (mount,) = container["volumeMounts"]
    (volume,) = spec["volumes"]
    assert mount["name"] == volume["name"] and mount["readOnly"]
    assert volume["secret"]["secretName"] == "clr-tlog-keys"
    (item,) = volume["secret"]["items"]
    assert (Path(mount["mountPath"]) / item["path"], item["key"]) == (path, path.name)
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"]
    # compose: made on first start into a volume that outlives the container
    assert compose()["services"][name]["volumes"] == [f"tlogkeys:{key_dir}"]
    assert "tlogkeys" in compose()["volumes"]


def test_the_image_installs_from_the_lock_with_the_makefiles_uv() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    (uv_version,) = re.findall(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert f"uv=={uv_version}" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    for copied in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path
            assert path not in ignored, path
