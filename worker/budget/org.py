"""Which Salesforce org a connection talks to, so that connections on one org share one API budget.

The budget counts an org's calls: two connections on the same org (one for Accounts, one for Leads) spend the
same daily allowance, so they share one budget tag. An org is named by the host regsync logs in to (a My Domain
host is one org's) or, behind the shared ``login.``/``test.salesforce.com``, by the integration username
(usernames are unique across Salesforce). An ``instance_url`` override names the org's host directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

_SHARED_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})


def org_identity(salesforce: Mapping[str, Any]) -> str:
    """A stable name of the org a connection's ``[salesforce]`` section logs in to (never a secret)."""
    url = salesforce.get("instance_url") or salesforce.get("token_url") or ""
    host = urlsplit(str(url)).netloc.lower()
    if host in _SHARED_LOGIN_HOSTS and not salesforce.get("instance_url"):
        return f"{host}/{str(salesforce.get('username') or '').lower()}"
    return host


def first_on_same_org(connection_id: int, specs: Iterable[tuple[int, Mapping[str, Any]]]) -> int:
    """The lowest connection id among ``specs`` (id, spec data) on ``connection_id``'s org: the budget's owner."""
    by_id = {row_id: org_identity(spec.get("salesforce") or {}) for row_id, spec in specs}
    mine = by_id[connection_id]
    return min(row_id for row_id, org in by_id.items() if org == mine)
