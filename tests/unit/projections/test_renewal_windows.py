"""The projections colour a label recorded without its renewal deadline by the shared
windows (``clr_events.settings.RenewalWindows``), as collaboration's profiles do."""

from __future__ import annotations

import pytest

from clr_events.settings import RenewalWindows
from projections.queries import _status_sql
from projections.settings import ProjectionSettings


def test_the_status_falls_back_on_the_shared_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLR_RENEWAL_WINDOW_MONTHS_SILVER", "9")
    settings = ProjectionSettings()
    assert settings.renewal_windows == RenewalWindows()
    assert settings.renewal_windows.months("silver") == 9
    assert "WHEN 'silver' THEN 9" in _status_sql("$1", settings)
