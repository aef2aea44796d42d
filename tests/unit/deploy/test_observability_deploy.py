"""deploy/observability: Prometheus' configuration and alert rules pass promtool (the rules'
own unit tests included), and the dashboard and alerts name only metrics the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.test_manifests import kubernetes_objects

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "observability"
PROCESS_METRICS = {"up", "process_cpu_seconds_total", "process_resident_memory_bytes"}
PROCESS_METRICS |= {"process_open_fds"}
"""Prometheus' own ``up`` and the process collector's (prometheus-client)."""
NAMESPACE = "cluster-label-registry"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is not installed: make prometheus (Debian's prometheus package)"
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
    ids=["config", "rules", "rule-tests"],
)
def test_promtool_passes(promtool: str, args: list[str]) -> None:
    done = subprocess.run(
        [promtool, *args], cwd=DEPLOY, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def exported_names() -> set[str]:
    """Every metric name the code defines (prometheus-client objects and scrape-time
    families), with the suffixes the exposition adds."""
    names: set[str] = set()
    sources = [*ROOT.glob("events/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    for path in sources:
        text = path.read_text()
        for kind, name in re.findall(
            r'(Counter|Histogram|counter|gauge)\(\s*"(clr_[a-z_]+)"', text, re.MULTILINE
        ):
            if kind in ("Counter", "counter"):
                names.add(f"{name}_total")
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            else:
                names.add(name)
    return names


def referenced_names() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]
    exprs.append((DEPLOY / "alerts.yml").read_text())
    return {
        name
        for expr in exprs
        for name in re.findall(r"\b((?:clr|process)_[a-z_]+|up)\b(?=\s*[{\[)]|\s*[=><!])", expr)
    }


def test_dashboard_and_alerts_name_only_metrics_the_code_exports() -> None:
    referenced = referenced_names()
    assert {"clr_consumer_lag_messages", "clr_relay_lag_seconds", "clr_ready"} <= referenced
    unknown = referenced - exported_names() - PROCESS_METRICS
    assert not unknown, f"named in deploy/observability but never exported: {sorted(unknown)}"


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(p["targets"] and p["datasource"]["type"] == "prometheus" for p in panels)


def relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus' ``keep`` and ``replace`` relabelling (the only actions the file uses):
    the target's labels, or None when it is dropped."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                replacement = re.sub(r"\$\{(\d+)\}", r"\\\1", rule.get("replacement", "${1}"))
                labels[rule["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"an action the test does not apply: {action}")
    return labels


def test_kubernetes_pods_are_scraped_on_their_port_with_the_service_label_of_the_alerts() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus-k8s.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}]
    services = {d["metadata"]["name"]: d for d in kubernetes_objects() if d["kind"] == "Deployment"}
    assert len(services) == 5
    for name, deployment in services.items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        port = container["ports"][0]["containerPort"]
        annotations = template["metadata"]["annotations"]
        pod = {  # what the pod role discovers: the pod's IP with its first declared port
            "__address__": f"10.1.2.3:{port}",
            "__metrics_path__": "/metrics",
            "__meta_kubernetes_pod_name": f"{name}-7d9f-abcde",
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": name,
        } | {
            "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-z0-9]", "_", k): v
            for k, v in annotations.items()
        }
        target = relabel(job["relabel_configs"], pod)
        assert target is not None, name
        assert target["__address__"] == f"10.1.2.3:{port}"
        assert target["__metrics_path__"] == "/metrics"
        assert target["service"] == name.replace("-", "_")  # as the alerts name them
        assert target["pod"] == f"{name}-7d9f-abcde"
    # a pod without the annotations (Kafka, a job) is not scraped
    assert relabel(job["relabel_configs"], {"__address__": "10.1.2.4:9092"}) is None
