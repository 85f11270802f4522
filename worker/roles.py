"""Who may do what: the roles an API key (and the alert-settings rules) speak of.

It sits in the kernel, beside ``errors`` and ``company``, because a domain rule (``alerts/notice_settings``) and
the HTTP layer (``api/``) both need it, and a domain rule must not import the HTTP layer.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a key may do: ``viewer`` reads, ``operator`` also acts on runs and alerts, ``admin`` also changes
    settings. Each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """True when this role includes ``needed``."""
        return self.rank >= needed.rank
