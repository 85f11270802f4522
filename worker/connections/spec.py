"""The schema of a connection file (TOML), validated strictly: unknown keys are errors, URLs must be https."""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worker.alerts.config import AlertsSpec
from worker.company import CANONICAL_FIELDS
from worker.crm.objects import is_object_name
from worker.errors import ConfigurationError, InsecureURL
from worker.matching.spec import MatchingSpec
from worker.orgnr import SUPPORTED_COUNTRIES
from worker.registry.base_url import brreg_base_url
from worker.retention.policy import RetentionSpec
from worker.scheduling.spec import ScheduleSpec
from worker.text_input import read_utf8, refuse_userinfo

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SF_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


class Policy(StrEnum):
    OVERWRITE = "overwrite"
    FILL_BLANK = "fill_blank"
    PROTECT_MANUAL = "protect_manual"
    #: The change waits for a person (``regsync changes approve|reject``) instead of being written.
    REVIEW = "review"


def require_https(url: str) -> str:
    """``url`` without a trailing slash, when it is https:// and names no user or password.

    Raises:
        InsecureURL: It is not https://, or it carries userinfo (``https://user:pass@host``).
    """
    refuse_userinfo(url, "URL")
    if not url.lower().startswith("https://"):
        raise InsecureURL(
            f"{url!r} is not an https:// URL; regsync only talks to Salesforce and registries over TLS"
        )
    return url.rstrip("/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SalesforceSpec(_Strict):
    token_url: str = Field(description="OAuth token endpoint (My Domain, login./test. or the sandbox).")
    instance_url: str | None = Field(
        default=None, description="Overrides the instance_url the token returns."
    )
    auth: Literal["client_credentials", "jwt_bearer"] = "client_credentials"
    client_id: str
    username: str | None = Field(default=None, description="Subject of the JWT bearer flow.")
    audience: str | None = Field(
        default=None, description="JWT audience; defaults to the token URL's origin."
    )
    api_version: str = "62.0"
    object: str = Field(
        default="Account", description="The object synced: Account, Lead or a custom object (``…__c``)."
    )
    org_number_field: str
    country: str | None = Field(default=None, description="Fixed country of every record (NO, SE, DK, FI).")
    country_field: str | None = Field(default=None, description="Field holding each record's country code.")
    opt_out_field: str | None = Field(
        default=None,
        description="Checkbox field: records where it is true are never synced (per-record opt-out).",
    )
    require_least_privilege: bool = Field(
        default=False,
        description="Refuse `enable` while the integration user holds rights the mapping does not need.",
    )

    @field_validator("token_url", "instance_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        return None if value is None else require_https(value)

    @field_validator("org_number_field", "country_field", "opt_out_field")
    @classmethod
    def _field_name(cls, value: str | None) -> str | None:
        if value is not None and not _SF_FIELD.match(value):
            raise ValueError(f"{value!r} is not a Salesforce field API name")
        return value

    @field_validator("object")
    @classmethod
    def _object(cls, value: str) -> str:
        if not is_object_name(value):
            raise ValueError("object is 'Account', 'Lead' or a custom object's API name ending in '__c'")
        return value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2,3}\.0", value):
            raise ValueError("api_version looks like '62.0'")
        return value

    @model_validator(mode="after")
    def _country_source(self) -> SalesforceSpec:
        if (self.country is None) == (self.country_field is None):
            raise ValueError("give exactly one of 'country' (fixed) or 'country_field'")
        if self.country is not None and self.country.upper() not in SUPPORTED_COUNTRIES:
            raise ValueError(f"country must be one of {sorted(SUPPORTED_COUNTRIES)}")
        if self.auth == "jwt_bearer" and not self.username:
            raise ValueError("auth = 'jwt_bearer' needs 'username'")
        return self


class RegistrySpec(_Strict):
    provider: Literal["proff", "brreg"]
    base_url: str
    requests_per_second: float = Field(default=10.0, gt=0, le=10_000)
    burst: int = Field(default=10, ge=1, le=10_000)

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        return require_https(value)

    @model_validator(mode="before")
    @classmethod
    def _brreg_path(cls, data: object) -> object:
        # A bare brreg host used to fail every lookup with 404: normalise it, refuse any other path.
        if (
            isinstance(data, dict)
            and data.get("provider") == "brreg"
            and isinstance(data.get("base_url"), str)
        ):
            return {**data, "base_url": brreg_base_url(data["base_url"])}
        return data


class FieldMapping(_Strict):
    field: str
    policy: Policy = Policy.OVERWRITE

    @field_validator("field")
    @classmethod
    def _field_name(cls, value: str) -> str:
        if not _SF_FIELD.match(value):
            raise ValueError(f"{value!r} is not a Salesforce field API name")
        return value


class SyncSpec(_Strict):
    chunk_size: int = Field(default=200, ge=1, le=200)


class BudgetSpec(_Strict):
    """How much of the org's daily Salesforce API allowance regsync may use (``[budget]``)."""

    max_api_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of the daily limit regsync may use."
    )
    stop_below_remaining: int = Field(default=0, ge=0, description="Pause when fewer calls than this remain.")
    recheck_after_s: int = Field(
        default=900, ge=30, description="Age after which a usage reading is re-checked."
    )


class ConnectionSpec(_Strict):
    """One connection: a Salesforce org, a registry account, and how registry fields map onto CRM fields."""

    name: str
    salesforce: SalesforceSpec
    registry: RegistrySpec
    mapping: dict[str, FieldMapping]
    sync: SyncSpec = SyncSpec()
    alerts: AlertsSpec = AlertsSpec()
    budget: BudgetSpec = BudgetSpec()
    retention: RetentionSpec = RetentionSpec()  # [retention]: how long each kind of data is kept
    schedule: ScheduleSpec | None = None  # [schedule]: when it runs by itself once enabled
    matching: MatchingSpec = MatchingSpec()  # [matching]: name matching for records without an org number

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("name: lowercase letters, digits, '-' and '_' (max 63)")
        return value

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, value: dict[str, FieldMapping]) -> dict[str, FieldMapping]:
        unknown = sorted(set(value) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"unknown canonical field(s) {unknown}; known: {list(CANONICAL_FIELDS)}")
        if not value:
            raise ValueError("map at least one canonical field")
        targets = [m.field for m in value.values()]
        if len(set(targets)) != len(targets):
            raise ValueError("two canonical fields map to the same CRM field")
        return value

    def crm_fields(self) -> list[str]:
        """Fields the sync reads: Id, the key, the country and opt-out fields and the mapped fields (nothing else)."""
        fields = ["Id", self.salesforce.org_number_field]
        if self.salesforce.country_field:
            fields.append(self.salesforce.country_field)
        if self.salesforce.opt_out_field:
            fields.append(self.salesforce.opt_out_field)
        fields += [m.field for m in self.mapping.values()]
        return list(dict.fromkeys(fields))

    def secret_names(self) -> tuple[str, str]:
        crm = "salesforce_private_key" if self.salesforce.auth == "jwt_bearer" else "salesforce_client_secret"
        return crm, "registry_token"


def parse_spec(data: dict[str, object]) -> ConnectionSpec:
    """Validate a connection mapping, turning pydantic's errors into one readable ConfigurationError."""
    try:
        return ConnectionSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"connection file is invalid: {problems}") from None


def load_spec(path: Path) -> ConnectionSpec:
    """Read and validate a connection TOML file."""
    text = read_utf8(path, "connection file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    return parse_spec(data)
