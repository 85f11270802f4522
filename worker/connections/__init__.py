"""Connections: one Salesforce org and one registry account.

- ``spec``: the connection file's schema; ``apply``: storing it (idempotent, audited);
  ``secrets``: encrypted secrets; ``preflight``: can it run (secrets, mapping, least privilege)?
"""
