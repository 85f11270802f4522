"""The one exception tree of regsync.

Each class's docstring is its default message and tells the user what to do. Errors are *transient*
(worth a retry: timeouts, 429, 5xx, lock contention) or *permanent* (don't retry: 401, 404, validation).
Third-party errors are translated at one boundary with ``raise ... from exc``; messages never carry
secrets, authorization headers or response bodies.
"""

from __future__ import annotations


class RegsyncError(Exception):
    """regsync failed; see the log (correlation ID) for details."""

    #: It concerns the whole run (a credential, a secret, the mapping): another chunk cannot succeed either, so
    #: the run fails at once with this code and message instead of failing record by record.
    run_wide: bool = False
    #: What to do about it, added to a run's error message when the specific message does not say it already.
    advice: str | None = None
    code: str = "REGSYNC_ERROR"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def transient(self) -> bool:
        """Worth a retry: said by the class, once (a subclass of :class:`TransientError`)."""
        return isinstance(self, TransientError)


def with_advice(exc: RegsyncError) -> str:
    """``exc``'s message, followed by its class's advice unless the message already says what to do."""
    if not exc.advice or exc.advice in exc.message:
        return exc.message
    return f"{exc.message.rstrip('.')}; {exc.advice}"


def fails_run(exc: RegsyncError) -> bool:
    """True when ``exc`` ends the whole run at once: permanent, and about the run rather than some records."""
    return exc.run_wide and not exc.transient


class TransientError(RegsyncError):
    """A temporary failure; it will be retried."""


# --- configuration -----------------------------------------------------------------------------------------


class ConfigurationError(RegsyncError):
    """regsync is misconfigured; fix the setting named in this message."""

    run_wide = True
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


class NoticeSettingsRefused(ConfigurationError):
    """The alert notice settings were refused: the notice period is at most 72 hours and only admins change it."""

    code = "NOTICE_SETTINGS_REFUSED"


class NoAlertChannel(NoticeSettingsRefused):
    """The connection has no alert channel, so nobody would be told when its runs fail: add a channel to the
    [alerts] table of its connection file, or enable it explicitly without notices."""

    code = "NO_ALERT_CHANNEL"


# --- CRM ---------------------------------------------------------------------------------------------------


class CrmError(RegsyncError):
    """Salesforce answered with an error."""

    code = "CRM_ERROR"


class CrmAuthError(CrmError):
    """Salesforce rejected our credentials (invalid_grant); check the connected app and `regsync secret set`."""

    run_wide = True
    advice = (
        "check the connected app (client id, flow, user) and store the right credential with "
        "`regsync secret set CONNECTION salesforce_client_secret` (or salesforce_private_key)"
    )
    code = "CRM_AUTH"


class CrmSessionExpired(CrmError, TransientError):
    """The Salesforce session expired (INVALID_SESSION_ID); regsync re-authenticates once."""

    code = "INVALID_SESSION_ID"


class CrmTransientError(CrmError, TransientError):
    """Salesforce is busy or unreachable (timeout, 5xx, UNABLE_TO_LOCK_ROW); the chunk will be retried."""

    code = "CRM_TRANSIENT"


class CrmLimitExceeded(CrmError):
    """The Salesforce org's daily API limit is exhausted; the run resumes when the allowance allows."""

    run_wide = True
    code = "REQUEST_LIMIT_EXCEEDED"


class ApiBudgetReached(CrmError):
    """regsync's Salesforce API budget for this connection is used up; the run waits for the next window."""

    run_wide = True
    code = "API_BUDGET"


class CrmPermanentError(CrmError):
    """Salesforce refused the request and would refuse it again; it is not retried."""

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or CrmError.code


class CrmSchemaError(CrmPermanentError):
    """Salesforce refused a request because a mapped field or the object is missing or not accessible to the
    integration user; fix the mapping (`regsync connection apply`) or the user's field-level security and object
    permissions, then start a new run."""

    run_wide = True
    advice = (
        "fix the mapping (`regsync connection apply`) or the integration user's permissions, then run again"
    )


# --- registry ----------------------------------------------------------------------------------------------


class RegistryError(RegsyncError):
    """The business registry answered with an error."""

    code = "REGISTRY_ERROR"


