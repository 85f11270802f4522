"""Installation-wide (operator) alert settings: where alerts that belong to no connection are sent.

``REGSYNC_OPERATOR_ALERTS_FILE`` names a TOML file with an ``[alerts]`` table exactly like a connection file's,
plus, at the top level, ``webhook_signing_key_file`` and ``smtp_password_file``: paths of files holding those
secrets (the file itself holds no secret). Without the setting, operator alerts are recorded but not sent.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from worker.alerts.channels import Channel, channels_with
from worker.alerts.config import AlertsSpec
from worker.errors import ConfigurationError
from worker.text_input import read_utf8

ENV = "REGSYNC_OPERATOR_ALERTS_FILE"
_SECRET_FILES = {"webhook_signing_key_file": "webhook_signing_key", "smtp_password_file": "smtp_password"}


@dataclass(frozen=True, slots=True)
class OperatorAlerts:
    """The operator's alert settings and the secrets their channels need (never logged or shown)."""

    spec: AlertsSpec
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


def operator_alerts() -> OperatorAlerts:
    """The operator settings from ``REGSYNC_OPERATOR_ALERTS_FILE`` (no channels when it is not set).

    Raises:
        ConfigurationError: The file is unreadable, not TOML, or its ``[alerts]`` table is invalid.
    """
    path = os.environ.get(ENV, "").strip()
    return load_operator(Path(path)) if path else OperatorAlerts(AlertsSpec())


def load_operator(path: Path) -> OperatorAlerts:
    """Read and validate an operator alerts file (see the module docstring)."""
    try:
        data = tomllib.loads(read_utf8(path, ENV))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{ENV} {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"alerts", *_SECRET_FILES})
    if unknown:
        raise ConfigurationError(f"{ENV} {path}: unknown keys {unknown}; expected [alerts] and *_file paths")
    try:
        spec = AlertsSpec.model_validate(data.get("alerts") or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{ENV} {path}: [alerts] is invalid: {problems}") from None
    secrets = {
        name: _secret(path.parent / str(data[key])) for key, name in _SECRET_FILES.items() if key in data
    }
    return OperatorAlerts(spec, secrets)


def _secret(path: Path) -> str:
    value = read_utf8(path, "operator secret file").strip()
    if not value:
        raise ConfigurationError(f"operator secret file {path} is empty")
    return value


def operator_channels(operator: OperatorAlerts) -> dict[str, Channel]:
    """The operator's channels, with the secrets read from their files."""
    how = f"as {{name}}_file in {ENV}"
    return channels_with(operator.spec, operator.secrets.get, how)
