"""The service benchmark's arithmetic: oha's report in, figures and targets out."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from bench.service_bench import (
    correction_bodies,
    machine_cpu_seconds,
    summarise,
    table,
    trial,
    verdicts,
)


def figures(ok_per_s: float, p99_ms: float = 10.0) -> dict[str, Any]:
    return {"ok_per_s": ok_per_s, "p50_ms": 1.0, "p99_ms": p99_ms, "statuses": {}, "errors": {}}


def test_a_trial_counts_only_2xx_as_done_and_reads_latency_in_milliseconds() -> None:
    report = {
        "statusCodeDistribution": {"201": 900, "409": 80, "422": 20},
        "latencyPercentiles": {"p50": 0.004, "p99": 0.0315},
        "errorDistribution": {"aborted due to deadline": 3},
    }
    t = trial(report, seconds=5.0)
    assert t["ok_per_s"] == 180.0
    assert (t["p50_ms"], t["p99_ms"]) == (4.0, 31.5)
    assert t["statuses"] == {201: 900, 409: 80, 422: 20}
    assert t["errors"] == {"aborted due to deadline": 3}


def test_repeats_give_medians_and_statuses_add_up() -> None:
    trials = [
        {**figures(100.0, 30.0), "statuses": {201: 500}, "cpu_ms_per_ok": 2.0},
        {**figures(300.0, 10.0), "statuses": {201: 1500, 409: 2}, "cpu_ms_per_ok": 1.0},
        {**figures(200.0, 20.0), "statuses": {201: 1000}, "cpu_ms_per_ok": 3.0},
    ]
    for t, machine in zip(trials, (9.0, 5.0, 7.0), strict=True):
        t["machine_cpu_ms_per_ok"] = machine
    s = summarise(trials)
    assert (s["ok_per_s"], s["p99_ms"], s["cpu_ms_per_ok"]) == (200.0, 20.0, 2.0)
    assert s["machine_cpu_ms_per_ok"] == 7.0
    assert s["statuses"] == {201: 3000, 409: 2}
    assert s["runs_ok_per_s"] == [100.0, 300.0, 200.0]


def summary(service: list[float], bare: list[float], p99_16: float) -> dict[int, Any]:
    return {
        c: {"service": figures(s, p99_16 if c == 16 else 5.0), "bare": figures(b)}
        for c, s, b in zip((1, 4, 16, 64), service, bare, strict=True)
    }


def test_targets_met() -> None:
    v = verdicts(summary([100, 200, 300, 290], [200, 400, 600, 500], p99_16=50.0))
    assert v["ratios"] == {1: 0.5, 4: 0.5, 16: 0.5, 64: 0.58}
    assert v["ratio_met"] and v["not_falling_met"] and v["p99_met"]


def test_targets_not_met() -> None:
    v = verdicts(summary([63, 124, 143, 100], [195, 443, 250, 250], p99_16=50.1))
    assert not v["ratio_met"]
    assert v["falls_at"] == [64]  # below 95 % of the best rate at fewer clients
    assert not v["p99_met"]


def test_a_run_without_16_clients_says_the_p99_target_was_not_measured() -> None:
    runs = summary([100, 200, 300, 290], [200, 400, 600, 500], p99_16=40.0)
    del runs[16]
    for c in runs:
        for system in ("service", "bare"):
            runs[c][system] |= {
                "cpu_ms_per_ok": 1.0,
                "machine_cpu_ms_per_ok": 4.0 if system == "service" else 1.6,
                "runs_ok_per_s": [1.0],
            }
    lines = table("organisation", runs)
    assert lines[-1].endswith("not measured (no run at 16 clients)")
    assert "service / bare: 1: 2.5x, 4: 2.5x, 64: 2.5x" in "\n".join(lines)


def test_the_machine_is_busy_as_proc_stat_says() -> None:
    before = machine_cpu_seconds()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # 0.2 s of this process's CPU
        pass
    assert machine_cpu_seconds() - before >= 0.15


def test_correction_bodies_are_one_json_document_a_line_each_with_another_day(
    tmp_path: Path,
) -> None:
    lines = correction_bodies(tmp_path, 400).read_text().splitlines()
    bodies = [json.loads(line) for line in lines]
    assert len({b["valid_until"] for b in bodies}) == 400
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", b["valid_until"]) for b in bodies)
    assert all(b["reason"] for b in bodies)
