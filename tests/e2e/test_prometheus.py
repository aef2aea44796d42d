"""A real Prometheus (Debian's package) scrapes the running services, with the alert rules
of deploy/observability loaded, and answers every query of the Grafana dashboard."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e import scenario
from tests.e2e.conftest import PORT_BASE, Running, System

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
PROMETHEUS_PORT = PORT_BASE + 90
"""Beside the session's services (PORT_BASE + 0..4)."""
SERVICES = {"projections", "collaboration", "training_certification", "assessments"}
SERVICES |= {"label_decisions"}


@pytest.fixture(scope="module")
def prometheus(running_system: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping the session's services every second; its URL."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: make prometheus (Debian's package)"
    folder = tmp_path_factory.mktemp("prometheus")
    targets = [
        {"targets": [urlsplit(url).netloc], "labels": {"service": name}}
        for name, url in running_system.urls.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "alerts.yml")],
        "scrape_configs": [{"job_name": "clr", "static_configs": targets}],
    }
    (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
        ],
        stdout=(folder / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{PROMETHEUS_PORT}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def query(client: httpx.AsyncClient, prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def eventually(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(1.0)


async def test_prometheus_scrapes_every_service_and_answers_the_dashboard(
    system: System, prometheus: str
) -> None:
    # given a command through one service, and an organisation the others learn of
    await scenario.organisation(system, "DE")

    async with httpx.AsyncClient(timeout=10.0) as client:

        async def ready() -> bool:
            try:
                response = await client.get(f"{prometheus}/-/ready")
            except httpx.TransportError:
                return False
            return response.status_code == 200

        await eventually(ready, "Prometheus to start")

        # then every service is a target that is up, scraped without error
        async def all_up() -> bool:
            targets = (await client.get(f"{prometheus}/api/v1/targets")).json()["data"]
            health = {t["labels"]["service"]: t["health"] for t in targets["activeTargets"]}
            return health == dict.fromkeys(SERVICES, "up")

        await eventually(all_up, "every service to be scraped")

        # and what they report is there: requests by route template, readiness, the
        # process, relay and consumer lag, the store's appends
        async def reported() -> bool:
            done = await query(
                client,
                prometheus,
                'clr_http_requests_total{service="collaboration", route="/organisations",'
                ' method="POST", status="201"}',
            )
            return bool(done) and float(done[0]["value"][1]) >= 1

        await eventually(reported, "the command to be counted")
        ready_services = await query(client, prometheus, "clr_ready == 1")
        assert {r["metric"]["service"] for r in ready_services} == SERVICES
        cpu = await query(client, prometheus, "process_cpu_seconds_total")
        assert {r["metric"]["service"] for r in cpu} == SERVICES
        relays = await query(client, prometheus, "clr_relay_lag_events")
        assert "collaboration" in {r["metric"]["service"] for r in relays}
        appends = await query(
            client,
            prometheus,
            'clr_event_store_append_duration_seconds_count{store="collaboration"}',
        )
        assert appends and float(appends[0]["value"][1]) >= 1

        async def consumer_lag_reported() -> bool:
            lags = await query(client, prometheus, "clr_consumer_lag_messages")
            return "assessments.reference" in {r["metric"]["group"].split(".", 1)[-1] for r in lags}

        await eventually(consumer_lag_reported, "the consumer lag per partition")
        progress = await query(client, prometheus, "clr_consumer_progress_age_seconds")
        assert {r["metric"]["service"] for r in progress} >= {"assessments", "collaboration"}
        projection_lag = await query(client, prometheus, "clr_projection_lag_messages")
        assert {r["metric"]["read_model"] for r in projection_lag} >= {"labels", "organisations"}

        # and the alert rules are loaded and evaluated, none of them firing
        groups = (await client.get(f"{prometheus}/api/v1/rules")).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == 8
        assert all(rule["health"] == "ok" for rule in rules), rules
        assert all(rule["state"] == "inactive" for rule in rules), rules

        # and every query of the Grafana dashboard is one Prometheus answers
        for expr in dashboard_queries():
            await query(client, prometheus, expr)


def dashboard_queries() -> list[str]:
    """The dashboard's queries, its variables filled in as Grafana would."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]
    filled = [expr.replace("$__rate_interval", "1m").replace("$service", ".*") for expr in exprs]
    assert filled and not any(re.search(r"\$\w", expr) for expr in filled)
    return filled