class RegistryAuthError(RegistryError):
    """registry token rejected: set a valid token with `regsync secret set CONNECTION registry_token`."""

    run_wide = True
    code = "REGISTRY_AUTH"


class RegistryTransientError(RegistryError, TransientError):
    """The registry is busy or unreachable (429, 5xx, timeout); the request will be retried."""

    code = "REGISTRY_TRANSIENT"

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RegistryMalformed(RegistryError):
    """The registry's answer did not have the expected shape; nothing was written for this record."""

    code = "REGISTRY_MALFORMED"


class FeedError(RegistryError):
    """The registry's change feed could not be read; the watermark stays where it was and nothing is skipped."""

    run_wide = True
    code = "FEED_ERROR"


class FeedMalformed(FeedError):
    """The registry's change feed answered with a body of an unexpected shape; nothing of it was applied."""

    code = "FEED_MALFORMED"


class FeedGap(FeedError):
    """The change feed can no longer serve from the stored position: run a full reconcile."""

    code = "FEED_GAP"
    advice = "run a full reconcile"


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


class ChannelError(AlertingError, TransientError):
    """A notification channel did not accept the notice (timeout, 5xx); it will be retried."""

    code = "CHANNEL_TRANSIENT"


class ChannelRejected(AlertingError):
    """A notification channel refused the notice permanently (4xx, bad address, missing signing key); fix the
    channel named in this message: a channel_failing alert stays open until it works again."""

    code = "CHANNEL_REJECTED"


# --- ledger ------------------------------------------------------------------------------------------------


class LedgerError(RegsyncError):
    """The job ledger could not be read or written; check REGSYNC_DATABASE_URL and run `alembic upgrade head`."""

    run_wide = True
    code = "LEDGER"


class RunNotFound(LedgerError):
    """No such run; list runs with `regsync runs list`."""

    code = "RUN_NOT_FOUND"


class StateConflict(LedgerError):
    """Another process changed this row first; nothing was changed."""

    run_wide = False
    code = "STATE_CONFLICT"


class AttemptSuperseded(StateConflict):
    """Another attempt took this work over; this one's registry requests stop here (its calls so far are counted)."""

    code = "ATTEMPT_SUPERSEDED"


class RunClosed(StateConflict):
    """The run closed while this attempt was still at work; nothing more is asked of the registry for it."""

    code = "RUN_CLOSED"


class ChangeNotFound(LedgerError):
    """No such change event in this connection; list them with `regsync changes list CONNECTION`."""

    run_wide = False
    code = "CHANGE_NOT_FOUND"


class NameMatchNotFound(LedgerError):
    """No such name match in this connection; list them with `regsync matches list CONNECTION`."""

    run_wide = False
    code = "NAME_MATCH_NOT_FOUND"


class LedgerNotMigrated(LedgerError):
    """The ledger's tables are missing or older than this regsync; run `alembic upgrade head` with
    REGSYNC_DATABASE_URL pointing at this ledger."""


class LedgerUnavailable(LedgerError, TransientError):
    """The ledger database did not answer or asked us to try again (connection lost, serialization failure,
    deadlock); the work will be retried. Check that the database is running and reachable."""

    run_wide = False
    code = "LEDGER_UNAVAILABLE"


# --- run lifecycle -----------------------------------------------------------------------------------------


class InternalError(RegsyncError):
    """regsync hit an unexpected error (a bug); the worker log has the traceback. Please report it."""

    code = "INTERNAL"


class SharedStateUnavailable(TransientError):
    """Redis (REGSYNC_REDIS_URL) did not answer, so the cluster-wide rate limit cannot be kept; the chunk will be
    retried. Check that Redis is running and reachable."""

    code = "REDIS_UNAVAILABLE"


class ConnectionLost(TransientError):
    """A network connection failed or timed out outside the CRM and registry clients; it will be retried."""

    code = "CONNECTION_LOST"


class ChunkLost(RegsyncError):
    """The workers that took this chunk stopped before finishing it (killed, out of memory or frozen) as often
    as its retry budget allows; its records were not synced. Start a backfill with --only-failed to retry them."""

    code = "CHUNK_LOST"


class PlannerLost(RegsyncError):
    """The worker planning this run stopped before it finished (killed, out of memory or frozen) as often as its
    retry budget allows; start a new run, and look at the worker log if it happens again."""

    run_wide = True
    code = "PLANNER_LOST"
