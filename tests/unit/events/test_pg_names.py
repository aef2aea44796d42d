"""What the services' database connections call themselves."""

from __future__ import annotations

import os

import pytest

from clr_events import pg


def test_a_long_host_name_is_cut_never_the_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "pod-" + "x" * 80)
    name = pg.application_name("training_certification")
    assert len(name) <= 63
    assert name.startswith("training_certification/pod-xxx")
    assert name.endswith(f"/{os.getpid()}")


def test_a_name_in_the_url_wins_and_other_server_settings_stay() -> None:
    chosen = "postgresql://u@h/db?application_name=mine"
    assert pg.named(chosen, "svc", min_size=1) == {"min_size": 1}
    options = pg.named("postgresql://u@h/db", "svc", server_settings={"work_mem": "8MB"})
    assert options["server_settings"]["work_mem"] == "8MB"
    assert options["server_settings"]["application_name"].startswith("svc/")
    assert pg.named("postgresql://u@h/db", None, server_settings=None) == {"server_settings": None}
