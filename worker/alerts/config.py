"""The ``[alerts]`` table of a connection file: notice period, detector thresholds, channels, escalation.

Validated as strictly as the rest of the connection file. A notice period above 72 hours is refused: GDPR
Art. 33 allows at most 72 hours, and customers set much shorter ones. Secrets (webhook signing key, SMTP
password) never live here: they are connection secrets (`regsync secret set`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from worker.text_input import refuse_userinfo

#: The longest notice period regsync accepts (72 hours, GDPR Art. 33), in minutes.
NOTICE_MAX_MINUTES = 72 * 60
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannelSpec(_Strict):
    """JSON POSTed to an https:// URL, signed with the connection's ``webhook_signing_key`` secret."""

    type: Literal["webhook"]
    url: str
    timeout_s: float = Field(default=10.0, gt=0, le=60, description="Per-attempt timeout, seconds.")

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        refuse_userinfo(value, "webhook url")
        if not value.lower().startswith("https://"):
            raise ValueError("webhook url must be https:// (alerts leave the machine signed and encrypted)")
        return value


class EmailChannelSpec(_Strict):
    """Mail through an SMTP server that offers STARTTLS (plain-text SMTP is refused)."""

    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    sender: str
    to: list[str] = Field(min_length=1)
    username: str | None = Field(
        default=None, description="SMTP login; password is the smtp_password secret."
    )
    timeout_s: float = Field(default=15.0, gt=0, le=120)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        bad = [address for address in value if not _EMAIL.match(address)]
        if bad:
            raise ValueError(f"not email addresses: {bad}")
        return value


ChannelSpec = Annotated[WebhookChannelSpec | EmailChannelSpec, Field(discriminator="type")]


class EscalationStep(_Strict):
    """One step of an escalation policy: who is notified, and how long they have to acknowledge."""

    channels: list[str] = Field(min_length=1)
    ack_timeout_minutes: int = Field(default=30, ge=1, le=NOTICE_MAX_MINUTES)


class AlertsSpec(_Strict):
    """Per-connection alert settings; every default is documented with its unit."""

    notice_period_minutes: int = Field(
        default=24 * 60, ge=1, description="Minutes from detection to the notice deadline (max 72 h)."
    )
    partial_failure_threshold: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="run_partially_failed above this (failed+invalid)/planned share.",
    )
    missed_grace_minutes: int | None = Field(
        default=None, ge=0, le=24 * 60, description="Overrides the schedule's grace (default 15 min)."
    )
    stall_minutes: int = Field(default=30, ge=1, description="run_stalled after this long without heartbeat.")
    max_runtime_minutes: int = Field(default=240, ge=1, description="run_overran after this long running.")
    volume_share: float = Field(
        default=0.5,
        gt=0,
        description="volume_anomaly when planned/updated deviate from the median this much.",
    )
    volume_min_records: int = Field(default=10, ge=0, description="…and by at least this many records.")
    volume_min_history: int = Field(default=3, ge=1, le=10, description="Runs needed before comparing.")
    budget_share: float = Field(
        default=0.9, gt=0, le=1, description="api_budget_low when a run used this share of the API limit."
    )
    channels: dict[str, ChannelSpec] = Field(default_factory=dict)
    escalation: list[EscalationStep] = Field(default_factory=list)
    repeat: int = Field(default=0, ge=0, le=10, description="Times the escalation policy repeats.")

    @field_validator("notice_period_minutes")
    @classmethod
    def _notice(cls, value: int) -> int:
        if value > NOTICE_MAX_MINUTES:
            raise ValueError(
                f"a notice period of {value} minutes is refused: at most {NOTICE_MAX_MINUTES} minutes "
                "(72 hours, GDPR Art. 33)"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, ChannelSpec]) -> dict[str, ChannelSpec]:
        bad = [name for name in value if not _CHANNEL_NAME.match(name)]
        if bad:
            raise ValueError(f"channel names are lowercase letters, digits, '-' and '_': {bad}")
        return value

    @model_validator(mode="after")
    def _known_channels(self) -> AlertsSpec:
        for position, step in enumerate(self.escalation, start=1):
            unknown = sorted(set(step.channels) - set(self.channels))
            if unknown:
                raise ValueError(f"escalation step {position} names unknown channel(s) {unknown}")
        return self

    def steps(self) -> list[EscalationStep]:
        """The escalation policy; without one, a single step notifies every channel and never escalates."""
        if self.escalation:
            return list(self.escalation)
        if not self.channels:
            return []
        return [EscalationStep(channels=sorted(self.channels), ack_timeout_minutes=NOTICE_MAX_MINUTES)]

    def escalates(self) -> bool:
        return bool(self.escalation)

    def notice_settings(self) -> dict[str, object]:
        """The audited part: what decides who is told what, and by when."""
        return {
            "notice_period_minutes": self.notice_period_minutes,
            "escalation": [step.model_dump() for step in self.escalation],
            "repeat": self.repeat,
            "channels": sorted(self.channels),
        }
