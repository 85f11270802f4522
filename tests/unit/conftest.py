"""Unit tests keep cluster-wide state (rate limiter, company cache, API budget) in the process, never in Redis."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _local_shared_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGSYNC_SHARED_STATE", "local")
