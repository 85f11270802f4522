"""The one exception tree of regsync.

Each class's docstring is its default message and tells the user what to do. Errors are *transient*
(worth a retry: timeouts, 429, 5xx, lock contention) or *permanent* (don't retry: 401, 404, validation).
Third-party errors are translated at one boundary with ``raise ... from exc``; messages never carry
secrets, authorization headers or response bodies.
"""

from __future__ import annotations


class RegsyncError(Exception):
    """regsync failed; see the log (correlation ID) for details."""

    transient: bool = False
    code: str = "REGSYNC_ERROR"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class TransientError(RegsyncError):
    """A temporary failure; it will be retried."""

    transient = True


# --- configuration -----------------------------------------------------------------------------------------


class ConfigurationError(RegsyncError):
    """regsync is misconfigured; fix the setting named in this message."""

    code = "CONFIGURATION"


class ConnectionNotFound(ConfigurationError):
    """No such connection; list them with `regsync connection list` or apply one with `regsync connection apply`."""

    code = "CONNECTION_NOT_FOUND"


class SecretMissing(ConfigurationError):
    """A secret this connection needs is not set; set it with `regsync secret set CONNECTION NAME`."""

    code = "SECRET_MISSING"


class SecretKeyError(ConfigurationError):
    """Stored secrets cannot be decrypted; check REGSYNC_SECRET_KEY (the old key must stay listed while rotating)."""

    code = "SECRET_KEY"


class InsecureURL(ConfigurationError):
    """Only https:// URLs are allowed for Salesforce and the registry."""

    code = "INSECURE_URL"


class ApiKeyNotFound(ConfigurationError):
    """No such API key (or it was revoked); list keys with `regsync apikey list`."""

    code = "API_KEY_NOT_FOUND"


class MappingError(ConfigurationError):
    """The field mapping does not fit the CRM object; fix the mapping named in this message."""

    code = "MAPPING"


class InvalidFilter(ConfigurationError):
    """A backfill filter is not valid; fix the --where, --country, --ids-file, --only-failed or --fields option."""

    code = "INVALID_FILTER"


class ScheduleInvalid(ConfigurationError):
    """The schedule is invalid; give a five-field cron expression and an IANA time zone such as Europe/Oslo."""

    code = "SCHEDULE_INVALID"


class LeastPrivilegeError(ConfigurationError):
    """The Salesforce integration user holds rights the mapping does not need, and the connection sets
    require_least_privilege; remove them from the permission set or profile named in this message."""

    code = "LEAST_PRIVILEGE"


# --- CRM ---------------------------------------------------------------------------------------------------


class CrmError(RegsyncError):
    """Salesforce answered with an error."""

    code = "CRM_ERROR"


class CrmAuthError(CrmError):
    """Salesforce rejected our credentials (invalid_grant); check the connected app and `regsync secret set`."""

    code = "CRM_AUTH"


class CrmSessionExpired(CrmError, TransientError):
    """The Salesforce session expired (INVALID_SESSION_ID); regsync re-authenticates once."""

    transient = True
    code = "INVALID_SESSION_ID"


class CrmTransientError(CrmError, TransientError):
    """Salesforce is busy or unreachable (timeout, 5xx, UNABLE_TO_LOCK_ROW); the chunk will be retried."""

    transient = True
    code = "CRM_TRANSIENT"


class CrmLimitExceeded(CrmError):
    """The Salesforce org's daily API limit is exhausted; the run resumes when the allowance allows."""

    code = "REQUEST_LIMIT_EXCEEDED"


class ApiBudgetReached(CrmError):
    """regsync's Salesforce API budget for this connection is used up; the run waits for the next window."""

    code = "API_BUDGET"


# --- registry ----------------------------------------------------------------------------------------------


class RegistryError(RegsyncError):
    """The business registry answered with an error."""

    code = "REGISTRY_ERROR"


class RegistryAuthError(RegistryError):
    """registry token rejected: set a valid token with `regsync secret set CONNECTION registry_token`."""

    code = "REGISTRY_AUTH"


class RegistryTransientError(RegistryError, TransientError):
    """The registry is busy or unreachable (429, 5xx, timeout); the request will be retried."""

    transient = True
    code = "REGISTRY_TRANSIENT"

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RegistryMalformed(RegistryError):
    """The registry's answer did not have the expected shape; nothing was written for this record."""

    code = "REGISTRY_MALFORMED"


# --- data --------------------------------------------------------------------------------------------------


class InvalidOrgNumber(RegsyncError):
    """The organisation number fails its country's checksum; fix it in the CRM record."""

    code = "ORGNR_INVALID"


# --- alerting ----------------------------------------------------------------------------------------------


class AlertingError(RegsyncError):
    """An alert could not be handled; see the log for the alert id."""

    code = "ALERTING"


class AlertNotFound(AlertingError):
    """No such alert; list alerts with `regsync alerts list`."""

    code = "ALERT_NOT_FOUND"


class NoticeSettingsRefused(ConfigurationError):
    """The alert notice settings were refused: the notice period is at most 72 hours and only admins change it."""

    code = "NOTICE_SETTINGS_REFUSED"


class ChannelError(AlertingError, TransientError):
    """A notification channel did not accept the notice (timeout, 5xx); it will be retried."""

    transient = True
    code = "CHANNEL_TRANSIENT"


class ChannelRejected(AlertingError):
    """A notification channel refused the notice permanently (4xx, bad address, missing signing key); fix the
    channel named in this message: a channel_failing alert stays open until it works again."""

    code = "CHANNEL_REJECTED"


# --- ledger ------------------------------------------------------------------------------------------------


class LedgerError(RegsyncError):
    """The job ledger could not be read or written; check REGSYNC_DATABASE_URL and run `alembic upgrade head`."""

    code = "LEDGER"


class RunNotFound(LedgerError):
    """No such run; list runs with `regsync runs list`."""

    code = "RUN_NOT_FOUND"


class SharedStateUnavailable(TransientError):
    """Redis (REGSYNC_REDIS_URL) did not answer, so the cluster-wide rate limit cannot be kept; the chunk will be
    retried. Check that Redis is running and reachable."""

    transient = True
    code = "REDIS_UNAVAILABLE"


class StateConflict(LedgerError):
    """Another process changed this row first; nothing was changed."""

    code = "STATE_CONFLICT"
