"""The `acme` connection file the CLI tests apply (Proff or brreg); its secrets are never needed."""

from __future__ import annotations

ACME_HEAD = """\
name = "acme"

[salesforce]
token_url = "https://acme.my.salesforce.com/services/oauth2/token"
client_id = "3MVG9abcdef"
org_number_field = "OrgNr__c"
country = "NO"
"""
PROFF = 'provider = "proff"\nbase_url = "https://api.proff.no"'
BRREG = 'provider = "brreg"\nbase_url = "https://data.brreg.no/enhetsregisteret/api"'


def acme_toml(*mapping: str, registry: str = PROFF, extra: str = "") -> str:
    """The connection file with this ``[registry]`` section, these ``[mapping]`` lines (default: Name only) and
    ``extra`` tables after them."""
    lines = mapping or ('name = { field = "Name" }',)
    head = f"{ACME_HEAD}\n[registry]\n{registry}\n\n[mapping]\n"
    return head + "\n".join(lines) + "\n" + (f"\n{extra.strip()}\n" if extra else "")
