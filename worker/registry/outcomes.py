"""What a registry said about a record beyond its data: notices, and the out-of-scope skip.

A notice is not a failure. The record is still synced where mapped (status ``deleted`` is written, say), it is not
counted in ``failed``, and it gets a row with the notice's code next to the run's failures (`runs failures
--code REGISTRY_DELETED`). A record whose country the registry does not cover is skipped: counted in
``out_of_scope``, neither failed nor listed.
"""

from __future__ import annotations

from enum import StrEnum

from worker.company import CompanyStatus
from worker.registry.lookup import UNSUPPORTED_COUNTRY


class RegistryNotice(StrEnum):
    """A notice code on a record's row in ``record_failures``; ``counter`` names the run counter it adds to."""

    NOT_FOUND = "REGISTRY_NOT_FOUND"
    DELETED = "REGISTRY_DELETED"
    INACTIVE = "REGISTRY_INACTIVE"
    STATUS_UNKNOWN = "REGISTRY_STATUS_UNKNOWN"

    @property
    def counter(self) -> str:
        return _DETAILS[self][0]

    def message(self, status: CompanyStatus) -> str:
        """What the notice row says (no values from the registry or the CRM but the status word)."""
        return _DETAILS[self][1].format(status=status.value)


_DETAILS: dict[RegistryNotice, tuple[str, str]] = {
    RegistryNotice.NOT_FOUND: (
        "registry_not_found",
        "the registry does not know this organisation number; the status was synced where mapped",
    ),
    RegistryNotice.DELETED: (
        "registry_deleted",
        "the registry says the company was deleted or removed; the status was synced where mapped",
    ),
    RegistryNotice.INACTIVE: (
        "registry_inactive",
        "the registry says the company is not active ({status}); the record was synced as usual",
    ),
    RegistryNotice.STATUS_UNKNOWN: (
        "status_unknown",
        "the registry's status was missing or not understood; the status field was left alone, "
        "other fields were synced",
    ),
}

_FOR_STATUS: dict[CompanyStatus, RegistryNotice] = {
    CompanyStatus.NOT_FOUND: RegistryNotice.NOT_FOUND,
    CompanyStatus.DELETED: RegistryNotice.DELETED,
    CompanyStatus.INACTIVE: RegistryNotice.INACTIVE,
    CompanyStatus.DISSOLVED: RegistryNotice.INACTIVE,
    CompanyStatus.BANKRUPT: RegistryNotice.INACTIVE,
    CompanyStatus.LIQUIDATION: RegistryNotice.INACTIVE,
    CompanyStatus.UNKNOWN: RegistryNotice.STATUS_UNKNOWN,
}

#: Row codes that are notices, not failures (`runs failures` marks them).
NOTICE_CODES: frozenset[str] = frozenset(notice.value for notice in RegistryNotice)

#: Lookup error codes that put a record out of the registry's scope: skipped and counted ``out_of_scope``.
OUT_OF_SCOPE_CODES: frozenset[str] = frozenset({UNSUPPORTED_COUNTRY})


def notice_for(status: CompanyStatus) -> RegistryNotice | None:
    """The notice a company with ``status`` earns its record; None for an active company.

    Proff says only ACTIVE or INACTIVE; brreg says bankrupt or in liquidation instead. All of them are
    ``REGISTRY_INACTIVE``, so that the counter means the same whichever registry a connection uses.
    """
    return _FOR_STATUS.get(status)
