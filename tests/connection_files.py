"""The `acme` connection file the CLI tests apply: one Proff connection whose secrets are never needed."""

from __future__ import annotations

ACME_HEAD = """\
name = "acme"

[salesforce]
token_url = "https://acme.my.salesforce.com/services/oauth2/token"
client_id = "3MVG9abcdef"
org_number_field = "OrgNr__c"
country = "NO"

[registry]
provider = "proff"
base_url = "https://api.proff.no"
"""


def acme_toml(*mapping: str, extra: str = "") -> str:
    """The connection file with these ``[mapping]`` lines (default: Name only) and ``extra`` tables after it."""
    lines = mapping or ('name = { field = "Name" }',)
    return f"{ACME_HEAD}\n[mapping]\n" + "\n".join(lines) + "\n" + (f"\n{extra.strip()}\n" if extra else "")
