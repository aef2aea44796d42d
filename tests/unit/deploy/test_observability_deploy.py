"""deploy/observability: Prometheus' configuration and alert rules pass promtool (the rules'
own unit tests included), and the dashboard and alerts name only metrics the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "observability"
PROCESS_METRICS = {"up", "process_cpu_seconds_total", "process_resident_memory_bytes"}
PROCESS_METRICS |= {"process_open_fds"}
"""Prometheus' own ``up`` and the process collector's (prometheus-client)."""


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
