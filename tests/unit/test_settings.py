"""Settings: strict parsing and secrets from files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings


def test_secret_key_is_read_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k1,k2\n")
    monkeypatch.delenv("REGSYNC_SECRET_KEY", raising=False)
    monkeypatch.setenv("REGSYNC_SECRET_KEY_FILE", str(key_file))
    assert Settings().secret_keys() == ["k1", "k2"]


def test_unreadable_secret_key_file_is_an_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REGSYNC_SECRET_KEY", raising=False)
    monkeypatch.setenv("REGSYNC_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="REGSYNC_SECRET_KEY_FILE"):
        Settings()


def test_a_malformed_number_is_an_error_not_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGSYNC_CHUNK_LEASE_S", "five minutes")
    with pytest.raises(ValidationError, match="chunk_lease_s"):
        Settings()


def test_secret_key_never_shows_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGSYNC_SECRET_KEY", "super-secret-fernet-key")
    assert "super-secret-fernet-key" not in repr(Settings())


@pytest.mark.parametrize("value", ["yes", "1", "on", ""])
def test_metrics_public_takes_only_true_or_false(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("REGSYNC_METRICS_PUBLIC", value)
    with pytest.raises(ValidationError, match="metrics_public"):
        Settings()


def test_metrics_are_closed_and_bodies_capped_at_one_mib_by_default() -> None:
    settings = Settings()
    assert settings.metrics_public is False and settings.metrics_token is None
    assert settings.api_max_body_bytes == 1024 * 1024
