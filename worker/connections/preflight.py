"""Preflight: can a connection run? Its secrets are set, its mapping fits the object's describe, and (reported,
or refused with ``require_least_privilege``) its integration user holds no right the mapping does not need.

Run by `secret set` (once every required secret is set), `connection apply`, `enable`, and at every run start
(planning); `run` and `backfill` refuse at once while a secret is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.connections.spec import ConnectionSpec, parse_spec
from worker.crm.describe_check import check_mapping
from worker.crm.port import CrmClient
from worker.errors import ConnectionNotFound, CrmAuthError, CrmError, LeastPrivilegeError, SecretMissing
from worker.ledger.models import Connection, Secret

if TYPE_CHECKING:
    from worker.crm.permissions import PrivilegeReport

log = logging.getLogger(__name__)

#: Salesforce calls of a run-start check: the describe and the four permission queries (one when the user has
#: no permission set at all).
RUN_START_CALLS = 5


@dataclass(frozen=True, slots=True)
class PreflightReport:
    """What a preflight found; a refusal is raised instead.

    Attributes:
        object: The Salesforce object checked.
        warnings: Mapped fields that some registry values will not fit (those records fail one by one).
        privileges: The integration user's excess rights, or None when they could not be read.
        privileges_unread: Why they could not be read (None when they were).
    """

    object: str
    warnings: tuple[str, ...] = ()
    privileges: PrivilegeReport | None = None
    privileges_unread: str | None = None

    def privilege_lines(self) -> list[str]:
        """One sentence per finding about the user's rights (empty: least privilege holds)."""
        if self.privileges is None:
            return [f"least privilege not checked: {self.privileges_unread or 'no user to check'}"]
        return [f"the integration user holds {excess}" for excess in self.privileges.excess]


def required_secrets(spec: ConnectionSpec) -> list[str]:
    """The secrets a run of ``spec`` needs: the Salesforce credential, and Proff's token (brreg is open data)."""
    crm, registry = spec.secret_names()
    return [crm] if spec.registry.provider == "brreg" else [crm, registry]


def missing_secrets(session: Session, connection_id: int) -> list[str]:
    """Names of the secrets the connection needs that are not set.

    Raises:
        ConnectionNotFound: No connection has that id.
    """
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise ConnectionNotFound(f"connection {connection_id} no longer exists")
    stored = set(session.scalars(select(Secret.name).where(Secret.connection_id == connection_id)))
    return [name for name in required_secrets(parse_spec(connection.spec)) if name not in stored]


def require_secrets(session: Session, name: str) -> int:
    """The id of connection ``name``, if every secret it needs is set.

    Raises:
        ConnectionNotFound: No connection has that name.
        SecretMissing: A secret is missing; the message names each one and the command that sets it.
    """
    connection_id = session.scalar(select(Connection.id).where(Connection.name == name))
    if connection_id is None:
        raise ConnectionNotFound(
            f"no connection named {name!r}; apply one with `regsync connection apply FILE`"
        )
    missing = missing_secrets(session, connection_id)
    if missing:
        commands = " and ".join(f"`regsync secret set {name} {secret}`" for secret in missing)
        raise SecretMissing(
            f"connection {name} cannot run: {', '.join(missing)} not set; set it with {commands} "
            "(the value is read from standard input)"
        )
    return int(connection_id)


def check_stored(session: Session, name: str) -> tuple[ConnectionSpec, str]:
    """The stored connection ``name`` and its Salesforce credential, for an ``enable`` check.

    Raises:
        ConnectionNotFound: No such connection.
        SecretMissing: A secret it needs is not set (the message names each one).
    """
    from worker.connections.secrets import get_secret  # decrypts: only where a check really runs

    connection_id = require_secrets(session, name)
    spec = parse_spec(session.get_one(Connection, connection_id).spec)
    return spec, get_secret(session, connection_id, spec.secret_names()[0])


def check_before_enable(spec: ConnectionSpec, credential: str) -> PreflightReport:
    """The ``enable`` check: the mapping fits, and least privilege holds where the connection requires it."""
    return check_connection(spec, credential, enforce_least_privilege=spec.salesforce.require_least_privilege)


def check_connection(
    spec: ConnectionSpec, credential: str, *, enforce_least_privilege: bool = False
) -> PreflightReport:
    """Log in with ``credential``, describe the object, check the mapping and read the user's rights.

    Args:
        spec: The connection (from a file being applied, or as stored).
        credential: Its Salesforce client secret or private key.
        enforce_least_privilege: Refuse excess rights (``enable`` of a connection that requires it).

    Raises:
        MappingError: The mapping does not fit the object.
        LeastPrivilegeError: Excess rights (or unreadable ones) while ``enforce_least_privilege``.
        CrmAuthError: Salesforce refused the credential.
        CrmError: Salesforce could not be reached or answered with an error.
    """
    from config.settings import get_settings
    from worker.crm.salesforce import SalesforceClient  # simple-salesforce: only for commands that call it

    with SalesforceClient(spec, credential, timeout_s=get_settings().crm_timeout_s) as client:
        return check_client(spec, client, enforce_least_privilege=enforce_least_privilege)


def check_client(
    spec: ConnectionSpec, crm: CrmClient, *, enforce_least_privilege: bool = False
) -> PreflightReport:
    """:func:`check_connection` with a client already open (the planner's, at run start)."""
    warnings = tuple(check_mapping(spec, crm.describe()))
    privileges, unread = _privileges(spec, crm)
    report = PreflightReport(spec.salesforce.object, warnings, privileges, unread)
    if enforce_least_privilege:
        enforce(spec, report)
    return report


def enforce(spec: ConnectionSpec, report: PreflightReport) -> None:
    """Refuse a connection whose user holds excess rights, or whose rights could not be read.

    Raises:
        LeastPrivilegeError: The message names every permission set or profile to fix.
    """
    if report.privileges is None:
        raise LeastPrivilegeError(
            f"{spec.name} sets require_least_privilege, but the integration user's rights could not be read "
            f"({report.privileges_unread}); let the user read setup (View Setup and Configuration) or unset it"
        )
    if report.privileges.excess:
        found = "; ".join(str(excess) for excess in report.privileges.excess)
        raise LeastPrivilegeError(
            f"{spec.name} sets require_least_privilege, and the integration user holds rights the mapping "
            f"does not need: {found}. Remove them from {', '.join(report.privileges.offenders())}"
        )


def check_run_start(spec: ConnectionSpec, crm: CrmClient) -> PreflightReport:
    """The run-start check: a mapping that no longer fits raises MappingError; the rest is logged."""
    report = check_client(spec, crm)
    for line in [*report.warnings, *report.privilege_lines()]:
        log.warning("preflight of %s: %s", spec.name, line)
    return report


def _privileges(spec: ConnectionSpec, crm: CrmClient) -> tuple[PrivilegeReport | None, str | None]:
    from worker.crm.permissions import SoqlReader, read_privileges

    if not hasattr(crm, "query") or not hasattr(crm, "user_id"):
        return None, "this CRM client cannot read permissions"
    reader: SoqlReader = crm  # type: ignore[assignment]  # checked just above
    try:
        report = read_privileges(reader, spec)
    except CrmAuthError:
        raise
    except CrmError as exc:
        return None, f"Salesforce refused the permission queries: {exc.message}"
    return report, None if report is not None else "the token response named no user"
