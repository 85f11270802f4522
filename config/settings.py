"""All of regsync's settings, read from the environment (``REGSYNC_*``) in one place.

Every default is documented with its unit. Every value is converted to its field's type when the settings are
read, and one that does not convert is an error at start-up, not a surprise at 2 a.m. The conversion is pydantic's
lax mode (``strict=False``), which environment strings need: ``"30"`` becomes 30 and ``"true"`` True, while
``"five minutes"`` for a number is refused.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Hosts a plain-http REGSYNC_HEARTBEAT_URL may name (a local relay or a test receiver).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Settings(BaseSettings):
    """regsync settings. Each field is read from ``REGSYNC_<NAME>``.

    Two values that hold secrets may instead come from a file (a mounted secret): ``REGSYNC_SECRET_KEY_FILE`` and
    ``REGSYNC_HEARTBEAT_URL_FILE``. No other field has a ``_FILE`` form (``metrics_token`` included).
    """

    # hide_input_in_errors: a bad value may be a secret (the heartbeat URL holds a token); errors name the field.
    model_config = SettingsConfigDict(
        env_prefix="REGSYNC_", extra="ignore", strict=False, hide_input_in_errors=True
    )

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'regsync.sqlite3'}",
        description="SQLAlchemy URL of the job ledger (default: SQLite file in the working directory).",
    )
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Celery broker URL (Redis); 'memory://' runs the embedded in-process worker.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis URL for the cluster-wide rate limiter and locks.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys that encrypt stored secrets; the first encrypts, all decrypt.",
    )
    log_format: Literal["json", "console"] = Field(default="console", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    actor: str | None = Field(default=None, description="Who performs admin commands (audit trail).")
    queue: str = Field(
        default="regsync", min_length=1, description="Celery queue the tasks are sent to and workers consume."
    )

    chunk_lease_s: int = Field(
        default=300, ge=10, description="Seconds a claimed chunk may go without heartbeat."
    )
    chunk_requeue_after_s: int = Field(
        default=600, ge=10, description="Seconds a queued chunk may wait before the sweeper re-enqueues it."
    )
    chunk_max_attempts: int = Field(
        default=9,
        ge=1,
        le=50,
        description=(
            "Times a chunk may be claimed (first try, retries after transient errors, takeovers after a worker "
            "died) before its records are failed with the last error."
        ),
    )
    plan_max_attempts: int = Field(
        default=9,
        ge=1,
        le=50,
        description="Times a run's planning may be started or resumed before the run fails.",
    )
    retry_backoff_s: float = Field(
        default=2.0,
        gt=0,
        description="Seconds before the first retry of a transient failure (doubles each time).",
    )
    retry_backoff_max_s: float = Field(
        default=300.0, gt=0, description="Longest pause between two retries of a transient failure, seconds."
    )
    visibility_timeout_s: int = Field(
        default=3600, ge=60, description="Redis visibility timeout in seconds; above the longest chunk."
    )
    registry_timeout_s: float = Field(
        default=10.0, gt=0, description="Per-request registry timeout, seconds."
    )
    registry_max_retries: int = Field(default=4, ge=0, description="Retries of a transient registry failure.")
    registry_concurrency: int = Field(
        default=8, ge=1, le=64, description="Parallel registry requests per chunk."
    )
    registry_pump: bool = Field(
        default=True,
        description=(
            "Run a registry pump per run (cluster only): it fetches the planned org numbers ahead of the chunks at "
            "the registry's rate, so the registry is busy while chunks talk to Salesforce."
        ),
    )
    registry_pump_window_chunks: int = Field(
        default=40, ge=1, le=1000, description="Chunks the pump may run ahead of the first unfinished chunk."
    )
    registry_pump_max_in_flight: int = Field(
        default=64, ge=1, le=64, description="Most registry requests the pump keeps in flight (the cap)."
    )
    registry_pump_latency_guess_s: float = Field(
        default=0.1,
        gt=0,
        description="Registry latency the pump assumes until it has measured some, seconds.",
    )
    registry_pump_headroom: float = Field(
        default=1.5,
        ge=1.0,
        le=10.0,
        description="In flight = ceil(rate × observed latency × headroom) + 1, within the cap (Little's law).",
    )
    crm_timeout_s: float = Field(default=30.0, gt=0, description="Per-request Salesforce timeout, seconds.")
    shared_state: Literal["auto", "redis", "local"] = Field(
        default="auto",
        description=(
            "Where cluster-wide state lives (registry rate limiter, per-run company cache, daily API budget): "
            "'redis' (REGSYNC_REDIS_URL), 'local' (this process only), 'auto' = redis unless the broker is memory://."
        ),
    )
    api_rate_per_minute: int = Field(
        default=600, ge=1, description="HTTP API requests per API key per minute; more answer 429."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="If set, GET /metrics needs `Authorization: Bearer <token>` (it names every connection).",
    )
    public_url: str | None = Field(
        default=None, description="Base URL of the regsync API, for links in alert notices (none if unset)."
    )
    siem_file: Path | None = Field(
        default=None, description="SIEM feed: append one JSON line per alert transition and audit event here."
    )
    siem_syslog: str | None = Field(
        default=None, description="SIEM feed: also send each event to this syslog host:port over TCP."
    )
    siem_syslog_tls: bool = Field(default=True, description="Use TLS for REGSYNC_SIEM_SYSLOG (RFC 5425).")
    alert_send_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts per webhook notice before the evaluator retries later."
    )
    alert_backoff_s: float = Field(
        default=0.5, ge=0, description="First pause between webhook attempts, seconds (doubles each time)."
    )
    heartbeat_url: SecretStr | None = Field(
        default=None,
        description=(
            "Dead-man's switch: beat sends GET to this URL (a Healthchecks.io or Cronitor ping URL) every "
            "REGSYNC_HEARTBEAT_INTERVAL_S; https, or http to this machine only. Its path is a secret: never logged."
        ),
    )
    heartbeat_interval_s: float = Field(
        default=60.0, ge=0.5, description="Seconds between beat's pings of REGSYNC_HEARTBEAT_URL."
    )
    beat_grace_s: float = Field(
        default=90.0,
        ge=15.0,
        description="Seconds beat may go without a heartbeat before /v1/health and `regsync health` fail.",
    )
    api_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description=(
            "Largest HTTP API request body, bytes (1 MiB); a larger one answers 413 before the key is checked, "
            "whether it announces its Content-Length or streams chunked."
        ),
    )
    console_idle_minutes: float = Field(
        default=30.0,
        gt=0,
        le=24 * 60,
        description="Minutes a web console session may sit idle before it is signed out (each request renews it).",
    )
    metrics_public: bool = Field(
        default=False,
        description=(
            "`true` opens GET /metrics to anyone who reaches the port when no REGSYNC_METRICS_TOKEN is set; "
            "by default it answers 401. Only `true` or `false`."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """``REGSYNC_<NAME>_FILE`` (e.g. a mounted secret) stands in for the secret key and the heartbeat URL."""
        for name in ("secret_key", "heartbeat_url"):
            _read_secret_file(data, name)
        return data

    @field_validator("metrics_public", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        """Only ``true``/``false`` (any case): ``yes`` or ``1`` must not open the metrics by accident."""
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, bool):
            return value
        raise ValueError("must be true or false")

    @field_validator("database_url")
    @classmethod
    def _no_blank_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("REGSYNC_DATABASE_URL is empty; give a SQLAlchemy URL or leave it unset")
        return value

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_url_safe(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parts = urlsplit(value.get_secret_value().strip())
        local = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
        if not parts.hostname or not (parts.scheme == "https" or local):
            # The message never repeats the URL: its path is the monitor's token.
            raise ValueError("REGSYNC_HEARTBEAT_URL must be an https:// URL (http:// only to this machine)")
        return SecretStr(value.get_secret_value().strip())

    def secret_keys(self) -> list[str]:
        """The configured Fernet keys, primary first (empty when none is set)."""
        if self.secret_key is None:
            return []
        return [key.strip() for key in self.secret_key.get_secret_value().split(",") if key.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the demo change the environment)."""
    get_settings.cache_clear()


def _read_secret_file(data: Any, name: str) -> None:
    """Put the content of ``REGSYNC_<NAME>_FILE`` into ``data[name]`` unless the value itself is given."""
    variable = f"REGSYNC_{name.upper()}_FILE"
    path = os.environ.get(variable)
    if not (isinstance(data, dict) and path and not data.get(name)):
        return
    try:
        data[name] = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{variable}={path} cannot be read: {exc.strerror}") from None
