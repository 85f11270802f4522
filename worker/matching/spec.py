"""``[matching]`` in a connection file: name matching for records without a valid org number (off by default)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SF_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


class MatchingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    threshold: float = Field(
        default=0.9, gt=0, le=1, description="Score (0-1) from which one candidate is taken without review."
    )
    margin: float = Field(
        default=0.05, ge=0, le=1, description="A runner-up within this of the best makes the match ambiguous."
    )
    sole_proprietors: Literal["review", "skip"] = Field(
        default="review", description="A sole proprietorship (ENK ...) is never auto-matched: review or skip."
    )
    org_number_policy: Literal["fill_blank", "review"] = Field(
        default="fill_blank",
        description="fill_blank: write a match into a blank org-number field; review: every match waits.",
    )
    name_field: str | None = Field(
        default=None, description="Company name field (Account: Name, Lead: Company)."
    )
    postal_code_field: str | None = None
    city_field: str | None = None

    @field_validator("name_field", "postal_code_field", "city_field")
    @classmethod
    def _field_name(cls, value: str | None) -> str | None:
        if value is not None and not _SF_FIELD.match(value):
            raise ValueError(f"{value!r} is not a Salesforce field API name")
        return value
