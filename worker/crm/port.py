"""The CRM port: what planning and sync need from a CRM, whichever it is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

CrmRecord = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of one record of a collection write."""

    record_id: str
    success: bool
    error_code: str | None = None
    message: str | None = None


@dataclass(slots=True)
class ApiUsage:
    """The org's daily API usage as last reported by ``Sforce-Limit-Info`` (api-usage=used/limit)."""

    used: int | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    type: str
    updateable: bool
    length: int | None = None
    nillable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class CrmClient(Protocol):
    """One authenticated CRM session for one connection.

    ``calls`` counts API calls made (every query page, re-read and write), ``usage`` holds the last
    Sforce-Limit-Info seen. Record dicts carry plain field values keyed by API name, plus "Id";
    Salesforce's "attributes" are stripped.
    """

    calls: int
    usage: ApiUsage

    def stream_records(
        self, fields: Sequence[str], where: str | None = None, order_by: str | None = None
    ) -> Iterator[CrmRecord]:
        """All records of the object (query + queryMore, pages of 2,000), selecting only ``fields``."""
        ...

    def read_by_ids(self, ids: Sequence[str], fields: Sequence[str]) -> list[CrmRecord]:
        """Fresh values of up to 200 records by Id, in one call; missing (deleted) records are left out."""
        ...

    def update(self, records: Sequence[CrmRecord]) -> list[WriteResult]:
        """PATCH up to 200 records (Id + changed fields only) with allOrNone=false; one result per record."""
        ...

    def describe(self) -> dict[str, FieldInfo]:
        """The object's fields by API name."""
        ...

    def modified_keys(self, key_fields: Sequence[str], since: dt.datetime | None) -> Iterator[CrmRecord]:
        """Id, ``key_fields`` and SystemModstamp of every record modified after ``since`` less
        ``worker.crm.soql.MODSTAMP_OVERLAP`` (all records when None), oldest first (by SystemModstamp, then Id);
        streamed in query pages of 2,000, each page one call."""
        ...
